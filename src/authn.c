/*
 * The authentication hook for AuthType Scalekit: a valid session sets r->user and the
 * claim variables; without one, a browser navigation starts a login and anything else
 * gets 401.
 */
#include <apr_strings.h>

#include <http_core.h>
#include <http_protocol.h>

#include "mod_auth_scalekit.h"
#include "sk_claims.h"

int sk_error_page(request_rec *r, int status, const char *title,
                  const char *message)
{
    const char *page = apr_psprintf(r->pool,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<title>Error: %s</title></head>\n<body>\n<h1>%s</h1>\n<p>%s</p>\n"
        "<p><a href=\"/\">Back to the start page</a></p>\n</body></html>\n",
        ap_escape_html(r->pool, title), ap_escape_html(r->pool, title),
        ap_escape_html(r->pool, message));

    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    ap_custom_response(r, status, page);
    return status;
}

const char *sk_redirect_uri(request_rec *r, const sk_server_config_t *sc)
{
    if (sc->redirect_uri[0] == '/') {
        return ap_construct_url(r->pool, sc->redirect_uri, r);
    }
    return sc->redirect_uri;
}

/*
 * Tells a top-level browser navigation from a script's request: only a navigation can
 * follow a redirect to the login page and come back.
 */
static int is_navigation(request_rec *r)
{
    const char *mode = apr_table_get(r->headers_in, "Sec-Fetch-Mode");
    const char *accept = apr_table_get(r->headers_in, "Accept");

    /* HEAD shares M_GET with GET, but no browser navigates with it. */
    if (r->method_number != M_GET || r->header_only) {
        return 0;
    }
    if (mode != NULL) {
        return strcasecmp(mode, "navigate") == 0;
    }
    if (apr_table_get(r->headers_in, "X-Requested-With") != NULL) {
        return 0;
    }
    if (accept == NULL) {
        return 1;
    }
    return ap_strcasestr(accept, "text/html") != NULL
           || (ap_strstr_c(accept, "*/*") != NULL
               && ap_strcasestr(accept, "application/json") == NULL);
}

static void add_param(request_rec *r, apr_array_header_t *params, const char *name,
                      const char *value)
{
    if (value != NULL) {
        APR_ARRAY_PUSH(params, const char *) =
            apr_pstrcat(r->pool, name, "=", ap_escape_urlencoded(r->pool, value),
                        NULL);
    }
}

/* Seals the login attempt into a state cookie and redirects to the provider. */
static int start_login(request_rec *r, sk_server_config_t *sc,
                       const sk_dir_config_t *dc)
{
    sk_provider_metadata_t *md;
    apr_array_header_t *params;
    const char *state, *nonce, *verifier, *cookie_name, *json, *sealed, *url;
    cJSON *doc;
    char *printed;

    if (sk_provider_metadata(r, sc, &md) != APR_SUCCESS) {
        return sk_error_page(r, HTTP_SERVICE_UNAVAILABLE,
                             "Identity provider unavailable",
                             "The sign-in service cannot be reached right now. "
                             "Please try again in a few minutes.");
    }

    state = sk_random_token(r->pool, 16);
    nonce = sk_random_token(r->pool, 16);
    verifier = sk_random_token(r->pool, 32);
    if (state == NULL || nonce == NULL || verifier == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "the random number generator "
                      "failed; cannot start a login");
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "state", state);
    cJSON_AddStringToObject(doc, "nonce", nonce);
    cJSON_AddStringToObject(doc, "verifier", verifier);
    cJSON_AddStringToObject(doc, "url", r->unparsed_uri);
    cJSON_AddNumberToObject(doc, "t", (double)apr_time_sec(apr_time_now()));
    printed = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (printed == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    json = apr_pstrdup(r->pool, printed);
    cJSON_free(printed);

    cookie_name = apr_pstrcat(r->pool, SK_STATE_COOKIE_PREFIX, state, NULL);
    sealed = sk_seal(r->pool, sc->state_key, cookie_name,
                     (const unsigned char *)json, strlen(json));
    if (sealed == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    sk_cookie_set(r, cookie_name, sealed, sc->redirect_path, SK_STATE_MAX_AGE);

    params = apr_array_make(r->pool, 12, sizeof(const char *));
    add_param(r, params, "response_type", "code");
    add_param(r, params, "client_id", sc->client_id);
    add_param(r, params, "redirect_uri", sk_redirect_uri(r, sc));
    add_param(r, params, "scope", sc->scopes);
    add_param(r, params, "state", state);
    add_param(r, params, "nonce", nonce);
    add_param(r, params, "code_challenge", sk_pkce_challenge(r->pool, verifier));
    add_param(r, params, "code_challenge_method", "S256");
    add_param(r, params, "connection_id", dc->connection_id);
    add_param(r, params, "organization_id", dc->organization_id);
    add_param(r, params, "domain", dc->domain);
    add_param(r, params, "login_hint", dc->login_hint);

    url = apr_pstrcat(r->pool, md->authorization_endpoint,
                      strchr(md->authorization_endpoint, '?') ? "&" : "?",
                      apr_array_pstrcat(r->pool, params, '&'), NULL);

    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "no session for %s: redirecting "
                  "to the authorization endpoint %s", r->uri,
                  md->authorization_endpoint);
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "Location", url);
    return HTTP_MOVED_TEMPORARILY;
}

