/*
 * base64url, JWK sets and RS256 JWS verification with OpenSSL 3 EVP.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "sk_jose.h"

#define SK_JWKS_MAX_KEYS 32

struct sk_key {
    const char *kid;            /* NULL when the JWK has none */
    EVP_PKEY *pkey;
};

struct sk_jwks_t {
    int count;
    struct sk_key keys[SK_JWKS_MAX_KEYS];
};

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *sk_b64url_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    char *out = apr_palloc(p, (len + 2) / 3 * 4 + 1);
    char *o = out;
    apr_size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        *o++ = b64url_alphabet[data[i] >> 2];
        *o++ = b64url_alphabet[((data[i] & 0x03) << 4) | (data[i + 1] >> 4)];
        *o++ = b64url_alphabet[((data[i + 1] & 0x0f) << 2) | (data[i + 2] >> 6)];
        *o++ = b64url_alphabet[data[i + 2] & 0x3f];
    }

    if (len - i == 1) {
        *o++ = b64url_alphabet[data[i] >> 2];
        *o++ = b64url_alphabet[(data[i] & 0x03) << 4];
    }
    else if (len - i == 2) {
        *o++ = b64url_alphabet[data[i] >> 2];
        *o++ = b64url_alphabet[((data[i] & 0x03) << 4) | (data[i + 1] >> 4)];
        *o++ = b64url_alphabet[(data[i + 1] & 0x0f) << 2];
    }

    *o = '\0';
    return out;
}

/* Maps a byte to its base64url value, or to 64 for a byte outside the alphabet. */
static const unsigned char b64url_values[256] = {
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 62, 64, 64,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 64, 64, 64,
    64,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 63,
    64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
};

apr_status_t sk_b64url_decode(apr_pool_t *p, const char *in, apr_size_t in_len,
                              unsigned char **out, apr_size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)in;
    apr_size_t full = in_len / 4 * 4, rest = in_len - full, i;
    unsigned char *buf, *o;
    unsigned int a, b, c, d;

    /* One leftover character carries only 6 bits, never a whole byte. */
    if (rest == 1) {
        return SK_EINVAL;
    }

    buf = apr_palloc(p, in_len / 4 * 3 + 3);
    o = buf;

    /* Four characters make three bytes. A byte outside the alphabet maps to 64, so
     * the OR of the four values exposes it. */
    for (i = 0; i < full; i += 4) {
        a = b64url_values[s[i]];
        b = b64url_values[s[i + 1]];
        c = b64url_values[s[i + 2]];
        d = b64url_values[s[i + 3]];
        if ((a | b | c | d) & 64) {
            return SK_EINVAL;
        }
        *o++ = (unsigned char)(a << 2 | b >> 4);
        *o++ = (unsigned char)(b << 4 | c >> 2);
        *o++ = (unsigned char)(c << 6 | d);
    }

    /* Non-zero padding bits mean a second spelling of the same bytes: reject it. */
    if (rest == 2) {
        a = b64url_values[s[full]];
        b = b64url_values[s[full + 1]];
        if (((a | b) & 64) || (b & 0x0f) != 0) {
            return SK_EINVAL;
        }
        *o++ = (unsigned char)(a << 2 | b >> 4);
    }
    else if (rest == 3) {
        a = b64url_values[s[full]];
        b = b64url_values[s[full + 1]];
        c = b64url_values[s[full + 2]];
        if (((a | b | c) & 64) || (c & 0x03) != 0) {
            return SK_EINVAL;
        }
        *o++ = (unsigned char)(a << 2 | b >> 4);
        *o++ = (unsigned char)(b << 4 | c >> 2);
    }

    *o = '\0';
    *out = buf;
    *out_len = (apr_size_t)(o - buf);
    return APR_SUCCESS;
}

