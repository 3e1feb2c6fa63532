/*
 * libFuzzer target for sk_jwt_verify, sk_idtoken_validate and base64url.
 *
 * The first input byte selects a mode (modulo 4), the rest is its data:
 *   0  a compact token, verified against two fixed JWK sets. One has the keys
 *      "fuzz-key-1" and "fuzz-key-2" among keys of other types, the other has key 1
 *      alone and without kid. A verified payload then goes through
 *      sk_idtoken_validate.
 *   1  "header JSON\npayload JSON": the target encodes both and signs them with
 *      key 1, so that the checks after the signature (alg, kid, crit, payload JSON
 *      and the ID token claim rules) get fuzzed too, which mode 0 cannot reach
 *      without forging a signature.
 *   2  text for sk_b64url_decode. Accepted text must be canonical: encoding the
 *      output again gives the same text.
 *   3  bytes that sk_b64url_encode and then sk_b64url_decode must return unchanged.
 */
#include <math.h>

#include <cJSON.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fuzz_common.h"
#include "fuzz_keys.h"
#include "sk_jose.h"
#include "sk_oidc.h"

#define ISSUER "https://idp.example.test"
#define CLIENT_ID "skc_fuzz"
#define NONCE "fuzz-nonce-0123456789"
#define NOW_SECONDS 1700000000
#define CLOCK_SKEW 60

#define B64URL_ALPHABET \
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

static EVP_PKEY *signing_key;
static sk_jwks_t *jwks_two;     /* kids fuzz-key-1 and fuzz-key-2 */
static sk_jwks_t *jwks_single;  /* key 1 without kid */

static EVP_PKEY *load_key(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    if (key == NULL) {
        fprintf(stderr, "cannot read a key of fuzz_keys.h\n");
        abort();
    }
    return key;
}

/* Returns the RSA parameter name ("n" or "e") of key as base64url text. */
static const char *key_param(apr_pool_t *p, EVP_PKEY *key, const char *name)
{
    BIGNUM *bn = NULL;
    unsigned char *bytes;
    int len;
    const char *text;

    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) {
        abort();
    }
    bytes = apr_palloc(p, (apr_size_t)BN_num_bytes(bn) + 1);
    len = BN_bn2bin(bn, bytes);
    text = sk_b64url_encode(p, bytes, (apr_size_t)len);
    BN_free(bn);
    return text;
}

/* Returns a JWK of the public part of key, with kid when kid is not NULL. */
static const char *public_jwk(apr_pool_t *p, EVP_PKEY *key, const char *kid)
{
    return apr_psprintf(p, "{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\"%s%s%s,"
                        "\"n\":\"%s\",\"e\":\"%s\"}",
                        kid ? ",\"kid\":\"" : "", kid ? kid : "", kid ? "\"" : "",
                        key_param(p, key, OSSL_PKEY_PARAM_RSA_N),
                        key_param(p, key, OSSL_PKEY_PARAM_RSA_E));
}

static sk_jwks_t *parse_jwks(apr_pool_t *p, const char *json, int expected_count)
{
    sk_jwks_t *jwks = NULL;
    const char *err = NULL;

    if (sk_jwks_parse(p, json, strlen(json), &jwks, &err) != APR_SUCCESS
        || sk_jwks_count(jwks) != expected_count) {
        fprintf(stderr, "the fixed JWKS was not parsed as expected: %s\n",
                err ? err : "wrong key count");
        abort();
    }
    return jwks;
}

static const char *sign_token(apr_pool_t *p, EVP_PKEY *key, const uint8_t *data,
                              size_t len);

/* Verifies one token of each key, so that OpenSSL's per-key caches are made during
 * the set-up and not counted as a leak of the first input that uses a key. */
