/*
 * The redirect URI endpoint: checks the state, exchanges the code, validates the ID
 * token, creates the session and returns the browser to the page it came from.
 *
 * It runs as a quick handler, before any access checks, so the callback works whatever
 * <Location>, <Directory> or .htaccess covers its path, and it never serves content.
 */
#include <apr_strings.h>

#include <apr_lib.h>
#include <http_protocol.h>

#include "mod_auth_scalekit.h"

/* The query parameters the callback reads; a repeated one is an error. */
typedef struct {
    const char *state;
    const char *code;
    const char *error;
    const char *error_description;
    const char *iss;
    const char *idp_initiated_login;
    int repeated;
} callback_params_t;

typedef struct {
    const char *state;
    const char *nonce;
    const char *verifier;
    const char *url;
    const char *required_org;
    apr_time_t started;
} login_attempt_t;

static void set_param(request_rec *r, callback_params_t *params, const char **slot,
                      const char *raw)
{
    char *value = apr_pstrdup(r->pool, raw);

    if (*slot != NULL) {
        params->repeated = 1;
    }
    if (ap_unescape_urlencoded(value) != OK) {
        value = NULL;
    }
    *slot = value ? value : "";
}

static void parse_params(request_rec *r, callback_params_t *params)
{
    char *args = apr_pstrdup(r->pool, r->args ? r->args : "");
    char *last, *pair;

    memset(params, 0, sizeof(*params));
    for (pair = apr_strtok(args, "&", &last); pair;
         pair = apr_strtok(NULL, "&", &last)) {
        char *eq = strchr(pair, '=');
        const char *value = "";

        if (eq != NULL) {
            *eq = '\0';
            value = eq + 1;
        }
        if (strcmp(pair, "state") == 0) {
            set_param(r, params, &params->state, value);
        }
        else if (strcmp(pair, "code") == 0) {
            set_param(r, params, &params->code, value);
        }
        else if (strcmp(pair, "error") == 0) {
            set_param(r, params, &params->error, value);
        }
        else if (strcmp(pair, "error_description") == 0) {
            set_param(r, params, &params->error_description, value);
        }
        else if (strcmp(pair, "iss") == 0) {
            set_param(r, params, &params->iss, value);
        }
        else if (strcmp(pair, "idp_initiated_login") == 0) {
            set_param(r, params, &params->idp_initiated_login, value);
        }
    }
}

/* Opens the state cookie that belongs to the state parameter, and deletes it. */
static int open_login_attempt(request_rec *r, sk_server_config_t *sc,
                              const char *state, login_attempt_t *attempt)
{
    const char *cookie_name, *sealed;
    const cJSON *started;
    unsigned char *plain;
    apr_size_t len;
    cJSON *doc;
    apr_time_t now = apr_time_sec(apr_time_now());

    /* The state's first character is the hexadecimal digit of its cookie slot. */
    if (!apr_isxdigit(state[0]) || apr_isupper(state[0])) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: the state parameter "
                      "was not made by this module");
        return HTTP_BAD_REQUEST;
    }
    cookie_name = apr_psprintf(r->pool, "%s%c", SK_STATE_COOKIE_PREFIX, state[0]);
    sealed = sk_cookie_get(r, cookie_name);
    if (sealed == NULL || sealed[0] == '\0') {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: no state cookie for "
                      "this state (expired, already used, or the login started in "
                      "another browser)");
        return HTTP_BAD_REQUEST;
    }

    /* Single use: a replayed callback URL finds no cookie. */
    sk_cookie_set(r, cookie_name, "", sc->redirect_path, 0);

    if (sk_unseal(r->pool, sc->state_key, cookie_name, sealed, &plain, &len)
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: the state cookie could "
                      "not be decrypted (tampered, or sealed with another "
                      "ScalekitSessionSecret)");
        return HTTP_BAD_REQUEST;
    }

    doc = sk_json_parse_object(r->pool, (const char *)plain, len);
    started = cJSON_GetObjectItemCaseSensitive(doc, "t");
    attempt->state = sk_json_string(doc, "state");
    attempt->nonce = sk_json_string(doc, "nonce");
    attempt->verifier = sk_json_string(doc, "verifier");
    attempt->url = sk_json_string(doc, "url");
    if (doc == NULL || !cJSON_IsNumber(started) || attempt->state == NULL
        || attempt->nonce == NULL || attempt->verifier == NULL
        || attempt->url == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: the state cookie has "
                      "an unknown layout");
        return HTTP_BAD_REQUEST;
    }
    attempt->started = (apr_time_t)started->valuedouble;
    attempt->required_org = sk_json_string(doc, "org");

    if (!sk_str_equal_ct(attempt->state, state)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: state mismatch between "
                      "the request and its cookie");
        return HTTP_BAD_REQUEST;
    }
    if (now - attempt->started > SK_STATE_MAX_AGE + sc->clock_skew) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: the login state is "
                      "%" APR_TIME_T_FMT " seconds old, over the %d allowed",
                      now - attempt->started, SK_STATE_MAX_AGE);
        return HTTP_BAD_REQUEST;
    }
    return OK;
}

