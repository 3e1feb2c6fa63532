/*
 * Tests for sk_crypto.h: sealed values, HKDF, PKCE, random tokens and the
 * constant-time string comparison.
 */
#include <string.h>

#include <apr_strings.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "sk_crypto.h"
#include "sk_jose.h"
#include "unit.h"

#define AAD "sk_session"

/* Bytes that a sealed value adds to its plaintext: version, nonce, tag. */
#define SEAL_OVERHEAD (1 + 12 + 16)

static const char plaintext[] = "{\"sub\":\"user_1\",\"exp\":1733333633}";

static unsigned char key[SK_KEY_LEN];
static unsigned char other_key[SK_KEY_LEN];

static void seal_setup(void)
{
    unit_pool_setup();

    ck_assert_msg(RAND_bytes(key, sizeof(key)) == 1, "RAND_bytes failed");
    ck_assert_msg(RAND_bytes(other_key, sizeof(other_key)) == 1,
                  "RAND_bytes failed");
}

static char *seal_text(const char *text)
{
    char *sealed = sk_seal(unit_pool, key, AAD, (const unsigned char *)text,
                           strlen(text));

    ck_assert_msg(sealed != NULL, "sk_seal returned NULL");
    return sealed;
}

/* Unseals with key and AAD and returns the status. */
static apr_status_t unseal(const char *sealed)
{
    unsigned char *plain = NULL;
    apr_size_t len = 0;

    return sk_unseal(unit_pool, key, AAD, sealed, &plain, &len);
}

/* Round trips for plaintext lengths around the AES block size, with bytes
 * that include NUL. */
START_TEST(seal_round_trip)
{
    static const apr_size_t lengths[] = { 0, 1, 15, 16, 17, 1000 };
    apr_size_t n = lengths[_i];
    unsigned char data[1000];
    unsigned char *plain = NULL;
    apr_size_t len = 12345;
    char *sealed;
    apr_status_t rv;

    ck_assert_msg(RAND_bytes(data, sizeof(data)) == 1, "RAND_bytes failed");
    data[0] = '\0';

    sealed = sk_seal(unit_pool, key, AAD, data, n);

    ck_assert_msg(sealed != NULL, "length %lu: sk_seal returned NULL",
                  (unsigned long)n);
    ck_assert_msg(strlen(sealed) == (4 * (n + SEAL_OVERHEAD) + 2) / 3,
                  "length %lu: sealed text has %lu characters, expected the "
                  "base64url of %lu bytes", (unsigned long)n,
                  (unsigned long)strlen(sealed),
                  (unsigned long)(n + SEAL_OVERHEAD));
    ck_assert_msg(strspn(sealed, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "abcdefghijklmnopqrstuvwxyz0123456789-_")
                  == strlen(sealed),
                  "length %lu: sealed text is not base64url: %s",
                  (unsigned long)n, sealed);

    rv = sk_unseal(unit_pool, key, AAD, sealed, &plain, &len);

    ck_assert_msg(rv == APR_SUCCESS, "length %lu: sk_unseal is %s",
                  (unsigned long)n, unit_status_name(rv));
    ck_assert_msg(len == n, "length %lu: unsealed %lu bytes",
                  (unsigned long)n, (unsigned long)len);
    ck_assert_msg(memcmp(plain, data, n) == 0,
                  "length %lu: unsealed bytes differ from the plaintext",
                  (unsigned long)n);
    ck_assert_msg(plain[len] == '\0',
                  "length %lu: unsealed text is not NUL-terminated",
                  (unsigned long)n);
}
END_TEST

/* Each seal draws a fresh nonce, so equal plaintexts seal differently. */
START_TEST(seal_fresh_nonce)
{
    char *first = seal_text(plaintext);
    char *second = seal_text(plaintext);
    unsigned char *a = NULL;
    unsigned char *b = NULL;
    long a_len = unit_b64url_decode(unit_pool, first, &a);
    long b_len = unit_b64url_decode(unit_pool, second, &b);

    ck_assert_msg(strcmp(first, second) != 0,
                  "two seals of one plaintext are equal: %s", first);
    ck_assert_msg(a_len == (long)(strlen(plaintext) + SEAL_OVERHEAD),
                  "decoded %ld bytes, expected %lu", a_len,
                  (unsigned long)(strlen(plaintext) + SEAL_OVERHEAD));
    ck_assert_msg(b_len == a_len, "the two seals differ in length");
    ck_assert_msg(a[0] == b[0], "the version byte differs between seals");
    ck_assert_msg(memcmp(a + 1, b + 1, 12) != 0,
                  "two seals use the same nonce");
}
END_TEST

