/*
 * Discovery documents, token responses and the ID token claim rules of OpenID
 * Connect Core 1.0, section 3.1.3.7.
 */
#include <math.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_uri.h>

#include "sk_jose.h"
#include "sk_oidc.h"

/* Accepts an absolute http(s) URL with a host and no userinfo or fragment. */
static int is_http_url(apr_pool_t *p, const char *url)
{
    apr_uri_t uri;

    return url != NULL
           && (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0)
           && apr_uri_parse(p, url, &uri) == APR_SUCCESS
           && uri.hostname != NULL && uri.hostname[0] != '\0'
           && uri.user == NULL && uri.fragment == NULL;
}

static const char *optional_url(apr_pool_t *p, const cJSON *doc, const char *name)
{
    const char *url = sk_json_string(doc, name);

    return is_http_url(p, url) ? apr_pstrdup(p, url) : NULL;
}

apr_status_t sk_discovery_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                const char *expected_issuer,
                                sk_provider_metadata_t **metadata, const char **err)
{
    cJSON *doc = sk_json_parse_object(p, json, len);
    sk_provider_metadata_t *md;
    const char *issuer;

    if (doc == NULL) {
        *err = "discovery document is not a JSON object";
        return SK_EINVAL;
    }

    issuer = sk_json_string(doc, "issuer");
    if (issuer == NULL) {
        *err = "discovery document has no issuer";
        return SK_EINVAL;
    }
    if (strcmp(issuer, expected_issuer) != 0) {
        *err = apr_psprintf(p, "discovery issuer \"%s\" is not the configured "
                            "issuer \"%s\"", issuer, expected_issuer);
        return SK_EINVAL;
    }

    md = apr_pcalloc(p, sizeof(*md));
    md->issuer = apr_pstrdup(p, issuer);
    md->authorization_endpoint = optional_url(p, doc, "authorization_endpoint");
    md->token_endpoint = optional_url(p, doc, "token_endpoint");
    md->jwks_uri = optional_url(p, doc, "jwks_uri");
    md->userinfo_endpoint = optional_url(p, doc, "userinfo_endpoint");
    md->end_session_endpoint = optional_url(p, doc, "end_session_endpoint");

    if (md->authorization_endpoint == NULL) {
        *err = "discovery has no http(s) authorization_endpoint";
        return SK_EINVAL;
    }
    if (md->token_endpoint == NULL) {
        *err = "discovery has no http(s) token_endpoint";
        return SK_EINVAL;
    }
    if (md->jwks_uri == NULL) {
        *err = "discovery has no http(s) jwks_uri";
        return SK_EINVAL;
    }

    *metadata = md;
    return APR_SUCCESS;
}

apr_status_t sk_token_response_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                     sk_token_response_t **response, const char **err)
{
    cJSON *doc = sk_json_parse_object(p, json, len);
    const cJSON *expires;
    sk_token_response_t *tr;
    const char *error;

    if (doc == NULL) {
        *err = "token response is not a JSON object";
        return SK_EINVAL;
    }

    error = sk_json_string(doc, "error");
    if (error != NULL) {
        /* The description is the provider's free text: it stays out of logs. */
        *err = apr_psprintf(p, "token endpoint returned error \"%.64s\"", error);
        return SK_EINVAL;
    }

    tr = apr_pcalloc(p, sizeof(*tr));
    tr->id_token = sk_json_string(doc, "id_token");
    tr->access_token = sk_json_string(doc, "access_token");
    tr->token_type = sk_json_string(doc, "token_type");
    tr->refresh_token = sk_json_string(doc, "refresh_token");
    expires = cJSON_GetObjectItemCaseSensitive(doc, "expires_in");
    tr->expires_in = -1;
    if (expires != NULL) {
        /* Ten years bounds the value well inside a long and rejects nonsense. */
        if (!cJSON_IsNumber(expires) || !isfinite(expires->valuedouble)
            || expires->valuedouble < 0 || expires->valuedouble > 315360000.0) {
            *err = "token response has an invalid expires_in";
            return SK_EINVAL;
        }
        tr->expires_in = (long)expires->valuedouble;
    }

    if (tr->id_token == NULL || tr->id_token[0] == '\0') {
        *err = "token response has no id_token";
        return SK_EINVAL;
    }
    if (tr->token_type != NULL && strcasecmp(tr->token_type, "Bearer") != 0) {
        *err = "token response has a token_type other than Bearer";
        return SK_EINVAL;
    }

    *response = tr;
    return APR_SUCCESS;
}

