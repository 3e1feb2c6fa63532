/*
 * JOSE for mod_auth_scalekit: base64url, JWK sets and JWS/JWT verification.
 *
 * This part of the library includes no httpd header, so the unit tests link it alone.
 * Objects live in APR pools; OpenSSL keys and cJSON trees are released by pool cleanups.
 */
#ifndef SK_JOSE_H
#define SK_JOSE_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <cJSON.h>

/* Errors that callers treat differently from a plain rejection. */
#define SK_EINVAL  (APR_OS_START_USERERR + 1)  /* malformed or rejected input */
#define SK_ENOKEY  (APR_OS_START_USERERR + 2)  /* no JWKS key matches the kid */
#define SK_ETOOBIG (APR_OS_START_USERERR + 3)  /* input over a size limit */

/* Largest compact JWS accepted: ID tokens with large group claims stay far below. */
#define SK_JWT_MAX_LEN (64 * 1024)

/* Smallest RSA modulus accepted for a signing key, in bits. */
#define SK_RSA_MIN_BITS 2048

/*
 * Encodes len bytes as base64url without padding (RFC 7515, section 2).
 */
char *sk_b64url_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len);

/*
 * Decodes strict base64url: the URL-safe alphabet only, no padding, no whitespace, and
 * no stray bits in the last character. The output is NUL-terminated (not counted in
 * out_len). Returns APR_SUCCESS or SK_EINVAL.
 */
apr_status_t sk_b64url_decode(apr_pool_t *p, const char *in, apr_size_t in_len,
                              unsigned char **out, apr_size_t *out_len);

/* A parsed JSON Web Key Set: only the keys usable for RS256 signatures are kept. */
typedef struct sk_jwks_t sk_jwks_t;

/*
 * Parses a JWK Set document. Keys that are not RSA, marked for another use than "sig",
 * marked for another algorithm than RS256, or shorter than SK_RSA_MIN_BITS are skipped,
 * so a set that mixes key types still works. Keys past the 32nd are ignored. Returns SK_EINVAL with *err set when the
 * document is not a JWK Set or contains no usable key.
 */
apr_status_t sk_jwks_parse(apr_pool_t *p, const char *json, apr_size_t len,
                           sk_jwks_t **jwks, const char **err);

/* Returns the number of usable keys in the set. */
int sk_jwks_count(const sk_jwks_t *jwks);

/* A verified JWS with a JSON payload. Both trees are owned by the pool. */
typedef struct {
    cJSON *header;
    cJSON *payload;
    const char *alg;
    const char *kid;        /* NULL when the header has none */
} sk_jwt_t;

/*
 * Verifies a compact JWS signed with RS256 by a key of the set and parses its payload.
 * The key is the one whose kid equals the header's kid. A header without kid is
 * accepted only when the set has exactly one key, and a kid that is not a string is
 * rejected.
 * "none", HMAC and every other algorithm are rejected, and so is a "crit" header. Returns APR_SUCCESS, SK_ENOKEY when no key has that kid (the caller may
 * refetch the set), SK_ETOOBIG, or SK_EINVAL; *err names the reason and never contains
 * token bytes.
 */
apr_status_t sk_jwt_verify(apr_pool_t *p, const char *token,
                           const sk_jwks_t *jwks, sk_jwt_t **jwt, const char **err);

/*
 * Parses a JSON text into a tree released with the pool. Returns NULL when the text
 * is not exactly one JSON object (trailing whitespace aside) or when the object names
 * a member twice.
 */
cJSON *sk_json_parse_object(apr_pool_t *p, const char *text, apr_size_t len);

/* Returns the string member name of obj, or NULL when absent or not a string. */
const char *sk_json_string(const cJSON *obj, const char *name);

#endif /* SK_JOSE_H */