/* Every single-character change of the sealed text is rejected. */
START_TEST(seal_flipped_char)
{
    char *sealed = seal_text(plaintext);
    apr_size_t len = strlen(sealed);

    for (apr_size_t i = 0; i < len; i++) {
        char *changed = apr_pstrdup(unit_pool, sealed);
        apr_status_t rv;

        changed[i] = changed[i] == 'A' ? 'B' : 'A';
        rv = unseal(changed);

        ck_assert_msg(rv == SK_EINVAL, "character %lu of %lu changed: status "
                      "is %s, expected SK_EINVAL", (unsigned long)i,
                      (unsigned long)len, unit_status_name(rv));
    }
}
END_TEST

/* Every single-bit change of the sealed bytes, re-encoded, is rejected. */
START_TEST(seal_flipped_bit)
{
    char *sealed = seal_text(plaintext);
    unsigned char *bytes = NULL;
    long len = unit_b64url_decode(unit_pool, sealed, &bytes);

    ck_assert_msg(len > 0, "sealed text is not base64url: %s", sealed);

    for (long i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            apr_status_t rv;

            bytes[i] ^= (unsigned char)(1 << bit);
            rv = unseal(unit_b64url(unit_pool, bytes, (size_t)len));
            bytes[i] ^= (unsigned char)(1 << bit);

            ck_assert_msg(rv == SK_EINVAL, "byte %ld bit %d flipped: status "
                          "is %s, expected SK_EINVAL", i, bit,
                          unit_status_name(rv));
        }
    }
}
END_TEST

/* Every proper prefix of the sealed text is rejected, the empty one too. */
START_TEST(seal_truncated)
{
    char *sealed = seal_text(plaintext);
    apr_size_t len = strlen(sealed);

    for (apr_size_t i = 0; i < len; i++) {
        apr_status_t rv = unseal(apr_pstrndup(unit_pool, sealed, i));

        ck_assert_msg(rv == SK_EINVAL, "prefix of %lu of %lu characters: "
                      "status is %s, expected SK_EINVAL", (unsigned long)i,
                      (unsigned long)len, unit_status_name(rv));
    }
}
END_TEST

START_TEST(seal_extended)
{
    char *sealed = seal_text(plaintext);
    apr_status_t rv = unseal(apr_pstrcat(unit_pool, sealed, "AAAA", NULL));

    ck_assert_msg(rv == SK_EINVAL, "sealed text with 4 characters appended: "
                  "status is %s, expected SK_EINVAL", unit_status_name(rv));
}
END_TEST

START_TEST(seal_empty)
{
    apr_status_t rv = unseal("");

    ck_assert_msg(rv == SK_EINVAL, "empty string: status is %s, expected "
                  "SK_EINVAL", unit_status_name(rv));
}
END_TEST

START_TEST(seal_garbage)
{
    static const char *inputs[] = {
        "not a sealed value", "AAAA", "====", "a.b.c",
    };
    apr_status_t rv = unseal(inputs[_i]);

    ck_assert_msg(rv == SK_EINVAL, "input '%s': status is %s, expected "
                  "SK_EINVAL", inputs[_i], unit_status_name(rv));
}
END_TEST

START_TEST(seal_wrong_key)
{
    char *sealed = seal_text(plaintext);
    unsigned char *plain = NULL;
    apr_size_t len = 0;
    apr_status_t rv = sk_unseal(unit_pool, other_key, AAD, sealed, &plain,
                                &len);

    ck_assert_msg(rv == SK_EINVAL, "another key: status is %s, expected "
                  "SK_EINVAL", unit_status_name(rv));
}
END_TEST

START_TEST(seal_wrong_aad)
{
    static const char *aads[] = { "sk_state", "", "sk_session ", "SK_SESSION" };
    char *sealed = seal_text(plaintext);
    unsigned char *plain = NULL;
    apr_size_t len = 0;
    apr_status_t rv = sk_unseal(unit_pool, key, aads[_i], sealed, &plain,
                                &len);

    ck_assert_msg(rv == SK_EINVAL, "aad '%s': status is %s, expected "
                  "SK_EINVAL", aads[_i], unit_status_name(rv));
}
END_TEST

/* A sealed value with another version byte and a valid tag for it cannot be
 * made without the key, so this changes the byte and keeps the old tag. */