static apr_status_t cleanup_cjson(void *data)
{
    cJSON_Delete(data);
    return APR_SUCCESS;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Returns whether an object names a member twice. RFC 7515, section 5.2, lets a
 * parser reject such a JOSE header or payload, and cJSON would silently take the
 * first, while another reader might take the last. */
static int has_duplicate_names(apr_pool_t *p, const cJSON *object)
{
    int count = cJSON_GetArraySize(object), i = 0;
    const char **names;
    const cJSON *item;

    if (count < 2) {
        return 0;
    }
    names = apr_palloc(p, sizeof(*names) * (apr_size_t)count);
    cJSON_ArrayForEach(item, object) {
        names[i++] = item->string;
    }
    qsort(names, (size_t)count, sizeof(*names), compare_names);
    for (i = 1; i < count; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

cJSON *sk_json_parse_object(apr_pool_t *p, const char *text, apr_size_t len)
{
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(text, len, &end, 0);

    if (json == NULL) {
        return NULL;
    }
    apr_pool_cleanup_register(p, json, cleanup_cjson, apr_pool_cleanup_null);

    /* cJSON stops after the first value: anything but whitespace after it means the
     * text is not one JSON object (RFC 7519, section 7.2, step 10). */
    while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\r'
                                || *end == '\n')) {
        end++;
    }
    if (end != text + len || !cJSON_IsObject(json) || has_duplicate_names(p, json)) {
        return NULL;
    }
    return json;
}

const char *sk_json_string(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static apr_status_t cleanup_jwks(void *data)
{
    sk_jwks_t *jwks = data;
    int i;

    for (i = 0; i < jwks->count; i++) {
        EVP_PKEY_free(jwks->keys[i].pkey);
    }
    jwks->count = 0;
    return APR_SUCCESS;
}

static BIGNUM *jwk_bignum(apr_pool_t *p, const cJSON *jwk, const char *name)
{
    const char *text = sk_json_string(jwk, name);
    unsigned char *bytes;
    apr_size_t len;

    if (text == NULL
        || sk_b64url_decode(p, text, strlen(text), &bytes, &len) != APR_SUCCESS
        || len == 0) {
        return NULL;
    }
    return BN_bin2bn(bytes, (int)len, NULL);
}

/* Builds an RSA public key from a JWK's n and e, or NULL when the JWK is unusable. */
static EVP_PKEY *jwk_rsa_key(apr_pool_t *p, const cJSON *jwk)
{
    BIGNUM *n = jwk_bignum(p, jwk, "n");
    BIGNUM *e = jwk_bignum(p, jwk, "e");
    OSSL_PARAM_BLD *builder = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (n == NULL || e == NULL || BN_num_bits(n) < SK_RSA_MIN_BITS) {
        goto done;
    }

    builder = OSSL_PARAM_BLD_new();
    if (builder == NULL
        || !OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_N, n)
        || !OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_E, e)) {
        goto done;
    }
    params = OSSL_PARAM_BLD_to_param(builder);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (params == NULL || ctx == NULL
        || EVP_PKEY_fromdata_init(ctx) <= 0
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        pkey = NULL;
    }

done:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(builder);
    BN_free(n);
    BN_free(e);
    return pkey;
}

apr_status_t sk_jwks_parse(apr_pool_t *p, const char *json, apr_size_t len,
                           sk_jwks_t **jwks_out, const char **err)
{
    cJSON *doc = sk_json_parse_object(p, json, len);
    const cJSON *keys, *jwk;
    sk_jwks_t *jwks;

    if (doc == NULL) {
        *err = "JWKS is not a JSON object";
        return SK_EINVAL;
    }
    keys = cJSON_GetObjectItemCaseSensitive(doc, "keys");
    if (!cJSON_IsArray(keys)) {
        *err = "JWKS has no \"keys\" array";
        return SK_EINVAL;
    }

    jwks = apr_pcalloc(p, sizeof(*jwks));
    apr_pool_cleanup_register(p, jwks, cleanup_jwks, apr_pool_cleanup_null);

    cJSON_ArrayForEach(jwk, keys) {
        const char *kty = sk_json_string(jwk, "kty");
        const char *use = sk_json_string(jwk, "use");
        const char *alg = sk_json_string(jwk, "alg");
        const char *kid = sk_json_string(jwk, "kid");
        EVP_PKEY *pkey;

        if (jwks->count == SK_JWKS_MAX_KEYS) {
            break;
        }
        if (!cJSON_IsObject(jwk) || kty == NULL || strcmp(kty, "RSA") != 0
            || (use != NULL && strcmp(use, "sig") != 0)
            || (alg != NULL && strcmp(alg, "RS256") != 0)) {
            continue;
        }
        pkey = jwk_rsa_key(p, jwk);
        if (pkey == NULL) {
            continue;
        }
        jwks->keys[jwks->count].kid = kid ? apr_pstrdup(p, kid) : NULL;
        jwks->keys[jwks->count].pkey = pkey;
        jwks->count++;
    }

    if (jwks->count == 0) {
        *err = "JWKS holds no usable RS256 key";
        return SK_EINVAL;
    }
    *jwks_out = jwks;
    return APR_SUCCESS;
}