/* Sets REMOTE_USER and the claim variables from the session. */
static int accept_session(request_rec *r, const sk_dir_config_t *dc,
                          const sk_session_t *session)
{
    const char *claim = dc->remote_user_claim ? dc->remote_user_claim : "sub";
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(session->claims, claim);
    const cJSON *item;
    const char *name;

    if (user == NULL || cJSON_IsNull(user)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "the session has no claim \"%s\" "
                      "to use as REMOTE_USER (ScalekitRemoteUserClaim)", claim);
        return sk_error_page(r, HTTP_FORBIDDEN, "Access denied",
                             "Your account does not provide the information "
                             "this site needs to identify you.");
    }

    r->user = sk_claim_value_text(r->pool, user);
    r->ap_auth_type = SK_AUTH_TYPE;

    cJSON_ArrayForEach(item, session->claims) {
        name = sk_claim_var_name(r->pool, SK_CLAIM_ENV_PREFIX, item->string);
        apr_table_setn(r->subprocess_env, name, sk_claim_value_text(r->pool, item));
    }

    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session accepted for user %s",
                  r->user);
    return OK;
}

int sk_check_authn(request_rec *r)
{
    const char *type = ap_auth_type(r);
    sk_server_config_t *sc;
    sk_dir_config_t *dc;
    sk_session_t *session = NULL;
    apr_status_t rv;

    if (type == NULL || strcasecmp(type, SK_AUTH_TYPE) != 0) {
        return DECLINED;
    }

    sc = ap_get_module_config(r->server->module_config, &auth_scalekit_module);
    dc = ap_get_module_config(r->per_dir_config, &auth_scalekit_module);
    if (!sc->ready) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "AuthType Scalekit is used for %s "
                      "but server %s has no ScalekitIssuer, ScalekitClientID, "
                      "ScalekitClientSecret and ScalekitSessionSecret", r->uri,
                      r->server->server_hostname);
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    rv = sk_session_load(r, sc, &session);
    if (rv == APR_SUCCESS) {
        return accept_session(r, dc, session);
    }
    if (rv == APR_EGENERAL) {
        return sk_error_page(r, HTTP_SERVICE_UNAVAILABLE, "Session store unavailable",
                             "Your session cannot be read right now. Please try "
                             "again in a few minutes.");
    }

    if (!is_navigation(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "no session for %s %s, which is "
                      "not a browser navigation: 401", r->method, r->uri);
        apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                       apr_psprintf(r->pool, "%s realm=\"%s\"", SK_AUTH_TYPE,
                                    ap_escape_quotes(r->pool, sc->issuer)));
        return HTTP_UNAUTHORIZED;
    }
    return start_login(r, sc, dc);
}