START_TEST(seal_version_byte)
{
    char *sealed = seal_text(plaintext);
    unsigned char *bytes = NULL;
    long len = unit_b64url_decode(unit_pool, sealed, &bytes);
    apr_status_t rv;

    ck_assert_msg(len > 0, "sealed text is not base64url: %s", sealed);

    bytes[0] = (unsigned char)(bytes[0] + 1);
    rv = unseal(unit_b64url(unit_pool, bytes, (size_t)len));

    ck_assert_msg(rv == SK_EINVAL, "version byte %u: status is %s, expected "
                  "SK_EINVAL", bytes[0], unit_status_name(rv));
}
END_TEST

static void hkdf(const char *secret, const char *salt, const char *info,
                 unsigned char *out, apr_size_t out_len)
{
    apr_status_t rv = sk_hkdf_sha256((const unsigned char *)secret,
                                     strlen(secret), salt, info, out,
                                     out_len);

    ck_assert_msg(rv == APR_SUCCESS, "sk_hkdf_sha256 is %s",
                  unit_status_name(rv));
}

/*
 * RFC 5869, appendix A.3: SHA-256 with an empty salt and empty info, which
 * the C string interface can express (test cases 1 and 2 use binary salt
 * and info, which it cannot).
 */
START_TEST(hkdf_rfc5869)
{
    static const unsigned char okm[42] = {
        0x8d, 0xa4, 0xe7, 0x75, 0xa5, 0x63, 0xc1, 0x8f, 0x71, 0x5f, 0x80,
        0x2a, 0x06, 0x3c, 0x5a, 0x31, 0xb8, 0xa1, 0x1f, 0x5c, 0x5e, 0xe1,
        0x87, 0x9e, 0xc3, 0x45, 0x4e, 0x5f, 0x3c, 0x73, 0x8d, 0x2d, 0x9d,
        0x20, 0x13, 0x95, 0xfa, 0xa4, 0xb6, 0x1a, 0x96, 0xc8,
    };
    unsigned char ikm[22];
    unsigned char out[42];
    apr_status_t rv;

    memset(ikm, 0x0b, sizeof(ikm));

    rv = sk_hkdf_sha256(ikm, sizeof(ikm), "", "", out, sizeof(out));

    ck_assert_msg(rv == APR_SUCCESS, "sk_hkdf_sha256 is %s",
                  unit_status_name(rv));
    ck_assert_msg(memcmp(out, okm, sizeof(okm)) == 0,
                  "output differs from RFC 5869 test case 3");
}
END_TEST

/* The output equals OpenSSL's HKDF with the strings' bytes as salt and
 * info. */
START_TEST(hkdf_openssl)
{
    const char *secret = "a long random secret from the configuration";
    const char *salt = "mod_auth_scalekit";
    const char *info = "session cookie";
    unsigned char expected[SK_KEY_LEN];
    unsigned char out[SK_KEY_LEN];
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    OSSL_PARAM params[5];

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 "SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                  (void *)secret,
                                                  strlen(secret));
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                                  (void *)salt, strlen(salt));
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                  (void *)info, strlen(info));
    params[4] = OSSL_PARAM_construct_end();

    ck_assert_msg(ctx != NULL, "EVP_KDF_CTX_new(HKDF) failed");
    ck_assert_msg(EVP_KDF_derive(ctx, expected, sizeof(expected), params) == 1,
                  "EVP_KDF_derive failed");
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);

    hkdf(secret, salt, info, out, sizeof(out));

    ck_assert_msg(memcmp(out, expected, sizeof(out)) == 0,
                  "output differs from OpenSSL's HKDF-SHA256");
}
END_TEST

START_TEST(hkdf_inputs)
{
    unsigned char base[SK_KEY_LEN];
    unsigned char again[SK_KEY_LEN];
    unsigned char other_info[SK_KEY_LEN];
    unsigned char other_salt[SK_KEY_LEN];
    unsigned char other_secret[SK_KEY_LEN];
    unsigned char longer[2 * SK_KEY_LEN];

    hkdf("secret", "salt", "cookie", base, sizeof(base));
    hkdf("secret", "salt", "cookie", again, sizeof(again));
    hkdf("secret", "salt", "state", other_info, sizeof(other_info));
    hkdf("secret", "pepper", "cookie", other_salt, sizeof(other_salt));
    hkdf("secret!", "salt", "cookie", other_secret, sizeof(other_secret));
    hkdf("secret", "salt", "cookie", longer, sizeof(longer));

    ck_assert_msg(memcmp(base, again, sizeof(base)) == 0,
                  "equal inputs gave different keys");
    ck_assert_msg(memcmp(base, other_info, sizeof(base)) != 0,
                  "different info strings gave the same key");
    ck_assert_msg(memcmp(base, other_salt, sizeof(base)) != 0,
                  "different salts gave the same key");
    ck_assert_msg(memcmp(base, other_secret, sizeof(base)) != 0,
                  "different secrets gave the same key");
    ck_assert_msg(memcmp(base, longer, sizeof(base)) == 0,
                  "a 64-byte output does not start with the 32-byte output");
    ck_assert_msg(memcmp(base, longer + SK_KEY_LEN, sizeof(base)) != 0,
                  "the second block of output repeats the first");
}
END_TEST