static void warm_up(apr_pool_t *p, EVP_PKEY *key2)
{
    static const char payload[] = "\n{}";
    static const struct {
        const char *header;
        int second_key;
        int single;
    } cases[] = {
        {"{\"alg\":\"RS256\",\"kid\":\"fuzz-key-1\"}", 0, 0},
        {"{\"alg\":\"RS256\",\"kid\":\"fuzz-key-2\"}", 1, 0},
        {"{\"alg\":\"RS256\"}", 0, 1},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *input = apr_pstrcat(p, cases[i].header, payload, NULL);
        const char *token = sign_token(p, cases[i].second_key ? key2 : signing_key,
                                       (const uint8_t *)input, strlen(input));
        sk_jwt_t *jwt = NULL;
        const char *err = NULL;

        if (sk_jwt_verify(p, token, cases[i].single ? jwks_single : jwks_two, &jwt,
                          &err) != APR_SUCCESS) {
            fprintf(stderr, "warm-up token %zu was rejected: %s\n", i, err);
            abort();
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_pool_t *p;
    EVP_PKEY *key2;
    const char *json;

    fuzz_setup_begin();
    p = fuzz_global_pool();
    key2 = load_key(fuzz_key2_pem);
    signing_key = load_key(fuzz_key1_pem);

    /* Keys of other types and uses are in the set on purpose: parsing must skip
     * them and keep the two RS256 keys. */
    json = apr_psprintf(p, "{\"keys\":["
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec-1\",\"x\":\"f83OJ3D2xF1Bg8vub9"
        "tLe1gHMzV76e8Tus9uPHvRVEU\",\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
        "{\"kty\":\"oct\",\"kid\":\"hmac-1\",\"k\":\"c2VjcmV0\"},"
        "%s,"
        "{\"kty\":\"RSA\",\"use\":\"enc\",\"kid\":\"fuzz-key-1\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"okp-1\",\"x\":\"11qYAYKxCrfVS_7TyWQ"
        "HOg7hcvPapiMlrwIaaPcHURo\"},"
        "%s]}",
        public_jwk(p, signing_key, "fuzz-key-1"), public_jwk(p, key2, "fuzz-key-2"));
    jwks_two = parse_jwks(p, json, 2);
    jwks_single = parse_jwks(p, apr_psprintf(p, "{\"keys\":[%s]}",
                                             public_jwk(p, signing_key, NULL)), 1);
    warm_up(p, key2);
    EVP_PKEY_free(key2);
    fuzz_setup_end();
    return 0;
}

/* Checks that a verified payload really meets every rule sk_idtoken_validate
 * promises, read with cJSON directly. */
static void check_valid_claims(const cJSON *claims)
{
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(claims, "sub");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(claims, "exp");
    const cJSON *iat = cJSON_GetObjectItemCaseSensitive(claims, "iat");
    const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(claims, "nbf");
    const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud");
    const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(claims, "nonce");
    const cJSON *item;
    int found = 0;

    FUZZ_CHECK(cJSON_IsString(iss) && strcmp(iss->valuestring, ISSUER) == 0,
               "accepted an ID token of another issuer");
    FUZZ_CHECK(cJSON_IsString(sub) && sub->valuestring[0] != '\0',
               "accepted an ID token without a string sub");
    FUZZ_CHECK(cJSON_IsNumber(exp) && isfinite(exp->valuedouble)
               && exp->valuedouble + CLOCK_SKEW > NOW_SECONDS,
               "accepted an expired ID token or one without a numeric exp");
    FUZZ_CHECK(cJSON_IsNumber(iat) && iat->valuedouble <= NOW_SECONDS + CLOCK_SKEW,
               "accepted an ID token issued in the future or without iat");
    FUZZ_CHECK(nbf == NULL
               || (cJSON_IsNumber(nbf) && nbf->valuedouble <= NOW_SECONDS + CLOCK_SKEW),
               "accepted an ID token whose nbf is invalid or in the future");
    FUZZ_CHECK(cJSON_IsString(nonce) && strcmp(nonce->valuestring, NONCE) == 0,
               "accepted an ID token with another nonce");
    if (cJSON_IsString(aud)) {
        found = strcmp(aud->valuestring, CLIENT_ID) == 0;
    }
    else if (cJSON_IsArray(aud)) {
        cJSON_ArrayForEach(item, aud) {
            found |= cJSON_IsString(item) && strcmp(item->valuestring, CLIENT_ID) == 0;
        }
    }
    FUZZ_CHECK(found, "accepted an ID token whose aud lacks the client id");
}

static void validate_claims(const cJSON *payload)
{
    sk_idtoken_expect_t expect;
    const char *err = NULL;
    apr_status_t rv;

    expect.issuer = ISSUER;
    expect.client_id = CLIENT_ID;
    expect.nonce = NONCE;
    expect.now = apr_time_from_sec(NOW_SECONDS);
    expect.clock_skew = CLOCK_SKEW;
    rv = sk_idtoken_validate(payload, &expect, &err);
    if (rv == APR_SUCCESS) {
        check_valid_claims(payload);
    }
    else {
        FUZZ_CHECK(rv == SK_EINVAL, "sk_idtoken_validate returned %d", rv);
        FUZZ_CHECK(err != NULL && err[0] != '\0', "rejection without a reason");
    }
}

/* Verifies token against jwks and checks what sk_jwt_verify promises. */
static sk_jwt_t *verify(apr_pool_t *p, const char *token, const sk_jwks_t *jwks)
{
    sk_jwt_t *jwt = NULL;
    const char *err = NULL;
    const char *dot = strchr(token, '.');
    apr_status_t rv = sk_jwt_verify(p, token, jwks, &jwt, &err);

    if (rv != APR_SUCCESS) {
        FUZZ_CHECK(rv == SK_EINVAL || rv == SK_ENOKEY || rv == SK_ETOOBIG,
                   "sk_jwt_verify returned %d", rv);
        FUZZ_CHECK(err != NULL && err[0] != '\0', "rejection without a reason");
        FUZZ_CHECK(rv != SK_ETOOBIG || strlen(token) > SK_JWT_MAX_LEN,
                   "a token within the size limit was rejected as too big");
        /* The reason never quotes the token. A run of 20 base64url characters
         * is longer than any word of the fixed reasons, so finding the token's
         * first 20 characters in the reason means the token was copied there. */
        if (dot != NULL && dot - token >= 20
            && strspn(token, B64URL_ALPHABET) >= 20) {
            FUZZ_CHECK(strstr(err, apr_pstrmemdup(p, token, 20)) == NULL,
                       "the rejection reason contains token bytes: %s", err);
        }
        return NULL;
    }

    FUZZ_CHECK(strlen(token) <= SK_JWT_MAX_LEN, "accepted a token over the limit");
    FUZZ_CHECK(jwt != NULL && cJSON_IsObject(jwt->header)
               && cJSON_IsObject(jwt->payload), "verified token without JSON parts");
    FUZZ_CHECK(jwt->alg != NULL && strcmp(jwt->alg, "RS256") == 0,
               "accepted algorithm %s", jwt->alg ? jwt->alg : "(none)");
    FUZZ_CHECK(cJSON_GetObjectItemCaseSensitive(jwt->header, "crit") == NULL,
               "accepted a crit header");
    FUZZ_CHECK(!fuzz_has_duplicate_names(jwt->header)
               && !fuzz_has_duplicate_names(jwt->payload),
               "accepted a header or payload that names a member twice");
    if (jwks == jwks_single) {
        FUZZ_CHECK(jwt->kid == NULL, "a kid matched the key without kid");
    }
    else {
        FUZZ_CHECK(jwt->kid != NULL, "accepted a token without kid by a set of two");
        FUZZ_CHECK(strcmp(jwt->kid, "fuzz-key-1") == 0
                   || strcmp(jwt->kid, "fuzz-key-2") == 0,
                   "accepted kid %s", jwt->kid);
    }
    return jwt;
}

static void verify_and_validate(apr_pool_t *p, const char *token)
{
    sk_jwt_t *jwt = verify(p, token, jwks_two);

    if (jwt != NULL) {
        validate_claims(jwt->payload);
    }
    jwt = verify(p, token, jwks_single);
    if (jwt != NULL) {
        validate_claims(jwt->payload);
    }
}

/* Builds "b64(header).b64(payload).b64(signature by key)" from the bytes
 * "header\npayload". */
static const char *sign_token(apr_pool_t *p, EVP_PKEY *key, const uint8_t *data,
                              size_t len)
{
    const uint8_t *newline = memchr(data, '\n', len);
    size_t header_len = newline ? (size_t)(newline - data) : len;
    const uint8_t *payload = newline ? newline + 1 : data + len;
    size_t payload_len = len - header_len - (newline ? 1 : 0);
    const char *input = apr_pstrcat(p, sk_b64url_encode(p, data, header_len), ".",
                                    sk_b64url_encode(p, payload, payload_len), NULL);
    unsigned char sig[512];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    if (md == NULL
        || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1
        || EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input,
                          strlen(input)) != 1) {
        abort();
    }
    EVP_MD_CTX_free(md);
    return apr_pstrcat(p, input, ".", sk_b64url_encode(p, sig, sig_len), NULL);
}

static void fuzz_b64url_decode(apr_pool_t *p, const uint8_t *data, size_t len)
{
    unsigned char *out = NULL;
    apr_size_t out_len = 0;
    const char *text = fuzz_cstring(p, data, len);

    if (sk_b64url_decode(p, text, len, &out, &out_len) != APR_SUCCESS) {
        return;
    }
    FUZZ_CHECK(out[out_len] == '\0', "decoded output is not NUL-terminated");
    FUZZ_CHECK(out_len == len * 3 / 4, "decoded %zu bytes from %zu characters",
               (size_t)out_len, len);
    FUZZ_CHECK(strcmp(sk_b64url_encode(p, out, out_len), text) == 0 && strlen(text) == len,
               "accepted a non-canonical spelling");
}

static void fuzz_b64url_roundtrip(apr_pool_t *p, const uint8_t *data, size_t len)
{
    const char *text = sk_b64url_encode(p, data, len);
    unsigned char *out = NULL;
    apr_size_t out_len = 0;

    FUZZ_CHECK(strspn(text, B64URL_ALPHABET) == strlen(text),
               "the encoder wrote a character outside the base64url alphabet");
    FUZZ_CHECK(sk_b64url_decode(p, text, strlen(text), &out, &out_len) == APR_SUCCESS,
               "the decoder rejected the encoder's output %s", text);
    FUZZ_CHECK(out_len == len && memcmp(out, data, len) == 0,
               "encode then decode changed the bytes");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;

    if (size == 0) {
        return 0;
    }
    p = fuzz_input_pool();
    switch (data[0] % 4) {
    case 0:
        verify_and_validate(p, fuzz_cstring(p, data + 1, size - 1));
        break;
    case 1:
        verify_and_validate(p, sign_token(p, signing_key, data + 1, size - 1));
        break;
    case 2:
        fuzz_b64url_decode(p, data + 1, size - 1);
        break;
    default:
        fuzz_b64url_roundtrip(p, data + 1, size - 1);
        break;
    }
    apr_pool_destroy(p);
    return 0;
}
