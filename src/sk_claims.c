/*
 * Claim names and values as text safe for environment variables and headers.
 */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "sk_claims.h"

static apr_status_t cleanup_cjson_text(void *data)
{
    cJSON_free(data);
    return APR_SUCCESS;
}

char *sk_claim_var_name(apr_pool_t *p, const char *prefix, const char *claim)
{
    char *name = apr_pstrcat(p, prefix, claim, NULL);
    char *c;

    for (c = name + strlen(prefix); *c; c++) {
        if (!apr_isalnum(*c) || (unsigned char)*c > 127) {
            *c = '_';
        }
    }
    return name;
}

/* Returns the length of the valid UTF-8 sequence at s, or 0 when it is invalid. */
static apr_size_t utf8_sequence_len(const unsigned char *s, apr_size_t left)
{
    apr_size_t len, i;
    unsigned int cp;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    }
    else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    }
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    }
    else {
        return 0;
    }
    if (len > left) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }

    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)
        || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
        return 0;
    }
    return len;
}

/* Copies text, replacing control characters and invalid UTF-8 with '?' and cutting
 * the result at SK_CLAIM_VALUE_MAX bytes on a character boundary. */
static char *sanitize_text(apr_pool_t *p, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    apr_size_t left = strlen(text);
    apr_size_t max = left < SK_CLAIM_VALUE_MAX ? left : SK_CLAIM_VALUE_MAX;
    char *out = apr_palloc(p, max + 1);
    apr_size_t n = 0;

    while (left > 0) {
        apr_size_t len = utf8_sequence_len(s, left);

        if (len == 0) {
            len = 1;
            if (n + 1 > max) {
                break;
            }
            out[n++] = '?';
        }
        else if (n + len > max) {
            break;
        }
        else if ((len == 1 && (s[0] < 0x20 || s[0] == 0x7f))
                 || (len == 2 && s[0] == 0xc2 && s[1] < 0xa0)) {
            /* C0 controls, DEL, and the C1 controls U+0080 to U+009F. */
            out[n++] = '?';
        }
        else {
            memcpy(out + n, s, len);
            n += len;
        }
        s += len;
        left -= len;
    }

    out[n] = '\0';
    return out;
}

static char *json_text(apr_pool_t *p, const cJSON *value)
{
    char *printed = cJSON_PrintUnformatted(value);

    if (printed == NULL) {
        return "";
    }
    apr_pool_cleanup_register(p, printed, cleanup_cjson_text, apr_pool_cleanup_null);
    return printed;
}

char *sk_claim_value_text(apr_pool_t *p, const cJSON *value)
{
    const cJSON *item;
    int all_strings = 1;

    if (cJSON_IsString(value)) {
        return sanitize_text(p, value->valuestring);
    }
    if (cJSON_IsNull(value) || value == NULL) {
        return "";
    }
    if (cJSON_IsArray(value)) {
        cJSON_ArrayForEach(item, value) {
            if (!cJSON_IsString(item)) {
                all_strings = 0;
                break;
            }
        }
        if (all_strings) {
            apr_array_header_t *parts = apr_array_make(p, 8, sizeof(char *));

            cJSON_ArrayForEach(item, value) {
                APR_ARRAY_PUSH(parts, const char *) = item->valuestring;
            }
            return sanitize_text(p, apr_array_pstrcat(p, parts, ','));
        }
    }
    return sanitize_text(p, json_text(p, value));
}
