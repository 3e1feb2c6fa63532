/*
 * libFuzzer target for the provider documents: sk_discovery_parse, sk_jwks_parse
 * and sk_token_response_parse all read the same input, so a seed of one kind also
 * probes the other two parsers. Each accepted document is checked against what the
 * parser promises.
 */
#include <cJSON.h>

#include "fuzz_common.h"
#include "sk_jose.h"
#include "sk_oidc.h"

#define ISSUER "https://idp.example.test"
/* Ten years in seconds, the largest expires_in that sk_token_response_parse takes. */
#define MAX_EXPIRES_IN 315360000L

static int is_http_url(const char *url)
{
    return url != NULL
           && (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0);
}

static void check_rejection(apr_status_t rv, const char *err, const char *parser)
{
    FUZZ_CHECK(rv == SK_EINVAL, "%s returned %d", parser, rv);
    FUZZ_CHECK(err != NULL && err[0] != '\0', "%s rejected without a reason", parser);
}

static void fuzz_discovery(apr_pool_t *p, const char *text, size_t len)
{
    sk_provider_metadata_t *md = NULL;
    const char *err = NULL;
    apr_status_t rv = sk_discovery_parse(p, text, len, ISSUER, &md, &err);

    if (rv != APR_SUCCESS) {
        check_rejection(rv, err, "sk_discovery_parse");
        return;
    }
    FUZZ_CHECK(strcmp(md->issuer, ISSUER) == 0, "accepted issuer %s", md->issuer);
    FUZZ_CHECK(is_http_url(md->authorization_endpoint),
               "authorization_endpoint is not http(s)");
    FUZZ_CHECK(is_http_url(md->token_endpoint), "token_endpoint is not http(s)");
    FUZZ_CHECK(is_http_url(md->jwks_uri), "jwks_uri is not http(s)");
    FUZZ_CHECK(md->userinfo_endpoint == NULL || is_http_url(md->userinfo_endpoint),
               "userinfo_endpoint is not http(s)");
    FUZZ_CHECK(md->end_session_endpoint == NULL
               || is_http_url(md->end_session_endpoint),
               "end_session_endpoint is not http(s)");
}

static void fuzz_jwks(apr_pool_t *p, const char *text, size_t len)
{
    sk_jwks_t *jwks = NULL;
    const char *err = NULL;
    apr_status_t rv = sk_jwks_parse(p, text, len, &jwks, &err);

    if (rv != APR_SUCCESS) {
        check_rejection(rv, err, "sk_jwks_parse");
        return;
    }
    FUZZ_CHECK(sk_jwks_count(jwks) >= 1 && sk_jwks_count(jwks) <= 32,
               "a parsed JWKS has %d keys", sk_jwks_count(jwks));
}

static void fuzz_token_response(apr_pool_t *p, const char *text, size_t len)
{
    sk_token_response_t *tr = NULL;
    const char *err = NULL;
    apr_status_t rv = sk_token_response_parse(p, text, len, &tr, &err);
    cJSON *doc;

    if (rv != APR_SUCCESS) {
        check_rejection(rv, err, "sk_token_response_parse");
        return;
    }
    FUZZ_CHECK(tr->id_token != NULL && tr->id_token[0] != '\0',
               "accepted a response without id_token");
    FUZZ_CHECK(tr->expires_in >= -1 && tr->expires_in <= MAX_EXPIRES_IN,
               "expires_in is %ld", tr->expires_in);
    FUZZ_CHECK(tr->token_type == NULL || strcasecmp(tr->token_type, "Bearer") == 0,
               "accepted token_type %s", tr->token_type);
    doc = cJSON_ParseWithLength(text, len);
    FUZZ_CHECK(doc != NULL && cJSON_IsObject(doc),
               "accepted a body that cJSON does not read as an object");
    FUZZ_CHECK(!fuzz_has_duplicate_names(doc), "accepted a body that names a member twice");
    FUZZ_CHECK(cJSON_GetObjectItemCaseSensitive(doc, "error") == NULL
               || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(doc, "error")),
               "accepted a response with an error member");
    cJSON_Delete(doc);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup_begin();
    fuzz_global_pool();
    fuzz_setup_end();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_input_pool();
    const char *text = fuzz_cstring(p, data, size);

    fuzz_discovery(p, text, size);
    fuzz_jwks(p, text, size);
    fuzz_token_response(p, text, size);
    apr_pool_destroy(p);
    return 0;
}
