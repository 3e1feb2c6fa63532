/*
 * Runs every unit test suite and exits with a non-zero status when any test
 * fails. Set CK_RUN_SUITE or CK_RUN_CASE to run a part, and CK_FORK=no to
 * run the tests in one process under a debugger.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <openssl/evp.h>

#include "sk_jose.h"
#include "unit.h"

apr_pool_t *unit_pool;

void unit_pool_setup(void)
{
    apr_status_t rv = apr_pool_create(&unit_pool, NULL);

    ck_assert_msg(rv == APR_SUCCESS, "apr_pool_create failed: %d", rv);
}

void unit_pool_teardown(void)
{
    apr_pool_destroy(unit_pool);
    unit_pool = NULL;
}

const char *unit_status_name(apr_status_t rv)
{
    static char unknown[32];

    switch (rv) {
    case APR_SUCCESS:
        return "APR_SUCCESS";
    case SK_EINVAL:
        return "SK_EINVAL";
    case SK_ENOKEY:
        return "SK_ENOKEY";
    case SK_ETOOBIG:
        return "SK_ETOOBIG";
    case APR_EGENERAL:
        return "APR_EGENERAL";
    default:
        snprintf(unknown, sizeof(unknown), "status %d", rv);
        return unknown;
    }
}

char *unit_b64url(apr_pool_t *p, const void *data, size_t len)
{
    char *text = apr_palloc(p, 4 * ((len + 2) / 3) + 1);
    int n = EVP_EncodeBlock((unsigned char *)text, data, (int)len);

    while (n > 0 && text[n - 1] == '=') {
        n--;
    }
    text[n] = '\0';

    for (int i = 0; i < n; i++) {
        if (text[i] == '+') {
            text[i] = '-';
        }
        else if (text[i] == '/') {
            text[i] = '_';
        }
    }
    return text;
}

long unit_b64url_decode(apr_pool_t *p, const char *text, unsigned char **out)
{
    size_t len = strlen(text);
    size_t pad = (4 - len % 4) % 4;
    char *standard = apr_palloc(p, len + pad + 1);
    unsigned char *bytes = apr_palloc(p, (len + pad) / 4 * 3 + 1);
    int n;

    if (pad == 3) {
        return -1;
    }

    for (size_t i = 0; i < len; i++) {
        if (text[i] == '+' || text[i] == '/' || text[i] == '=') {
            return -1;
        }
        if (text[i] == '-') {
            standard[i] = '+';
        }
        else if (text[i] == '_') {
            standard[i] = '/';
        }
        else {
            standard[i] = text[i];
        }
    }
    memset(standard + len, '=', pad);
    standard[len + pad] = '\0';

    /* EVP_DecodeBlock counts the padding as zero bytes of output. */
    n = EVP_DecodeBlock(bytes, (unsigned char *)standard, (int)(len + pad));
    if (n < 0) {
        return -1;
    }
    *out = bytes;
    return n - (long)pad;
}

int unit_is_utf8(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned int c = u[i];
        unsigned int cp;
        size_t n;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        }
        else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        }
        else {
            return 0;
        }
        if (i + n >= len) {
            return 0;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((u[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (u[i + k] & 0x3f);
        }

        /* Reject overlong forms, UTF-16 surrogates and values past U+10FFFF. */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) {
            return 0;
        }
        if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
            return 0;
        }
        i += n + 1;
    }
    return 1;
}

int unit_has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f) {
            return 1;
        }
    }
    return 0;
}

int main(void)
{
    SRunner *runner;
    int failed;

    if (apr_initialize() != APR_SUCCESS) {
        fprintf(stderr, "check_sk: apr_initialize failed\n");
        return EXIT_FAILURE;
    }
    atexit(apr_terminate);

    runner = srunner_create(b64url_suite());
    srunner_add_suite(runner, jws_suite());
    srunner_add_suite(runner, seal_suite());
    srunner_add_suite(runner, claims_suite());
    srunner_add_suite(runner, oidc_suite());

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);

    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