/* RFC 7636, appendix B. */
START_TEST(pkce_rfc7636)
{
    char *challenge = sk_pkce_challenge(
        unit_pool, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");

    ck_assert_msg(challenge != NULL, "sk_pkce_challenge returned NULL");
    ck_assert_str_eq(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}
END_TEST

START_TEST(random_token)
{
    char *first = sk_random_token(unit_pool, 32);
    char *second = sk_random_token(unit_pool, 32);
    unsigned char *bytes = NULL;

    ck_assert_msg(first != NULL, "sk_random_token returned NULL");
    ck_assert_msg(second != NULL, "sk_random_token returned NULL");
    ck_assert_msg(strlen(first) == 43, "32 bytes gave %lu characters, "
                  "expected 43", (unsigned long)strlen(first));
    ck_assert_msg(unit_b64url_decode(unit_pool, first, &bytes) == 32,
                  "token is not the base64url of 32 bytes: %s", first);
    ck_assert_msg(strcmp(first, second) != 0,
                  "two random tokens are equal: %s", first);
}
END_TEST

START_TEST(str_equal_ct)
{
    ck_assert_msg(sk_str_equal_ct("", "") != 0, "\"\" != \"\"");
    ck_assert_msg(sk_str_equal_ct("nonce-1", "nonce-1") != 0,
                  "equal strings compared unequal");
    ck_assert_msg(sk_str_equal_ct("xonce-1", "nonce-1") == 0,
                  "strings differing in the first byte compared equal");
    ck_assert_msg(sk_str_equal_ct("nonxe-1", "nonce-1") == 0,
                  "strings differing in the middle compared equal");
    ck_assert_msg(sk_str_equal_ct("nonce-2", "nonce-1") == 0,
                  "strings differing in the last byte compared equal");
    ck_assert_msg(sk_str_equal_ct("nonce", "nonce-1") == 0,
                  "a prefix compared equal to the longer string");
    ck_assert_msg(sk_str_equal_ct("nonce-1", "nonce") == 0,
                  "a string compared equal to its prefix");
    ck_assert_msg(sk_str_equal_ct("", "n") == 0,
                  "\"\" compared equal to \"n\"");
    ck_assert_msg(sk_str_equal_ct("n", "") == 0,
                  "\"n\" compared equal to \"\"");
}
END_TEST

Suite *seal_suite(void)
{
    Suite *s = suite_create("seal");
    TCase *seal = tcase_create("seal");
    TCase *kdf = tcase_create("kdf");

    tcase_add_checked_fixture(seal, seal_setup, unit_pool_teardown);
    tcase_set_timeout(seal, 30);
    tcase_add_loop_test(seal, seal_round_trip, 0, 6);
    tcase_add_test(seal, seal_fresh_nonce);
    tcase_add_test(seal, seal_flipped_char);
    tcase_add_test(seal, seal_flipped_bit);
    tcase_add_test(seal, seal_truncated);
    tcase_add_test(seal, seal_extended);
    tcase_add_test(seal, seal_empty);
    tcase_add_loop_test(seal, seal_garbage, 0, 4);
    tcase_add_test(seal, seal_wrong_key);
    tcase_add_loop_test(seal, seal_wrong_aad, 0, 4);
    tcase_add_test(seal, seal_version_byte);
    suite_add_tcase(s, seal);

    tcase_add_checked_fixture(kdf, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(kdf, hkdf_rfc5869);
    tcase_add_test(kdf, hkdf_openssl);
    tcase_add_test(kdf, hkdf_inputs);
    tcase_add_test(kdf, pkce_rfc7636);
    tcase_add_test(kdf, random_token);
    tcase_add_test(kdf, str_equal_ct);
    suite_add_tcase(s, kdf);

    return s;
}
