/*
 * Tests for sk_b64url_encode and sk_b64url_decode: known vectors, round
 * trips and the strict decoding rules of sk_jose.h.
 */
#include <string.h>

#include <openssl/rand.h>

#include "sk_jose.h"
#include "unit.h"

struct b64_vector {
    const char *bytes;
    apr_size_t len;
    const char *text;
};

/*
 * RFC 4648, section 10, without padding, then vectors that use the two
 * URL-safe characters: RFC 7515, appendix C, and bytes made of all-ones
 * groups of six bits.
 */
static const struct b64_vector vectors[] = {
    { "", 0, "" },
    { "f", 1, "Zg" },
    { "fo", 2, "Zm8" },
    { "foo", 3, "Zm9v" },
    { "foob", 4, "Zm9vYg" },
    { "fooba", 5, "Zm9vYmE" },
    { "foobar", 6, "Zm9vYmFy" },
    { "\x03\xec\xff\xe0\xc1", 5, "A-z_4ME" },
    { "\xfb\xef\xbe", 3, "----" },
    { "\xff\xff\xff", 3, "____" },
    { "\xfb\xff", 2, "-_8" },
};

#define VECTOR_COUNT ((int)(sizeof(vectors) / sizeof(vectors[0])))

START_TEST(encode_vectors)
{
    const struct b64_vector *v = &vectors[_i];
    char *text = sk_b64url_encode(unit_pool, (const unsigned char *)v->bytes,
                                  v->len);

    ck_assert_msg(text != NULL, "vector %d: encode returned NULL", _i);
    ck_assert_msg(strcmp(text, v->text) == 0,
                  "vector %d: encoded as \"%s\", expected \"%s\"",
                  _i, text, v->text);
}
END_TEST

START_TEST(decode_vectors)
{
    const struct b64_vector *v = &vectors[_i];
    unsigned char *out = NULL;
    apr_size_t out_len = 12345;
    apr_status_t rv;

    rv = sk_b64url_decode(unit_pool, v->text, strlen(v->text),
                          &out, &out_len);

    ck_assert_msg(rv == APR_SUCCESS, "vector %d (\"%s\"): status is %s",
                  _i, v->text, unit_status_name(rv));
    ck_assert_msg(out != NULL, "vector %d: *out is NULL", _i);
    ck_assert_msg(out_len == v->len,
                  "vector %d: decoded %lu bytes, expected %lu", _i,
                  (unsigned long)out_len, (unsigned long)v->len);
    ck_assert_msg(memcmp(out, v->bytes, v->len) == 0,
                  "vector %d: decoded bytes differ from the vector", _i);
    ck_assert_msg(out[out_len] == '\0',
                  "vector %d: output is not NUL-terminated", _i);
}
END_TEST

/* Round trip of random bytes for every length from 0 to 64. */
START_TEST(round_trip)
{
    apr_size_t len = (apr_size_t)_i;
    unsigned char data[64];
    unsigned char *out = NULL;
    apr_size_t out_len = 0;
    apr_size_t expected_len = (4 * len + 2) / 3;
    char *text;
    apr_status_t rv;

    ck_assert_msg(RAND_bytes(data, sizeof(data)) == 1, "RAND_bytes failed");

    text = sk_b64url_encode(unit_pool, data, len);

    ck_assert_msg(text != NULL, "length %lu: encode returned NULL",
                  (unsigned long)len);
    ck_assert_msg(strlen(text) == expected_len,
                  "length %lu: encoded length %lu, expected %lu",
                  (unsigned long)len, (unsigned long)strlen(text),
                  (unsigned long)expected_len);
    ck_assert_msg(strcspn(text, "+/=") == strlen(text),
                  "length %lu: \"%s\" contains '+', '/' or '='",
                  (unsigned long)len, text);
    ck_assert_msg(strcmp(text, unit_b64url(unit_pool, data, len)) == 0,
                  "length %lu: \"%s\" differs from OpenSSL's base64",
                  (unsigned long)len, text);

    rv = sk_b64url_decode(unit_pool, text, strlen(text), &out, &out_len);

    ck_assert_msg(rv == APR_SUCCESS, "length %lu: decode of \"%s\" is %s",
                  (unsigned long)len, text, unit_status_name(rv));
    ck_assert_msg(out_len == len, "length %lu: decoded %lu bytes",
                  (unsigned long)len, (unsigned long)out_len);
    ck_assert_msg(memcmp(out, data, len) == 0,
                  "length %lu: decoded bytes differ from the input",
                  (unsigned long)len);
}
END_TEST