/*
 * Adds the userinfo endpoint's claims to the ID token's, after checking that both
 * describe the same sub (OpenID Connect Core 1.0, section 5.3.2). Claims of the ID
 * token are kept when both have one.
 */
static int merge_userinfo(request_rec *r, sk_server_config_t *sc,
                          const sk_provider_metadata_t *md, const char *access_token,
                          cJSON *claims)
{
    sk_http_response_t *resp = NULL;
    const char *err = NULL, *sub;
    cJSON *info;
    cJSON *item;
    apr_status_t rv;

    if (access_token == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: ScalekitUserInfo is on "
                      "but the token response has no access_token");
        return sk_error_page(r, HTTP_BAD_GATEWAY, "Sign-in failed",
                             "The sign-in service returned an incomplete answer.");
    }
    rv = sk_provider_get_bearer(r, sc, md->userinfo_endpoint, access_token, &resp,
                                &err);
    if (rv == APR_SUCCESS && resp->status != 200) {
        err = apr_psprintf(r->pool, "HTTP status %ld", resp->status);
        rv = APR_EGENERAL;
    }
    info = rv == APR_SUCCESS ? sk_json_parse_object(r->pool, resp->body, resp->len)
                             : NULL;
    if (info == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "callback: userinfo request to "
                      "%s failed: %s", md->userinfo_endpoint,
                      err ? err : "the response is not a JSON object");
        return sk_error_page(r, HTTP_BAD_GATEWAY, "Sign-in failed",
                             "The sign-in service could not provide your profile.");
    }

    sub = sk_json_string(info, "sub");
    if (sub == NULL || strcmp(sub, sk_json_string(claims, "sub")) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: userinfo sub does not "
                      "match the ID token's sub; userinfo rejected");
        return sk_error_page(r, HTTP_BAD_GATEWAY, "Sign-in failed",
                             "The sign-in service returned a profile of another "
                             "user.");
    }

    cJSON_ArrayForEach(item, info) {
        if (!cJSON_HasObjectItem(claims, item->string)) {
            cJSON_AddItemToObject(claims, item->string, cJSON_Duplicate(item, 1));
        }
    }
    return OK;
}

