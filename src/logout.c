/*
 * The logout endpoint: ends the session here, then sends the browser to the provider's
 * end session endpoint so the Scalekit session ends too.
 */
#include <apr_strings.h>

#include <http_protocol.h>

#include "mod_auth_scalekit.h"
#include "sk_url.h"

/* Returns the value of name in the query string, decoded, or NULL. */
const char *sk_query_param(request_rec *r, const char *name)
{
    char *args = apr_pstrdup(r->pool, r->args ? r->args : "");
    apr_size_t name_len = strlen(name);
    char *last, *pair;

    for (pair = apr_strtok(args, "&", &last); pair;
         pair = apr_strtok(NULL, "&", &last)) {
        if (strncmp(pair, name, name_len) == 0 && pair[name_len] == '=') {
            char *value = pair + name_len + 1;

            return ap_unescape_urlencoded(value) == OK ? value : NULL;
        }
    }
    return NULL;
}

const char *sk_origin(request_rec *r)
{
    char *url = ap_construct_url(r->pool, "/", r);

    url[strlen(url) - 1] = '\0';
    return url;
}

const char *sk_local_target(request_rec *r, const char *target)
{
    return sk_url_check_target(r->pool, target, sk_origin(r), NULL);
}

/* Checks a logout target against this server and ScalekitLogoutRedirectAllowed. */
const char *sk_safe_target(request_rec *r, const sk_server_config_t *sc,
                           const char *target)
{
    const char *const *allowed = sc->allowed_hosts
                                 ? (const char *const *)sc->allowed_hosts->elts
                                 : NULL;

    return sk_url_check_target(r->pool, target, sk_origin(r), allowed);
}

int sk_handle_logout(request_rec *r, sk_server_config_t *sc)
{
    const char *return_to = sk_query_param(r, "return_to");
    const char *target = "/", *url, *hint = NULL;
    sk_provider_metadata_t *md = NULL;
    sk_session_t *session = NULL;

    if (r->method_number != M_GET && r->method_number != M_POST) {
        r->allowed = (AP_METHOD_BIT << M_GET) | (AP_METHOD_BIT << M_POST);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");

    if (sk_session_load(r, sc, &session) == APR_SUCCESS) {
        hint = sk_session_logout_hint(r, sc, session);
        sk_session_end(r, sc, session);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "logout of %s",
                      ap_escape_logitem(r->pool,
                                        sk_json_string(session->claims, "sub")));
    }
    else {
        session = NULL;
        sk_session_clear_cookies(r, sc);
    }

    if (return_to != NULL) {
        target = sk_safe_target(r, sc, return_to);
        if (target == NULL) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "logout: return_to \"%s\" "
                          "is neither on this server nor in "
                          "ScalekitLogoutRedirectAllowed; not followed",
                          ap_escape_logitem(r->pool, return_to));
            return sk_error_page(r, HTTP_BAD_REQUEST, "Signed out",
                                 "You have been signed out here, but the address to "
                                 "return to is not allowed.");
        }
    }
    target = target[0] == '/' ? ap_construct_url(r->pool, target, r) : target;

    /* Without an ID token the provider cannot tell whose session to end. */
    if (hint != NULL && sk_provider_metadata(r, sc, &md) == APR_SUCCESS
        && md->end_session_endpoint != NULL) {
        url = apr_pstrcat(r->pool, md->end_session_endpoint,
                          strchr(md->end_session_endpoint, '?') ? "&" : "?",
                          "id_token_hint=",
                          ap_escape_urlencoded(r->pool, hint),
                          "&post_logout_redirect_uri=",
                          ap_escape_urlencoded(r->pool, target),
                          "&state=", sk_random_token(r->pool, 16), NULL);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "logout: redirecting to the end "
                      "session endpoint %s", md->end_session_endpoint);
    }
    else {
        url = target;
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "logout: local only, "
                      "redirecting to %s", ap_escape_logitem(r->pool, target));
    }

    apr_table_setn(r->headers_out, "Location", url);
    return HTTP_MOVED_TEMPORARILY;
}
