/*
 * mod_auth_scalekit: Scalekit single sign-on (OpenID Connect) for Apache httpd 2.4.
 * This file wires the hooks together and builds the shared caches at start.
 */
#define SK_DECLARES_MODULE

#include <apr_strings.h>

#include <http_core.h>
#include <http_main.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_auth.h>
#include <util_mutex.h>

#include "mod_auth_scalekit.h"
#include "sk_http.h"

sk_globals_t sk_globals;

static int pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    /* The directives fill these in again at every (re)read of the configuration. */
    memset(&sk_globals, 0, sizeof(sk_globals));

    ap_mutex_register(pconf, SK_MUTEX_PROVIDER_CACHE, NULL, APR_LOCK_DEFAULT, 0);
    ap_mutex_register(pconf, SK_MUTEX_SESSION_CACHE, NULL, APR_LOCK_DEFAULT, 0);
    ap_mutex_register(pconf, SK_MUTEX_FETCH, NULL, APR_LOCK_DEFAULT, 0);
    return OK;
}

static apr_status_t destroy_caches(void *data)
{
    server_rec *s = data;

    sk_cache_destroy(sk_globals.provider_cache, s);
    sk_cache_destroy(sk_globals.session_cache, s);
    sk_globals.provider_cache = NULL;
    sk_globals.session_cache = NULL;
    return APR_SUCCESS;
}

/* Creates and initialises one socache, with the shmcb default when spec is NULL. */
static apr_status_t setup_cache(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                const char *spec, const char *file,
                                apr_size_t size, const char *mutex_type,
                                const char *namespace, apr_size_t avg_value,
                                sk_cache_t **cache)
{
    const char *default_args = apr_psprintf(pconf, "%s(%" APR_SIZE_T_FMT ")",
                                            ap_runtime_dir_relative(pconf, file),
                                            size);
    const char *err;

    err = sk_cache_create(pconf, ptemp, spec ? spec : "shmcb",
                          spec ? NULL : default_args, mutex_type, cache);
    if (err != NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "%s: %s",
                     namespace, err);
        return APR_EINVAL;
    }
    return sk_cache_init(*cache, namespace, avg_value, s, pconf);
}

/*
 * Completes and checks every server's settings. check_config runs after virtual hosts
 * are merged and also for `apachectl configtest`, so a missing setting fails there.
 */
static int check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                        server_rec *s)
{
    server_rec *server;

    for (server = s; server != NULL; server = server->next) {
        sk_server_config_t *sc = ap_get_module_config(server->module_config,
                                                      &auth_scalekit_module);

        if (sk_config_is_client(sc)
            && sk_config_finish(pconf, server, sc) != APR_SUCCESS) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                       server_rec *s)
{
    server_rec *server;
    int clients = 0, cache_sessions = 0;
    apr_status_t rv;

    /* httpd runs post_config twice at start; the first pass only checks. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }

    for (server = s; server != NULL; server = server->next) {
        sk_server_config_t *sc = ap_get_module_config(server->module_config,
                                                      &auth_scalekit_module);

        if (sc->ready) {
            clients++;
            cache_sessions |= sc->session_store == SK_SESSION_STORE_CACHE;
        }
    }
    if (clients == 0) {
        return OK;
    }

    if (sk_http_global_init() != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "libcurl initialisation failed");
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    rv = ap_global_mutex_create(&sk_globals.fetch_mutex, NULL, SK_MUTEX_FETCH, NULL,
                                s, pconf, 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "cannot create the %s global "
                     "mutex", SK_MUTEX_FETCH);
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    apr_pool_cleanup_register(pconf, s, destroy_caches, apr_pool_cleanup_null);
    if (setup_cache(pconf, ptemp, s, sk_globals.provider_cache_spec,
                    "auth_scalekit_cache", SK_DEFAULT_PROVIDER_CACHE_SIZE,
                    SK_MUTEX_PROVIDER_CACHE, "ScalekitCache", 4096,
                    &sk_globals.provider_cache) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* Also for cookie sessions when configured, so that ended sessions are recorded
     * where every host behind a load balancer can check them. */
    if ((cache_sessions || sk_globals.session_cache_spec != NULL)
        && setup_cache(pconf, ptemp, s, sk_globals.session_cache_spec,
                       "auth_scalekit_sessions", SK_DEFAULT_SESSION_CACHE_SIZE,
                       SK_MUTEX_SESSION_CACHE, "ScalekitSessionCache", 1024,
                       &sk_globals.session_cache) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "mod_auth_scalekit/%s ready for %d "
                 "server(s), provider cache %s%s%s", SK_MODULE_VERSION, clients,
                 sk_globals.provider_cache_spec ? sk_globals.provider_cache_spec
                                                : "shmcb",
                 sk_globals.session_cache ? ", session cache " : "",
                 sk_globals.session_cache ? (sk_globals.session_cache_spec
                                             ? sk_globals.session_cache_spec
                                             : "shmcb") : "");
    return OK;
}

static void child_init(apr_pool_t *p, server_rec *s)
{
    apr_status_t rv;

    if (sk_globals.fetch_mutex == NULL) {
        return;
    }
    rv = apr_global_mutex_child_init(&sk_globals.fetch_mutex,
                                     apr_global_mutex_lockfile(sk_globals.fetch_mutex),
                                     p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "cannot attach to the %s global "
                     "mutex in this child", SK_MUTEX_FETCH);
    }
    sk_cache_child_init(sk_globals.provider_cache, p, s);
    sk_cache_child_init(sk_globals.session_cache, p, s);
}

static void register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_read_request(sk_strip_claim_headers, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_quick_handler(sk_quick_handler, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_check_authn(sk_check_authn, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_note_auth_failure(sk_note_auth_failure, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(sk_fixups, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_insert_error_filter(sk_insert_error_filter, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_output_filter("SCALEKIT_FORBIDDEN", sk_forbidden_filter, NULL,
                              AP_FTYPE_CONTENT_SET);
    sk_register_authz_providers(p);
}

AP_DECLARE_MODULE(auth_scalekit) = {
    STANDARD20_MODULE_STUFF,
    sk_create_dir_config,
    sk_merge_dir_config,
    sk_create_server_config,
    sk_merge_server_config,
    sk_directives,
    register_hooks
};