/* Reads a NumericDate claim. Returns 0 when absent, 1 when valid, -1 when invalid. */
static int numeric_date(const cJSON *claims, const char *name, double *value)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);

    if (item == NULL) {
        return 0;
    }
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)
        || item->valuedouble < 0) {
        return -1;
    }
    *value = item->valuedouble;
    return 1;
}

static apr_status_t check_audience(const cJSON *claims, const char *client_id,
                                   const char **err)
{
    const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud");
    const cJSON *azp = cJSON_GetObjectItemCaseSensitive(claims, "azp");
    const cJSON *item;
    int found = 0, count = 0;

    if (cJSON_IsString(aud)) {
        found = strcmp(aud->valuestring, client_id) == 0;
        count = 1;
    }
    else if (cJSON_IsArray(aud)) {
        cJSON_ArrayForEach(item, aud) {
            if (!cJSON_IsString(item)) {
                *err = "ID token audience has a value that is not a string";
                return SK_EINVAL;
            }
            found |= strcmp(item->valuestring, client_id) == 0;
            count++;
        }
    }
    else {
        *err = "ID token audience is missing or not a string or array";
        return SK_EINVAL;
    }

    if (!found) {
        *err = "ID token audience does not contain the client id";
        return SK_EINVAL;
    }
    if (azp != NULL
        && (!cJSON_IsString(azp) || strcmp(azp->valuestring, client_id) != 0)) {
        *err = "ID token azp (authorized party) is not the client id";
        return SK_EINVAL;
    }
    if (count > 1 && azp == NULL) {
        *err = "ID token audience has several values and no azp";
        return SK_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t sk_idtoken_validate(const cJSON *claims, const sk_idtoken_expect_t *expect,
                                 const char **err)
{
    double now = (double)apr_time_sec(expect->now);
    double skew = (double)expect->clock_skew;
    const char *iss = sk_json_string(claims, "iss");
    const char *sub = sk_json_string(claims, "sub");
    const char *nonce = sk_json_string(claims, "nonce");
    double exp = 0, iat = 0, nbf = 0;
    int has;

    if (iss == NULL || strcmp(iss, expect->issuer) != 0) {
        *err = "ID token issuer is not the configured issuer";
        return SK_EINVAL;
    }
    if (check_audience(claims, expect->client_id, err) != APR_SUCCESS) {
        return SK_EINVAL;
    }

    if (numeric_date(claims, "exp", &exp) != 1) {
        *err = "ID token exp is missing or not a number";
        return SK_EINVAL;
    }
    if (exp + skew <= now) {
        *err = "ID token expired";
        return SK_EINVAL;
    }
    if (exp > now + SK_IDTOKEN_MAX_LIFETIME) {
        *err = "ID token exp is more than a year ahead (milliseconds instead of "
               "seconds?)";
        return SK_EINVAL;
    }

    if (numeric_date(claims, "iat", &iat) != 1) {
        *err = "ID token iat is missing or not a number";
        return SK_EINVAL;
    }
    if (iat > now + skew) {
        *err = "ID token iat (issued at) is in the future";
        return SK_EINVAL;
    }

    has = numeric_date(claims, "nbf", &nbf);
    if (has < 0 || (has > 0 && nbf > now + skew)) {
        *err = "ID token nbf (not before) is invalid or in the future";
        return SK_EINVAL;
    }

    if (expect->nonce != NULL
        && (nonce == NULL || strcmp(nonce, expect->nonce) != 0)) {
        *err = "ID token nonce does not match the one sent";
        return SK_EINVAL;
    }

    if (sub == NULL || sub[0] == '\0') {
        *err = "ID token sub is missing or empty";
        return SK_EINVAL;
    }
    return APR_SUCCESS;
}
