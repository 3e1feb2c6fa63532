/*
 * Helpers shared by the libFuzzer targets of mod_auth_scalekit: an APR pool per
 * input, a failure check that aborts (so libFuzzer keeps the input as a crash), and
 * a UTF-8 checker written independently of the library's own.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <sanitizer/lsan_interface.h>

/* Aborts with a message when cond is false, so libFuzzer saves the input. */
#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz check failed at %s:%d: %s\n  ", __FILE__,     \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

static apr_pool_t *fuzz_root_pool;

/* Runs the cleanups of the long-lived pool at exit, before the final leak check. */
static inline void fuzz_destroy_global_pool(void)
{
    apr_pool_destroy(fuzz_root_pool);
    fuzz_root_pool = NULL;
    apr_terminate();
}

/* Initialises APR once and returns the long-lived pool of the target. */
static inline apr_pool_t *fuzz_global_pool(void)
{
    if (fuzz_root_pool == NULL) {
        if (apr_initialize() != APR_SUCCESS
            || apr_pool_create(&fuzz_root_pool, NULL) != APR_SUCCESS) {
            fprintf(stderr, "APR initialisation failed\n");
            abort();
        }
        atexit(fuzz_destroy_global_pool);
    }
    return fuzz_root_pool;
}

/*
 * Brackets the set-up in LLVMFuzzerInitialize. APR pools on Debian live in mmap'ed
 * memory, which LeakSanitizer does not scan, so objects that only the long-lived
 * pool points to (cJSON trees, OpenSSL keys) would be reported as leaks whenever
 * libFuzzer runs a leak check. Allocations between these calls are never reported.
 */
static inline void fuzz_setup_begin(void)
{
    __lsan_disable();
}

static inline void fuzz_setup_end(void)
{
    __lsan_enable();
}

/* Returns a new pool for one input. The caller destroys it after the input. */
static inline apr_pool_t *fuzz_input_pool(void)
{
    apr_pool_t *p = NULL;

    if (apr_pool_create(&p, fuzz_global_pool()) != APR_SUCCESS) {
        abort();
    }
    return p;
}

/* Returns a NUL-terminated copy of len bytes in pool p. */
static inline char *fuzz_cstring(apr_pool_t *p, const uint8_t *data, size_t len)
{
    return apr_pstrmemdup(p, (const char *)data, len);
}

/* Returns 1 when s[0..len) is valid UTF-8: no overlong forms, no surrogates and no
 * code points over U+10FFFF (RFC 3629, section 4). */
static inline int fuzz_is_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned long cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
            cp = c & 0x1f;
        }
        else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            cp = c & 0x0f;
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            cp = c & 0x07;
        }
        else {
            return 0;
        }
        if (i + n > len) {
            return 0;
        }
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)
            || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
            return 0;
        }
        i += n;
    }
    return 1;
}

/* Returns 1 when object names a member twice at its top level. sk_json_parse_object
 * rejects such objects, so nothing the library accepts may have one. */
static inline int fuzz_has_duplicate_names(const cJSON *object)
{
    const cJSON *a, *b;

    for (a = object ? object->child : NULL; a != NULL; a = a->next) {
        for (b = a->next; b != NULL; b = b->next) {
            if (a->string != NULL && b->string != NULL && strcmp(a->string, b->string) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

#endif /* FUZZ_COMMON_H */
