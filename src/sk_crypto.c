/*
 * Randomness, HKDF-SHA256, AES-256-GCM sealing and PKCE with OpenSSL 3.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "sk_crypto.h"
#include "sk_jose.h"

#define SEAL_VERSION 1
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_OVERHEAD (1 + SEAL_NONCE_LEN + SEAL_TAG_LEN)

apr_status_t sk_random_bytes(unsigned char *buf, apr_size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? APR_SUCCESS : APR_EGENERAL;
}

char *sk_random_token(apr_pool_t *p, apr_size_t nbytes)
{
    unsigned char *buf = apr_palloc(p, nbytes);

    if (sk_random_bytes(buf, nbytes) != APR_SUCCESS) {
        return NULL;
    }
    return sk_b64url_encode(p, buf, nbytes);
}

apr_status_t sk_hkdf_sha256(const unsigned char *secret, apr_size_t secret_len,
                            const char *salt, const char *info,
                            unsigned char *out, apr_size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[5];
    apr_status_t rv = APR_EGENERAL;

    EVP_KDF_free(kdf);
    if (ctx == NULL) {
        return rv;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                  (void *)secret, secret_len);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                                  (void *)salt, strlen(salt));
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                  (void *)info, strlen(info));
    params[4] = OSSL_PARAM_construct_end();

    if (EVP_KDF_derive(ctx, out, out_len, params) == 1) {
        rv = APR_SUCCESS;
    }
    EVP_KDF_CTX_free(ctx);
    return rv;
}

char *sk_seal(apr_pool_t *p, const unsigned char key[SK_KEY_LEN], const char *aad,
              const unsigned char *plain, apr_size_t len)
{
    unsigned char *buf = apr_palloc(p, len + SEAL_OVERHEAD);
    unsigned char *nonce = buf + 1;
    unsigned char *cipher = nonce + SEAL_NONCE_LEN;
    EVP_CIPHER_CTX *ctx = NULL;
    char *sealed = NULL;
    int n, final_len;

    if (len > (apr_size_t)(1 << 30)) {
        return NULL;
    }

    buf[0] = SEAL_VERSION;
    if (sk_random_bytes(nonce, SEAL_NONCE_LEN) != APR_SUCCESS) {
        return NULL;
    }

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL
        || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1
        || EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad,
                             (int)strlen(aad)) != 1
        || EVP_EncryptUpdate(ctx, cipher, &n, plain, (int)len) != 1
        || EVP_EncryptFinal_ex(ctx, cipher + n, &final_len) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN,
                               cipher + len) != 1) {
        goto done;
    }
    sealed = sk_b64url_encode(p, buf, len + SEAL_OVERHEAD);

done:
    EVP_CIPHER_CTX_free(ctx);
    return sealed;
}

apr_status_t sk_unseal(apr_pool_t *p, const unsigned char key[SK_KEY_LEN],
                       const char *aad, const char *sealed,
                       unsigned char **plain, apr_size_t *plain_len)
{
    unsigned char *buf, *out;
    apr_size_t len, cipher_len;
    EVP_CIPHER_CTX *ctx;
    apr_status_t rv = SK_EINVAL;
    int n, final_len;

    if (sk_b64url_decode(p, sealed, strlen(sealed), &buf, &len) != APR_SUCCESS
        || len < SEAL_OVERHEAD || buf[0] != SEAL_VERSION) {
        return SK_EINVAL;
    }

    cipher_len = len - SEAL_OVERHEAD;
    out = apr_palloc(p, cipher_len + 1);
    ctx = EVP_CIPHER_CTX_new();

    /* GCM authenticates at Final: the plaintext is handed out only after that. */
    if (ctx != NULL
        && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf + 1) == 1
        && EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad,
                             (int)strlen(aad)) == 1
        && EVP_DecryptUpdate(ctx, out, &n, buf + 1 + SEAL_NONCE_LEN,
                             (int)cipher_len) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN,
                               buf + 1 + SEAL_NONCE_LEN + cipher_len) == 1
        && EVP_DecryptFinal_ex(ctx, out + n, &final_len) == 1) {
        out[cipher_len] = '\0';
        *plain = out;
        *plain_len = cipher_len;
        rv = APR_SUCCESS;
    }
    else {
        OPENSSL_cleanse(out, cipher_len);
    }

    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

char *sk_sha256_b64url(apr_pool_t *p, const void *data, apr_size_t len)
{
    unsigned char digest[32];
    unsigned int digest_len = 0;

    if (EVP_Digest(data, len, digest, &digest_len, EVP_sha256(), NULL) != 1) {
        return NULL;
    }
    return sk_b64url_encode(p, digest, digest_len);
}

char *sk_pkce_challenge(apr_pool_t *p, const char *verifier)
{
    return sk_sha256_b64url(p, verifier, strlen(verifier));
}

int sk_str_equal_ct(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la != lb) {
        return 0;
    }
    return CRYPTO_memcmp(a, b, la) == 0;
}
