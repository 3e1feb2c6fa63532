/*
 * Stand-ins for the httpd functions and module globals that src/session.c uses, so
 * that fuzz_seal can link the real cookie and session code without an httpd.
 *
 * The log function formats every message into a buffer, so ASan checks the format
 * arguments of each log call that a fuzz input reaches. The socache functions
 * behave like an empty cache that accepts writes.
 */
#include <stdarg.h>
#include <stdio.h>

#define SK_DECLARES_MODULE
#include "mod_auth_scalekit.h"
#include "glue_stubs.h"

module AP_MODULE_DECLARE_DATA auth_scalekit_module = {
    STANDARD20_MODULE_STUFF,
    NULL, NULL, NULL, NULL, NULL, NULL
};

sk_globals_t sk_globals;

/* Number of log calls that the current input reached. The target resets it. */
int fuzz_log_calls;

AP_DECLARE(void) ap_log_rerror_(const char *file, int line, int module_index,
                                int level, apr_status_t status,
                                const request_rec *r, const char *fmt, ...)
{
    char message[8192];
    va_list args;

    va_start(args, fmt);
    vsnprintf(message, sizeof(message), fmt, args);
    va_end(args);
    fuzz_log_calls++;
}

AP_DECLARE(const char *) ap_run_http_scheme(const request_rec *r)
{
    return "https";
}

apr_status_t sk_cache_get(sk_cache_t *cache, server_rec *s, apr_pool_t *p,
                          const char *key, char **value, apr_size_t *len)
{
    return APR_NOTFOUND;
}

apr_status_t sk_cache_set(sk_cache_t *cache, server_rec *s, apr_pool_t *p,
                          const char *key, const char *value, apr_size_t len,
                          apr_time_t expiry)
{
    return APR_SUCCESS;
}

apr_status_t sk_cache_remove(sk_cache_t *cache, server_rec *s, apr_pool_t *p,
                             const char *key)
{
    return APR_NOTFOUND;
}

request_rec *fuzz_make_request(apr_pool_t *p)
{
    request_rec *r = apr_pcalloc(p, sizeof(*r));
    struct ap_logconf *log = apr_pcalloc(p, sizeof(*log));

    /* Every log level on, so each log call formats its message. */
    log->level = APLOG_TRACE8;
    r->pool = p;
    r->log = log;
    r->server = apr_pcalloc(p, sizeof(*r->server));
    r->headers_in = apr_table_make(p, 8);
    r->headers_out = apr_table_make(p, 4);
    r->err_headers_out = apr_table_make(p, 4);
    r->notes = apr_table_make(p, 4);
    return r;
}