/* Sends the code to the token endpoint and returns the verified ID token claims. */
static int redeem_code(request_rec *r, sk_server_config_t *sc,
                       const sk_provider_metadata_t *md, const char *code,
                       const login_attempt_t *attempt, cJSON **claims,
                       const char **id_token)
{
    sk_http_response_t *resp = NULL;
    sk_token_response_t *tokens;
    sk_idtoken_expect_t expect;
    sk_jwt_t *jwt = NULL;
    const char *form, *err = NULL;
    apr_status_t rv;

    form = apr_pstrcat(r->pool,
        "grant_type=authorization_code",
        "&code=", ap_escape_urlencoded(r->pool, code),
        "&redirect_uri=", ap_escape_urlencoded(r->pool, sk_redirect_uri(r, sc)),
        "&client_id=", ap_escape_urlencoded(r->pool, sc->client_id),
        "&code_verifier=", ap_escape_urlencoded(r->pool, attempt->verifier),
        sc->token_auth_basic ? "" : "&client_secret=",
        sc->token_auth_basic ? "" : ap_escape_urlencoded(r->pool, sc->client_secret),
        NULL);

    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "callback: redeeming the code at %s "
                  "with %s", md->token_endpoint,
                  sc->token_auth_basic ? "client_secret_basic" : "client_secret_post");
    rv = sk_provider_post_form(r, sc, md->token_endpoint, form, &resp, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "callback: token request "
                      "failed: %s", err);
        return sk_error_page(r, HTTP_BAD_GATEWAY, "Sign-in failed",
                             "The sign-in service could not be reached to complete "
                             "the login. Please try again.");
    }

    rv = sk_token_response_parse(r->pool, resp->body, resp->len, &tokens, &err);
    if (resp->status != 200 || rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: token request to %s "
                      "returned HTTP status %ld: %s", md->token_endpoint,
                      resp->status, err ? err : "no id_token");
        return sk_error_page(r, HTTP_BAD_GATEWAY, "Sign-in failed",
                             "The sign-in service did not accept the login. "
                             "Please try again.");
    }

    rv = sk_provider_verify_jwt(r, sc, md, tokens->id_token, &jwt, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: ID token rejected: %s",
                      err);
        return sk_error_page(r, HTTP_BAD_GATEWAY, "Sign-in failed",
                             "The sign-in service returned an identity that could "
                             "not be verified.");
    }

    expect.issuer = sc->issuer;
    expect.client_id = sc->client_id;
    expect.nonce = attempt->nonce;
    expect.now = apr_time_now();
    expect.clock_skew = sc->clock_skew;
    if (sk_idtoken_validate(jwt->payload, &expect, &err) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: ID token rejected: %s",
                      err);
        return sk_error_page(r, HTTP_BAD_GATEWAY, "Sign-in failed",
                             "The sign-in service returned an identity that is not "
                             "valid for this site.");
    }

    if (sc->userinfo && md->userinfo_endpoint != NULL) {
        int status = merge_userinfo(r, sc, md, tokens->access_token, jwt->payload);

        if (status != OK) {
            return status;
        }
    }

    *claims = jwt->payload;
    *id_token = tokens->id_token;
    return OK;
}

static int handle_provider_error(request_rec *r, const callback_params_t *params)
{
    int status = HTTP_FORBIDDEN;

    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: the identity provider "
                  "returned error \"%s\": %s", ap_escape_logitem(r->pool, params->error),
                  ap_escape_logitem(r->pool, params->error_description
                                             ? params->error_description : ""));

    if (strcmp(params->error, "server_error") == 0
        || strcmp(params->error, "temporarily_unavailable") == 0) {
        status = HTTP_BAD_GATEWAY;
    }
    return sk_error_page(r, status, "Sign-in failed",
                         apr_psprintf(r->pool, "The sign-in service reported: %s%s%s",
                                      params->error,
                                      params->error_description ? " - " : "",
                                      params->error_description
                                          ? params->error_description : ""));
}

/*
 * Replaces the query of the request line with a placeholder, so the access log (%r,
 * %q, %U%q) never records the authorization code or an IdP-initiated login token.
 */
static void hide_query(request_rec *r)
{
    const char *q;

    if (r->args == NULL) {
        return;
    }
    r->args = apr_pstrdup(r->pool, "hidden");
    r->unparsed_uri = apr_pstrcat(r->pool, r->uri, "?hidden", NULL);
    r->parsed_uri.query = r->args;
    q = r->the_request ? strchr(r->the_request, '?') : NULL;
    if (q != NULL) {
        const char *space = strchr(q, ' ');

        r->the_request = apr_pstrcat(r->pool,
                                     apr_pstrmemdup(r->pool, r->the_request,
                                                    (apr_size_t)(q - r->the_request)),
                                     "?hidden", space ? space : "", NULL);
    }
}

