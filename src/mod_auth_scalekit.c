/*
 * mod_auth_scalekit: Scalekit single sign-on (OpenID Connect) for Apache httpd 2.4.
 * This file only wires the module's hooks and configuration together.
 */
#define SK_DECLARES_MODULE

#include <http_core.h>
#include <http_main.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_auth.h>

#include "mod_auth_scalekit.h"
#include "sk_http.h"

static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                       server_rec *s)
{
    server_rec *server;

    /* httpd runs post_config twice at start; the first pass only checks. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }

    if (sk_http_global_init() != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "libcurl initialisation failed");
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    for (server = s; server != NULL; server = server->next) {
        sk_server_config_t *sc = ap_get_module_config(server->module_config,
                                                      &auth_scalekit_module);

        if (!sk_config_is_client(sc)) {
            continue;
        }
        if (sk_config_finish(pconf, server, sc) != APR_SUCCESS) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "mod_auth_scalekit/%s loaded",
                 SK_MODULE_VERSION);
    return OK;
}

static void register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_quick_handler(sk_quick_handler, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_check_authn(sk_check_authn, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
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
