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

#include <apr_lib.h>

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

/*
 * Picks the state cookie slot for a new login at random. Pending logins live in at
 * most SK_STATE_SLOTS cookies, so a page that many tabs or scripts open at once cannot
 * pile up cookies. The state cookies are scoped to the callback path, so other
 * requests cannot see which slots are taken: two logins running at once share a slot
 * with a chance of 1 in SK_STATE_SLOTS, and then the older one fails with a state
 * mismatch page that tells the visitor to open the page again.
 */
static int choose_state_slot(void)
{
    unsigned char random_byte = 0;

    sk_random_bytes(&random_byte, 1);
    return random_byte % SK_STATE_SLOTS;
}

/*
 * Shortens the address to return to so the state cookie stays under the 4096 bytes
 * browsers keep per cookie: a long query is dropped, then a long path becomes "/".
 */
static const char *state_return_to(request_rec *r, const char *return_to)
{
    const char *query;

    if (return_to == NULL) {
        return "/";
    }
    if (strlen(return_to) <= SK_STATE_URL_MAX) {
        return return_to;
    }
    query = strchr(return_to, '?');
    if (query != NULL && (apr_size_t)(query - return_to) <= SK_STATE_URL_MAX) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "the address to return to after "
                      "login is longer than %d bytes; its query is dropped",
                      SK_STATE_URL_MAX);
        return apr_pstrmemdup(r->pool, return_to, (apr_size_t)(query - return_to));
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "the address to return to after login "
                  "is longer than %d bytes; the login returns to /", SK_STATE_URL_MAX);
    return "/";
}

int sk_start_login(request_rec *r, sk_server_config_t *sc, const sk_login_t *login)
{
    static const char slot_digits[] = "0123456789abcdef";
    sk_provider_metadata_t *md;
    apr_array_header_t *params;
    const char *random, *state, *nonce, *verifier, *cookie_name, *sealed, *url;
    cJSON *doc;
    char *json;
    int slot;

    if (sk_provider_metadata(r, sc, &md) != APR_SUCCESS) {
        return sk_provider_unavailable(r);
    }

    random = sk_random_token(r->pool, 16);
    nonce = sk_random_token(r->pool, 16);
    verifier = sk_random_token(r->pool, 32);
    if (random == NULL || nonce == NULL || verifier == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "the random number generator "
                      "failed; cannot start a login");
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    /* The state's first character names its cookie slot. */
    slot = choose_state_slot();
    state = apr_pstrcat(r->pool, apr_pstrndup(r->pool, slot_digits + slot, 1), random,
                        NULL);
    cookie_name = apr_psprintf(r->pool, "%s%c", SK_STATE_COOKIE_PREFIX,
                               slot_digits[slot]);

    doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "state", state);
    cJSON_AddStringToObject(doc, "nonce", nonce);
    cJSON_AddStringToObject(doc, "verifier", verifier);
    cJSON_AddStringToObject(doc, "url", state_return_to(r, login->return_to));
    cJSON_AddNumberToObject(doc, "t", (double)apr_time_sec(apr_time_now()));
    if (login->required_org != NULL) {
        cJSON_AddStringToObject(doc, "org", login->required_org);
    }
    json = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (json == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    sealed = sk_seal(r->pool, sc->state_key, cookie_name, (const unsigned char *)json,
                     strlen(json));
    cJSON_free(json);
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

    /* Only the most specific selector goes out: Scalekit would ignore the others. */
    if (login->connection_id != NULL) {
        add_param(r, params, "connection_id", login->connection_id);
    }
    else if (login->organization_id != NULL) {
        add_param(r, params, "organization_id", login->organization_id);
    }
    else if (login->domain != NULL) {
        add_param(r, params, "domain", login->domain);
    }
    add_param(r, params, "login_hint", login->login_hint);

    url = apr_pstrcat(r->pool, md->authorization_endpoint,
                      strchr(md->authorization_endpoint, '?') ? "&" : "?",
                      apr_array_pstrcat(r->pool, params, '&'), NULL);

    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "starting a login for %s: "
                  "redirecting to the authorization endpoint %s",
                  ap_escape_logitem(r->pool, login->return_to ? login->return_to : "/"),
                  md->authorization_endpoint);
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "Location", url);
    return HTTP_MOVED_TEMPORARILY;
}

const char *sk_checked_login_hint(const char *hint)
{
    const char *c, *at = NULL;

    if (hint == NULL || hint[0] == '\0' || strlen(hint) > 256) {
        return NULL;
    }
    for (c = hint; *c; c++) {
        if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '"' || *c == '<'
            || *c == '>' || *c == '\\') {
            return NULL;
        }
        if (*c == '@') {
            at = c;
        }
    }
    return at != NULL && at != hint && at[1] != '\0' ? hint : NULL;
}

