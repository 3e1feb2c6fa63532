/*
 * libFuzzer target for the claim export: the input is parsed as JSON, and every
 * member at any depth goes through sk_claim_var_name and sk_claim_value_text, as the
 * module does with the top-level claims of a session. The variable name may hold
 * only [A-Za-z0-9_], and the value must be valid UTF-8 without C0 or C1 control
 * characters or DEL and at most SK_CLAIM_VALUE_MAX bytes, so it is safe in an
 * environment variable or a header.
 */
#include <cJSON.h>

#include "fuzz_common.h"
#include "sk_claims.h"

#define PREFIX "SCALEKIT_CLAIM_"

static void check_name(const char *name, const char *claim)
{
    const char *c;

    FUZZ_CHECK(strncmp(name, PREFIX, strlen(PREFIX)) == 0, "lost the prefix: %s", name);
    FUZZ_CHECK(strlen(name) == strlen(PREFIX) + strlen(claim),
               "the name length changed for claim of %zu bytes", strlen(claim));
    for (c = name; *c; c++) {
        FUZZ_CHECK((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z')
                   || (*c >= '0' && *c <= '9') || *c == '_',
                   "byte 0x%02x in variable name", (unsigned char)*c);
    }
}

static void check_value(const char *value)
{
    const unsigned char *s = (const unsigned char *)value;
    size_t len = strlen(value), i;

    FUZZ_CHECK(len <= SK_CLAIM_VALUE_MAX, "value of %zu bytes", len);
    FUZZ_CHECK(fuzz_is_utf8(s, len), "the value is not valid UTF-8");
    for (i = 0; i < len; i++) {
        FUZZ_CHECK(s[i] >= 0x20 && s[i] != 0x7f, "control byte 0x%02x at %zu", s[i], i);
        /* U+0080 to U+009F are C2 80 to C2 9F in UTF-8. */
        FUZZ_CHECK(!(s[i] == 0xc2 && i + 1 < len && s[i + 1] < 0xa0),
                   "C1 control character at %zu", i);
    }
}

static void walk(apr_pool_t *p, const cJSON *item)
{
    const cJSON *child;

    check_value(sk_claim_value_text(p, item));
    if (item->string != NULL) {
        check_name(sk_claim_var_name(p, PREFIX, item->string), item->string);
    }
    cJSON_ArrayForEach(child, item) {
        walk(p, child);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup_begin();
    fuzz_global_pool();
    fuzz_setup_end();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_input_pool();
    cJSON *doc = cJSON_ParseWithLength((const char *)data, size);

    if (doc != NULL) {
        walk(p, doc);
    }
    check_value(sk_claim_value_text(p, NULL));
    apr_pool_destroy(p);
    cJSON_Delete(doc);
    return 0;
}