int sk_jwks_count(const sk_jwks_t *jwks)
{
    return jwks ? jwks->count : 0;
}

static EVP_PKEY *find_key(const sk_jwks_t *jwks, const char *kid)
{
    int i;

    if (kid == NULL) {
        return jwks->count == 1 ? jwks->keys[0].pkey : NULL;
    }
    for (i = 0; i < jwks->count; i++) {
        if (jwks->keys[i].kid != NULL && strcmp(jwks->keys[i].kid, kid) == 0) {
            return jwks->keys[i].pkey;
        }
    }
    return NULL;
}

static int rs256_verify(EVP_PKEY *pkey, const char *input, apr_size_t input_len,
                        const unsigned char *sig, apr_size_t sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok;

    ok = md != NULL
         && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1
         && EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input,
                             input_len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static cJSON *decode_json_part(apr_pool_t *p, const char *part, apr_size_t len)
{
    unsigned char *bytes;
    apr_size_t n;

    if (sk_b64url_decode(p, part, len, &bytes, &n) != APR_SUCCESS) {
        return NULL;
    }
    return sk_json_parse_object(p, (const char *)bytes, n);
}

apr_status_t sk_jwt_verify(apr_pool_t *p, const char *token,
                           const sk_jwks_t *jwks, sk_jwt_t **jwt_out,
                           const char **err)
{
    const char *dot1, *dot2;
    apr_size_t len = strlen(token);
    unsigned char *sig;
    apr_size_t sig_len;
    EVP_PKEY *pkey;
    sk_jwt_t *jwt;

    if (len > SK_JWT_MAX_LEN) {
        *err = "token is larger than the limit";
        return SK_ETOOBIG;
    }

    /* Exactly three parts: a JWE has five and is not accepted here. */
    dot1 = strchr(token, '.');
    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL) {
        *err = "token is not a compact JWS of three parts";
        return SK_EINVAL;
    }

    jwt = apr_pcalloc(p, sizeof(*jwt));
    jwt->header = decode_json_part(p, token, (apr_size_t)(dot1 - token));
    if (jwt->header == NULL) {
        *err = "token header is not base64url-encoded JSON";
        return SK_EINVAL;
    }

    jwt->alg = sk_json_string(jwt->header, "alg");
    if (jwt->alg == NULL || strcmp(jwt->alg, "RS256") != 0) {
        *err = "token algorithm is not RS256";
        return SK_EINVAL;
    }
    if (cJSON_GetObjectItemCaseSensitive(jwt->header, "crit") != NULL) {
        *err = "token header has unsupported critical parameters";
        return SK_EINVAL;
    }

    if (cJSON_HasObjectItem(jwt->header, "kid")) {
        jwt->kid = sk_json_string(jwt->header, "kid");
        if (jwt->kid == NULL) {
            *err = "token kid is not a string";
            return SK_EINVAL;
        }
    }
    pkey = find_key(jwks, jwt->kid);
    if (pkey == NULL) {
        *err = jwt->kid ? "no JWKS key has the token's kid"
                        : "token has no kid and the JWKS has several keys";
        return jwt->kid ? SK_ENOKEY : SK_EINVAL;
    }

    if (sk_b64url_decode(p, dot2 + 1, strlen(dot2 + 1), &sig, &sig_len)
        != APR_SUCCESS || sig_len == 0) {
        *err = "token signature is not base64url";
        return SK_EINVAL;
    }
    if (!rs256_verify(pkey, token, (apr_size_t)(dot2 - token), sig, sig_len)) {
        *err = "token signature verification failed";
        return SK_EINVAL;
    }

    jwt->payload = decode_json_part(p, dot1 + 1, (apr_size_t)(dot2 - dot1 - 1));
    if (jwt->payload == NULL) {
        *err = "token payload is not base64url-encoded JSON object";
        return SK_EINVAL;
    }

    *jwt_out = jwt;
    return APR_SUCCESS;
}