static int handle_callback(request_rec *r, sk_server_config_t *sc)
{
    callback_params_t params;
    login_attempt_t attempt;
    sk_provider_metadata_t *md;
    cJSON *claims = NULL;
    const char *target, *id_token = NULL;
    apr_status_t rv;
    int status;

    if (r->method_number != M_GET) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: method %s is not "
                      "allowed", r->method);
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }

    parse_params(r, &params);
    hide_query(r);
    if (params.repeated) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: a parameter is "
                      "repeated in the query");
        return sk_error_page(r, HTTP_BAD_REQUEST, "Invalid sign-in response",
                             "The sign-in response is malformed.");
    }
    if (params.idp_initiated_login != NULL) {
        return sk_handle_idp_initiated(r, sc, params.idp_initiated_login);
    }
    if (params.state == NULL || params.state[0] == '\0') {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: the request has no "
                      "state parameter");
        return sk_error_page(r, HTTP_BAD_REQUEST, "Invalid sign-in response",
                             "The sign-in response has no state. Open the page you "
                             "wanted again to sign in.");
    }

    status = open_login_attempt(r, sc, params.state, &attempt);
    if (status != OK) {
        return sk_error_page(r, status, "Sign-in expired or invalid",
                             "This sign-in response does not match a sign-in "
                             "started in this browser, or it took too long. Open "
                             "the page you wanted again to sign in.");
    }

    if (params.error != NULL) {
        return handle_provider_error(r, &params);
    }

    if (params.iss != NULL && strcmp(params.iss, sc->issuer) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: the iss parameter "
                      "\"%s\" is not the configured issuer (RFC 9207)",
                      ap_escape_logitem(r->pool, params.iss));
        return sk_error_page(r, HTTP_BAD_REQUEST, "Invalid sign-in response",
                             "The sign-in response came from another issuer.");
    }
    if (params.code == NULL || params.code[0] == '\0') {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: the request has no "
                      "code parameter");
        return sk_error_page(r, HTTP_BAD_REQUEST, "Invalid sign-in response",
                             "The sign-in response has no authorization code.");
    }

    if (sk_provider_metadata(r, sc, &md) != APR_SUCCESS) {
        return sk_provider_unavailable(r);
    }

    status = redeem_code(r, sc, md, params.code, &attempt, &claims, &id_token);
    if (status != OK) {
        return status;
    }

    if (attempt.required_org != NULL) {
        const char *oid = sk_json_string(claims, "oid");

        if (oid == NULL || strcmp(oid, attempt.required_org) != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: the login yielded "
                          "organization %s, but %s requires %s; no session created",
                          ap_escape_logitem(r->pool, oid ? oid : "(none)"),
                          ap_escape_logitem(r->pool, attempt.url),
                          attempt.required_org);
            return sk_error_page(r, HTTP_FORBIDDEN, "Access denied",
                                 "You signed in with an account of another "
                                 "organization than the one this area belongs to.");
        }
    }

    rv = sk_session_save(r, sc, claims, id_token);
    if (rv == APR_ENOSPC) {
        return sk_error_page(r, HTTP_INTERNAL_SERVER_ERROR, "Sign-in failed",
                             "Your account carries more information than a session "
                             "can hold. Please tell the site administrator.");
    }
    if (rv != APR_SUCCESS) {
        return sk_error_page(r, HTTP_SERVICE_UNAVAILABLE, "Sign-in failed",
                             "The session store is not available right now. "
                             "Please try again in a few minutes.");
    }

    target = sk_local_target(r, attempt.url);
    if (target == NULL) {
        target = "/";
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "login of %s (organization %s) "
                  "succeeded", ap_escape_logitem(r->pool, sk_json_string(claims, "sub")),
                  ap_escape_logitem(r->pool, sk_json_string(claims, "oid")
                                             ? sk_json_string(claims, "oid") : "-"));
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "Location",
                   target[0] == '/' ? ap_construct_url(r->pool, target, r) : target);
    return HTTP_MOVED_TEMPORARILY;
}

int sk_quick_handler(request_rec *r, int lookup)
{
    sk_server_config_t *sc;

    if (lookup || r->main != NULL) {
        return DECLINED;
    }
    sc = ap_get_module_config(r->server->module_config, &auth_scalekit_module);
    if (!sc->ready || r->uri == NULL) {
        return DECLINED;
    }
    if (strcmp(r->uri, sc->redirect_path) == 0) {
        return handle_callback(r, sc);
    }
    if (strcmp(r->uri, sc->logout_path) == 0) {
        return sk_handle_logout(r, sc);
    }
    if (strcmp(r->uri, sc->login_path) == 0) {
        return sk_handle_login(r, sc);
    }
    return DECLINED;
}