void sk_login_from_dir(request_rec *r, const sk_dir_config_t *dc, sk_login_t *login)
{
    memset(login, 0, sizeof(*login));
    login->connection_id = dc->connection_id;
    login->organization_id = dc->organization_id;
    login->domain = dc->domain;
    login->login_hint = dc->login_hint;
    login->return_to = r->unparsed_uri;
    if (dc->connection_id == NULL) {
        login->required_org = dc->organization_id;
    }
    if (dc->allow_login_hint == 1) {
        const char *hint = sk_checked_login_hint(sk_query_param(r, "login_hint"));

        if (hint != NULL) {
            login->login_hint = hint;
        }
    }
}

static sk_request_state_t *request_state(request_rec *r)
{
    sk_request_state_t *state = ap_get_module_config(r->request_config,
                                                     &auth_scalekit_module);

    if (state == NULL) {
        state = apr_pcalloc(r->pool, sizeof(*state));
        ap_set_module_config(r->request_config, &auth_scalekit_module, state);
    }
    return state;
}

sk_session_t *sk_request_session(request_rec *r)
{
    for (; r != NULL; r = r->main ? r->main : r->prev) {
        sk_request_state_t *state = ap_get_module_config(r->request_config,
                                                         &auth_scalekit_module);

        if (state != NULL && state->session != NULL) {
            return state->session;
        }
    }
    return NULL;
}

/* Header name for a claim: the prefix, then the name with every byte outside
 * [A-Za-z0-9] as '-'. */
static const char *claim_header_name(request_rec *r, const char *claim)
{
    char *name = apr_pstrcat(r->pool, SK_CLAIM_HEADER_PREFIX, claim, NULL);
    char *c;

    for (c = name + strlen(SK_CLAIM_HEADER_PREFIX); *c; c++) {
        if (!apr_isalnum(*c) || (unsigned char)*c > 127) {
            *c = '-';
        }
    }
    return name;
}

/* Sets REMOTE_USER and the claim variables or headers from the session. */
static int accept_session(request_rec *r, const sk_dir_config_t *dc,
                          sk_session_t *session)
{
    const char *claim = dc->remote_user_claim ? dc->remote_user_claim : "sub";
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(session->claims, claim);
    int pass = dc->pass_claims_as == SK_UNSET ? SK_CLAIMS_ENV : dc->pass_claims_as;
    const cJSON *item;

    if (user == NULL || cJSON_IsNull(user)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "the session has no claim \"%s\" "
                      "to use as REMOTE_USER (ScalekitRemoteUserClaim)", claim);
        return sk_error_page(r, HTTP_FORBIDDEN, "Access denied",
                             "Your account does not provide the information "
                             "this site needs to identify you.");
    }

    r->user = sk_claim_value_text(r->pool, user);
    r->ap_auth_type = SK_AUTH_TYPE;
    request_state(r)->session = session;

    cJSON_ArrayForEach(item, session->claims) {
        const char *value = sk_claim_value_text(r->pool, item);

        if (pass & SK_CLAIMS_ENV) {
            apr_table_setn(r->subprocess_env,
                           sk_claim_var_name(r->pool, SK_CLAIM_ENV_PREFIX,
                                             item->string),
                           value);
        }
        if (pass & SK_CLAIMS_HEADERS) {
            apr_table_setn(r->headers_in, claim_header_name(r, item->string), value);
        }
    }

    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session accepted for user %s",
                  ap_escape_logitem(r->pool, r->user));
    return OK;
}

static int deny_unauthenticated(request_rec *r, sk_server_config_t *sc, int status)
{
    if (status == HTTP_UNAUTHORIZED) {
        apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                       apr_psprintf(r->pool, "%s realm=\"%s\"", SK_AUTH_TYPE,
                                    ap_escape_quotes(r->pool, sc->issuer)));
    }
    return status;
}

static int is_scalekit(request_rec *r)
{
    const char *type = ap_auth_type(r);

    return type != NULL && strcasecmp(type, SK_AUTH_TYPE) == 0;
}

int sk_check_authn(request_rec *r)
{
    sk_server_config_t *sc;
    sk_dir_config_t *dc;
    sk_session_t *session = NULL;
    sk_login_t login;
    const char *oid;
    apr_status_t rv;

    if (!is_scalekit(r)) {
        return DECLINED;
    }
    if (sk_is_lookup_subrequest(r)) {
        return HTTP_UNAUTHORIZED;
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
    if (rv == APR_EGENERAL) {
        return sk_error_page(r, HTTP_SERVICE_UNAVAILABLE, "Session store unavailable",
                             "Your session cannot be read right now. Please try "
                             "again in a few minutes.");
    }
    sk_login_from_dir(r, dc, &login);

    if (rv == APR_SUCCESS && login.required_org != NULL) {
        oid = sk_json_string(session->claims, "oid");
        if (oid == NULL || strcmp(oid, login.required_org) != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "the session belongs to "
                          "organization %s, %s requires %s",
                          ap_escape_logitem(r->pool, oid ? oid : "(none)"), r->uri,
                          login.required_org);
            if (is_navigation(r) && (dc->unauth_action == SK_UNAUTH_UNSET
                                     || dc->unauth_action == SK_UNAUTH_AUTH)) {
                return sk_start_login(r, sc, &login);
            }
            return sk_error_page(r, HTTP_FORBIDDEN, "Access denied",
                                 "This area belongs to another organization than "
                                 "the one you are signed in with.");
        }
    }
    if (rv == APR_SUCCESS) {
        sk_session_touch(r, sc, session);
        return accept_session(r, dc, session);
    }

    switch (dc->unauth_action) {
    case SK_UNAUTH_401:
    case SK_UNAUTH_PASS:
        return deny_unauthenticated(r, sc, HTTP_UNAUTHORIZED);
    case SK_UNAUTH_403:
        return deny_unauthenticated(r, sc, HTTP_FORBIDDEN);
    default:
        break;
    }
    if (!is_navigation(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "no session for %s %s, which is "
                      "not a browser navigation: 401", r->method, r->uri);
        return deny_unauthenticated(r, sc, HTTP_UNAUTHORIZED);
    }
    return sk_start_login(r, sc, &login);
}