/* Only in_len bytes of the input are decoded. */
START_TEST(decode_prefix)
{
    unsigned char *out = NULL;
    apr_size_t out_len = 0;
    apr_status_t rv;

    rv = sk_b64url_decode(unit_pool, "Zm9vYmFy", 4, &out, &out_len);

    ck_assert_msg(rv == APR_SUCCESS, "status is %s", unit_status_name(rv));
    ck_assert_msg(out_len == 3, "decoded %lu bytes, expected 3",
                  (unsigned long)out_len);
    ck_assert_msg(memcmp(out, "foo", 3) == 0,
                  "decoded \"%.*s\", expected \"foo\"", (int)out_len, out);
}
END_TEST

struct bad_input {
    const char *text;
    apr_size_t len;
    const char *reason;
};

static const struct bad_input bad_inputs[] = {
    { "Zg==", 4, "padding" },
    { "Zm8=", 4, "padding" },
    { "Zg=", 3, "padding" },
    { "Zm9v\n", 5, "trailing newline" },
    { "Zm9v ", 5, "trailing space" },
    { " Zm9v", 5, "leading space" },
    { "Zm\t9v", 5, "tab" },
    { "Zm9v\r\nYmFy", 10, "CRLF" },
    { "+_8", 3, "'+' of standard base64" },
    { "-/8", 3, "'/' of standard base64" },
    { "Zm9v!", 5, "'!'" },
    { "Zm.v", 4, "'.'" },
    { "Zm9\xc3\xa9", 5, "non-ASCII byte" },
    { "Zm\0v", 4, "NUL byte" },
    { "Z", 1, "length 1 mod 4" },
    { "Zm9vY", 5, "length 1 mod 4" },
    { "Zm9vYmFyZ", 9, "length 1 mod 4" },
    { "A", 1, "length 1 mod 4" },
    { "Zm9vA", 5, "length 1 mod 4" },
    { "Zh", 2, "stray bits in the last character" },
    { "Zm9", 3, "stray bits in the last character" },
    { "Zm9vYh", 6, "stray bits in the last character" },
    { "Zm9vYmF", 7, "stray bits in the last character" },
    { "A-z_4MF", 7, "stray bits in the last character" },
};

#define BAD_INPUT_COUNT ((int)(sizeof(bad_inputs) / sizeof(bad_inputs[0])))

START_TEST(decode_rejects)
{
    const struct bad_input *bad = &bad_inputs[_i];
    unsigned char *out = NULL;
    apr_size_t out_len = 0;
    apr_status_t rv;

    rv = sk_b64url_decode(unit_pool, bad->text, bad->len, &out, &out_len);

    ck_assert_msg(rv == SK_EINVAL,
                  "input %d (%s): status is %s, expected SK_EINVAL",
                  _i, bad->reason, unit_status_name(rv));
}
END_TEST

Suite *b64url_suite(void)
{
    Suite *s = suite_create("b64url");
    TCase *tc = tcase_create("b64url");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_add_loop_test(tc, encode_vectors, 0, VECTOR_COUNT);
    tcase_add_loop_test(tc, decode_vectors, 0, VECTOR_COUNT);
    tcase_add_loop_test(tc, round_trip, 0, 65);
    tcase_add_test(tc, decode_prefix);
    tcase_add_loop_test(tc, decode_rejects, 0, BAD_INPUT_COUNT);
    suite_add_tcase(s, tc);

    return s;
}
