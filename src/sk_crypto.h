/*
 * Symmetric crypto for mod_auth_scalekit: randomness, HKDF, sealed values and PKCE.
 * No httpd header is included here.
 */
#ifndef SK_CRYPTO_H
#define SK_CRYPTO_H

#include <apr_pools.h>
#include <apr_errno.h>

#define SK_KEY_LEN 32

/* Fills buf with bytes from OpenSSL's CSPRNG. Returns APR_EGENERAL when it fails. */
apr_status_t sk_random_bytes(unsigned char *buf, apr_size_t len);

/* Returns nbytes random bytes as base64url text, or NULL when the CSPRNG fails. */
char *sk_random_token(apr_pool_t *p, apr_size_t nbytes);

/*
 * Derives out_len bytes with HKDF-SHA256 (RFC 5869) from secret, salt and info.
 */
apr_status_t sk_hkdf_sha256(const unsigned char *secret, apr_size_t secret_len,
                            const char *salt, const char *info,
                            unsigned char *out, apr_size_t out_len);

/*
 * Seals plaintext with AES-256-GCM under key, binding aad (a purpose label such as
 * the cookie name) as additional data. The result is base64url text of
 * version byte || 12-byte nonce || ciphertext || 16-byte tag. Returns NULL on failure.
 */
char *sk_seal(apr_pool_t *p, const unsigned char key[SK_KEY_LEN], const char *aad,
              const unsigned char *plain, apr_size_t len);

/*
 * Opens a value made by sk_seal with the same key and aad. The tag is checked before
 * any plaintext is returned; *plain is NUL-terminated. Returns APR_SUCCESS or SK_EINVAL
 * for anything malformed, truncated, tampered or sealed under another key or aad.
 */
apr_status_t sk_unseal(apr_pool_t *p, const unsigned char key[SK_KEY_LEN],
                       const char *aad, const char *sealed,
                       unsigned char **plain, apr_size_t *len);

/* Returns the SHA-256 digest of len bytes as base64url text, or NULL on failure. */
char *sk_sha256_b64url(apr_pool_t *p, const void *data, apr_size_t len);

/* Returns the PKCE S256 code challenge for a verifier (RFC 7636, section 4.2). */
char *sk_pkce_challenge(apr_pool_t *p, const char *verifier);

/* Compares two NUL-terminated strings in time independent of where they differ. */
int sk_str_equal_ct(const char *a, const char *b);

#endif /* SK_CRYPTO_H */