/*
 * Exports the session where the authentication phase did not run: directories with
 * ScalekitUnauthAction pass under "Require all granted", and internal redirects that
 * reuse the parent's user.
 */
int sk_fixups(request_rec *r)
{
    sk_server_config_t *sc;
    sk_dir_config_t *dc;
    sk_session_t *session = sk_request_session(r);

    if (!is_scalekit(r)) {
        return DECLINED;
    }
    sc = ap_get_module_config(r->server->module_config, &auth_scalekit_module);
    dc = ap_get_module_config(r->per_dir_config, &auth_scalekit_module);
    if (!sc->ready) {
        return DECLINED;
    }

    if (r->user == NULL && dc->unauth_action != SK_UNAUTH_PASS) {
        return DECLINED;
    }
    if (ap_get_module_config(r->request_config, &auth_scalekit_module) != NULL) {
        return DECLINED;
    }
    if (session == NULL) {
        if (sk_session_load(r, sc, &session) != APR_SUCCESS) {
            return DECLINED;
        }
        /* A request that reaches a page counts as activity, with or without Require. */
        sk_session_touch(r, sc, session);
    }
    accept_session(r, dc, session);
    return DECLINED;
}

/* The page a signed-in visitor gets when a Require rule turns them away. */
#define FORBIDDEN_NOTE "auth_scalekit_forbidden"

int sk_note_auth_failure(request_rec *r, const char *auth_type)
{
    if (strcasecmp(auth_type, SK_AUTH_TYPE) != 0) {
        return DECLINED;
    }

    /* mod_authz_core calls this for a signed-in user it is about to reject with 401.
     * A new login would only meet the same rule again, so the status becomes 403. */
    if (r->user != NULL) {
        apr_table_setn(r->notes, FORBIDDEN_NOTE, "1");
        sk_error_page(r, HTTP_UNAUTHORIZED, "Access denied",
                      "You are signed in, but your account is not allowed to "
                      "open this page.");
    }
    return OK;
}

void sk_insert_error_filter(request_rec *r)
{
    if (r->status == HTTP_UNAUTHORIZED
        && apr_table_get(r->notes, FORBIDDEN_NOTE) != NULL) {
        ap_add_output_filter("SCALEKIT_FORBIDDEN", NULL, r, r->connection);
    }
}

apr_status_t sk_forbidden_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;

    r->status = HTTP_FORBIDDEN;
    r->status_line = NULL;
    apr_table_unset(r->err_headers_out, "WWW-Authenticate");
    apr_table_unset(r->headers_out, "WWW-Authenticate");
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

/* Removes claim headers a client sent, in any case and with '-' or '_', so only the
 * module can set them. Runs on every request of a server with a Scalekit client. */
int sk_strip_claim_headers(request_rec *r)
{
    sk_server_config_t *sc = ap_get_module_config(r->server->module_config,
                                                  &auth_scalekit_module);
    const apr_array_header_t *headers;
    const apr_table_entry_t *entries;
    apr_size_t prefix_len = strlen(SK_CLAIM_HEADER_PREFIX);
    int i;

    if (!sc->ready) {
        return DECLINED;
    }
    headers = apr_table_elts(r->headers_in);
    entries = (const apr_table_entry_t *)headers->elts;
    for (i = headers->nelts - 1; i >= 0; i--) {
        const char *key = entries[i].key;
        apr_size_t k;
        int match = key != NULL && strlen(key) >= prefix_len;

        for (k = 0; match && k < prefix_len; k++) {
            char c = key[k] == '_' ? '-' : (char)apr_tolower(key[k]);

            match = c == apr_tolower(SK_CLAIM_HEADER_PREFIX[k]);
        }
        if (match) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "removed the request "
                          "header %s sent by the client",
                          ap_escape_logitem(r->pool, key));
            apr_table_unset(r->headers_in, key);
        }
    }
    return DECLINED;
}
