/*
 * Logins started from a link (the login path) and IdP-initiated logins. Neither logs
 * anyone in by itself: both start a normal authorization request.
 */
#include <apr_strings.h>

#include <http_protocol.h>
#include <http_request.h>

#include "mod_auth_scalekit.h"

/* Note on the main request while a subrequest only looks up a directory's settings. */
#define LOOKUP_NOTE "auth_scalekit_lookup"

int sk_is_lookup_subrequest(request_rec *r)
{
    return r->main != NULL && apr_table_get(r->main->notes, LOOKUP_NOTE) != NULL;
}

/* Fills login with the routing of the directory that target (a local path) is in. */
static void routing_for_path(request_rec *r, const char *path, sk_login_t *login)
{
    const char *query = strchr(path, '?');
    const char *uri = query ? apr_pstrmemdup(r->pool, path,
                                             (apr_size_t)(query - path))
                            : path;
    request_rec *sub;
    sk_dir_config_t *dc;

    apr_table_setn(r->notes, LOOKUP_NOTE, "1");
    sub = ap_sub_req_lookup_uri(uri, r, NULL);
    apr_table_unset(r->notes, LOOKUP_NOTE);

    dc = ap_get_module_config(sub->per_dir_config, &auth_scalekit_module);
    sk_login_from_dir(r, dc, login);
    ap_destroy_sub_req(sub);
}

int sk_handle_login(request_rec *r, sk_server_config_t *sc)
{
    const char *return_to = sk_query_param(r, "return_to");
    const char *token = sk_query_param(r, "idp_initiated_login");
    const char *target = "/";
    sk_session_t *session = NULL;
    sk_login_t login;

    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (token != NULL) {
        return sk_handle_idp_initiated(r, sc, token);
    }

    if (return_to != NULL) {
        target = sk_local_target(r, return_to);
        if (target == NULL) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "login: return_to \"%s\" "
                          "is not on this server; rejected",
                          ap_escape_logitem(r->pool, return_to));
            return sk_error_page(r, HTTP_BAD_REQUEST, "Invalid sign-in link",
                                 "The address to return to after signing in is "
                                 "not on this site.");
        }
    }

    /* A visitor who is signed in already goes straight on. */
    if (sk_session_load(r, sc, &session) == APR_SUCCESS) {
        apr_table_setn(r->headers_out, "Location",
                       target[0] == '/' ? ap_construct_url(r->pool, target, r)
                                        : target);
        return HTTP_MOVED_TEMPORARILY;
    }

    if (target[0] == '/') {
        routing_for_path(r, target, &login);
    }
    else {
        apr_uri_t uri;

        apr_uri_parse(r->pool, target, &uri);
        routing_for_path(r, uri.path ? uri.path : "/", &login);
    }
    login.return_to = target;
    return sk_start_login(r, sc, &login);
}

/* Returns a string claim that may go into a query parameter, or NULL. */
static const char *routing_claim(request_rec *r, const cJSON *claims,
                                 const char *name)
{
    const char *value = sk_json_string(claims, name);
    const char *c;

    if (value == NULL || value[0] == '\0' || strlen(value) > 256) {
        return NULL;
    }
    for (c = value; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            return NULL;
        }
    }
    return value;
}

int sk_handle_idp_initiated(request_rec *r, sk_server_config_t *sc,
                            const char *token)
{
    sk_provider_metadata_t *md;
    sk_jwt_t *jwt = NULL;
    sk_login_t login;
    const char *err = NULL, *iss, *relay_state;
    const cJSON *exp;
    apr_time_t now = apr_time_sec(apr_time_now());
    apr_status_t rv;

    if (sk_provider_metadata(r, sc, &md) != APR_SUCCESS) {
        return sk_provider_unavailable(r);
    }

    rv = sk_provider_verify_jwt(r, sc, md, token, &jwt, &err);

    if (rv == APR_SUCCESS) {
        iss = sk_json_string(jwt->payload, "iss");
        exp = cJSON_GetObjectItemCaseSensitive(jwt->payload, "exp");
        if (iss == NULL || strcmp(iss, sc->issuer) != 0) {
            err = "its issuer is not the configured issuer";
            rv = SK_EINVAL;
        }
        else if (!cJSON_IsNumber(exp)
                 || exp->valuedouble + sc->clock_skew <= (double)now) {
            err = "it expired or has no valid exp";
            rv = SK_EINVAL;
        }
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "IdP-initiated login rejected: %s",
                      err);
        return sk_error_page(r, HTTP_BAD_REQUEST, "Invalid sign-in link",
                             "This sign-in link from the identity provider is not "
                             "valid or has expired. Start again from your identity "
                             "provider or open the page you wanted.");
    }

    memset(&login, 0, sizeof(login));
    login.connection_id = routing_claim(r, jwt->payload, "connection_id");
    login.organization_id = routing_claim(r, jwt->payload, "organization_id");
    login.login_hint = routing_claim(r, jwt->payload, "login_hint");
    relay_state = sk_json_string(jwt->payload, "relay_state");
    login.return_to = relay_state ? sk_local_target(r, relay_state) : NULL;
    if (relay_state != NULL && login.return_to == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "IdP-initiated login: "
                      "relay_state \"%s\" is not on this server; returning to /",
                      ap_escape_logitem(r->pool, relay_state));
    }

    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "IdP-initiated login for connection "
                  "%s, organization %s: starting an authorization request",
                  login.connection_id ? login.connection_id : "-",
                  login.organization_id ? login.organization_id : "-");
    return sk_start_login(r, sc, &login);
}
