/*
 * Shared declarations for the Check unit tests of the library part of
 * mod_auth_scalekit (src/sk_*.c). The helpers are defined in check_main.c.
 */
#ifndef UNIT_H
#define UNIT_H

#include <stddef.h>

#include <check.h>
#include <apr_pools.h>
#include <apr_errno.h>

Suite *b64url_suite(void);
Suite *jws_suite(void);
Suite *seal_suite(void);
Suite *claims_suite(void);
Suite *oidc_suite(void);

/* Pool for one test, created by unit_pool_setup and destroyed by
 * unit_pool_teardown. Add both as a checked fixture. */
extern apr_pool_t *unit_pool;

void unit_pool_setup(void);
void unit_pool_teardown(void);

/* Returns the name of a status code (SK_EINVAL, APR_SUCCESS, ...) for
 * failure messages. */
const char *unit_status_name(apr_status_t rv);

/*
 * Encodes data as base64url without padding. It uses OpenSSL's base64
 * encoder, not sk_b64url_encode, so tests that build input for the library
 * do not depend on the code under test.
 */
char *unit_b64url(apr_pool_t *p, const void *data, size_t len);

/*
 * Decodes base64url without padding with OpenSSL's decoder. Returns the
 * number of bytes written to a pool buffer stored in *out, or -1 when the
 * text is not base64url.
 */
long unit_b64url_decode(apr_pool_t *p, const char *text, unsigned char **out);

/* Returns 1 when s[0..len) is valid UTF-8 (no overlong forms, surrogates or
 * code points over U+10FFFF), otherwise 0. */
int unit_is_utf8(const char *s, size_t len);

/* Returns 1 when s[0..len) contains a byte below 0x20 or the byte 0x7f. */
int unit_has_control(const char *s, size_t len);

/*
 * Asserts that a call was rejected with status want and that it set *err to
 * a non-empty message. A macro, so that Check reports the caller's line.
 */
#define UNIT_ASSERT_REJECTED(rv, want, err)                                  \
    do {                                                                     \
        apr_status_t unit_rv_ = (rv);                                        \
        const char *unit_err_ = (err);                                       \
                                                                             \
        ck_assert_msg(unit_rv_ == (want), "status is %s, expected %s",       \
                      unit_status_name(unit_rv_), unit_status_name(want));   \
        ck_assert_msg(unit_err_ != NULL,                                     \
                      "*err was not set on rejection");                      \
        ck_assert_msg(unit_err_[0] != '\0',                                  \
                      "*err is an empty string on rejection");               \
    } while (0)

/* Asserts that a call succeeded and reports *err when it did not. */
#define UNIT_ASSERT_ACCEPTED(rv, err)                                        \
    do {                                                                     \
        apr_status_t unit_rv_ = (rv);                                        \
        const char *unit_err_ = (err);                                       \
                                                                             \
        ck_assert_msg(unit_rv_ == APR_SUCCESS,                               \
                      "status is %s, expected APR_SUCCESS (err: %s)",        \
                      unit_status_name(unit_rv_),                            \
                      unit_err_ != NULL ? unit_err_ : "(not set)");          \
    } while (0)

#endif /* UNIT_H */
