/*
 * Tests for sk_claim_var_name and sk_claim_value_text.
 */
#include <string.h>

#include <apr_strings.h>

#include "sk_claims.h"
#include "unit.h"

#define PREFIX "SK_CLAIM_"

struct name_case {
    const char *claim;
    const char *expected;
};

static const struct name_case names[] = {
    { "email", PREFIX "email" },
    { "given-name", PREFIX "given_name" },
    { "a.b", PREFIX "a_b" },
    { "with space", PREFIX "with_space" },
    { "Org_ID_42", PREFIX "Org_ID_42" },
    { "https://example.com/roles", PREFIX "https___example_com_roles" },
    { "\xc3\xa9t\xc3\xa9", PREFIX "__t__" },
    { "\xe5\x90\x8d", PREFIX "___" },
    { "\xf0\x9f\x98\x80", PREFIX "____" },
    { "a\tb\nc\rd=e", PREFIX "a_b_c_d_e" },
    { "", PREFIX },
};

#define NAME_COUNT ((int)(sizeof(names) / sizeof(names[0])))

START_TEST(var_name)
{
    const struct name_case *c = &names[_i];
    char *name = sk_claim_var_name(unit_pool, PREFIX, c->claim);

    ck_assert_msg(name != NULL, "claim %d: sk_claim_var_name returned NULL",
                  _i);
    ck_assert_msg(strcmp(name, c->expected) == 0,
                  "claim %d: name is \"%s\", expected \"%s\"", _i, name,
                  c->expected);
}
END_TEST

START_TEST(var_name_prefix)
{
    char *empty = sk_claim_var_name(unit_pool, "", "given-name");
    char *other = sk_claim_var_name(unit_pool, "OIDC_", "email");

    ck_assert_str_eq(empty, "given_name");
    ck_assert_str_eq(other, "OIDC_email");
}
END_TEST

/* Formats value, releases it and returns the text. */
static char *value_text(cJSON *value)
{
    char *text = sk_claim_value_text(unit_pool, value);

    cJSON_Delete(value);
    ck_assert_msg(text != NULL, "sk_claim_value_text returned NULL");
    return text;
}

/* Parses json with cJSON and returns the text of the value. */
static char *json_value_text(const char *json)
{
    cJSON *value = cJSON_Parse(json);

    ck_assert_msg(value != NULL, "test JSON is invalid: %s", json);
    return value_text(value);
}

struct value_case {
    const char *json;
    const char *expected;
};

static const struct value_case values[] = {
    { "\"alice@example.com\"", "alice@example.com" },
    { "\"\"", "" },
    { "\" padded, \\\"quoted\\\" \"", " padded, \"quoted\" " },
    { "1733333333", "1733333333" },
    { "4102444800", "4102444800" },
    { "0", "0" },
    { "-42", "-42" },
    { "1.5", "1.5" },
    { "true", "true" },
    { "false", "false" },
    { "null", "" },
    { "[\"admin\",\"dev\",\"ops\"]", "admin,dev,ops" },
    { "[\"admin\"]", "admin" },
    { "[\"admin\",1,true]", "[\"admin\",1,true]" },
    { "[[\"a\",\"b\"]]", "[[\"a\",\"b\"]]" },
    { "[\"a\",null]", "[\"a\",null]" },
    { "{ \"org\" : \"acme\", \"n\" : 2 }", "{\"org\":\"acme\",\"n\":2}" },
    { "{\"a\":{\"b\":[1, 2]}}", "{\"a\":{\"b\":[1,2]}}" },
    { "\"J\\u00fcrgen \\u540d \\ud83d\\ude00\"",
      "J\xc3\xbcrgen \xe5\x90\x8d \xf0\x9f\x98\x80" },
};

#define VALUE_COUNT ((int)(sizeof(values) / sizeof(values[0])))

START_TEST(value_json)
{
    const struct value_case *c = &values[_i];
    char *text = json_value_text(c->json);

    ck_assert_msg(strcmp(text, c->expected) == 0,
                  "value %s: text is '%s', expected '%s'", c->json, text,
                  c->expected);
}
END_TEST

START_TEST(value_number_item)
{
    char *text = value_text(cJSON_CreateNumber(1733333333));

    ck_assert_str_eq(text, "1733333333");
}
END_TEST

struct control_case {
    const char *raw;
    const char *expected;
};

/* Strings made with cJSON_CreateString, so the raw bytes reach the
 * formatter as they are. */
static const struct control_case controls[] = {
    { "a\rb", "a?b" },
    { "a\nb", "a?b" },
    { "a\r\nb", "a??b" },
    { "a\tb", "a?b" },
    { "\x01start", "?start" },
    { "end\x1f", "end?" },
    { "a\x1b[31mb", "a?[31mb" },
    { "a\x7f" "b", "a?b" },
    { "a\xff" "b", "a?b" },
    { "a\xfe" "b", "a?b" },
    { "a\x80" "b", "a?b" },
    { "a\xc3" "b", "a?b" },
    { "a\xe5\x90" "b", NULL },
    { "a\xc0\xaf" "b", NULL },
    { "a\xe0\x80\xaf" "b", NULL },
    { "a\xed\xa0\x80" "b", NULL },
    { "a\xf4\x90\x80\x80" "b", NULL },
    { "a\xf8\x88\x80\x80\x80" "b", NULL },
    { "\xc3", "?" },
    { "ab\xf0\x9f\x98", NULL },
};

#define CONTROL_COUNT ((int)(sizeof(controls) / sizeof(controls[0])))

/* Returns 1 when text is head, then one or more '?', then tail. */
static int is_replaced(const char *text, const char *head, const char *tail)
{
    size_t head_len = strlen(head);
    size_t tail_len = strlen(tail);
    size_t len = strlen(text);

    if (len < head_len + tail_len + 1) {
        return 0;
    }
    if (strncmp(text, head, head_len) != 0) {
        return 0;
    }
    if (strcmp(text + len - tail_len, tail) != 0) {
        return 0;
    }
    for (size_t i = head_len; i < len - tail_len; i++) {
        if (text[i] != '?') {
            return 0;
        }
    }
    return 1;
}

/*
 * Control characters and invalid UTF-8 become '?'. Where one invalid
 * sequence spans several bytes, the header leaves open whether it becomes
 * one '?' or one per byte, so those cases (expected NULL) accept either.
 */
START_TEST(value_replaced)
{
    const struct control_case *c = &controls[_i];
    char *text = value_text(cJSON_CreateString(c->raw));
    size_t len = strlen(text);

    ck_assert_msg(unit_is_utf8(text, len),
                  "case %d: text is not valid UTF-8", _i);
    ck_assert_msg(!unit_has_control(text, len),
                  "case %d: text contains a control character", _i);

    if (c->expected != NULL) {
        ck_assert_msg(strcmp(text, c->expected) == 0,
                      "case %d: text is '%s', expected '%s'", _i, text,
                      c->expected);
    }
    else if (strncmp(c->raw, "ab", 2) == 0) {
        ck_assert_msg(is_replaced(text, "ab", ""),
                      "case %d: text is '%s', expected 'ab' and '?'", _i,
                      text);
    }
    else {
        ck_assert_msg(is_replaced(text, "a", "b"),
                      "case %d: text is '%s', expected 'a', '?' and 'b'",
                      _i, text);
    }
}
END_TEST

/* Control characters inside the elements of a string array. */
START_TEST(value_array_control)
{
    cJSON *array = cJSON_CreateArray();
    char *text;

    cJSON_AddItemToArray(array, cJSON_CreateString("a\nb"));
    cJSON_AddItemToArray(array, cJSON_CreateString("c\xff"));
    text = value_text(array);

    ck_assert_msg(strcmp(text, "a?b,c?") == 0,
                  "text is '%s', expected 'a?b,c?'", text);
}
END_TEST

/* Compact JSON of an object escapes control characters, so none remain. */
START_TEST(value_object_control)
{
    char *text = json_value_text("{\"k\":\"a\\nb\\u0001\"}");

    ck_assert_msg(!unit_has_control(text, strlen(text)),
                  "text contains a control character: %s", text);
    ck_assert_msg(strstr(text, "\"k\"") != NULL,
                  "text lost the member name: %s", text);
}
END_TEST

START_TEST(value_long_ascii)
{
    apr_size_t len = SK_CLAIM_VALUE_MAX + 100;
    char *raw = apr_palloc(unit_pool, len + 1);
    char *text;

    for (apr_size_t i = 0; i < len; i++) {
        raw[i] = (char)('a' + i % 26);
    }
    raw[len] = '\0';

    text = value_text(cJSON_CreateString(raw));

    ck_assert_msg(strlen(text) == SK_CLAIM_VALUE_MAX,
                  "text has %lu bytes, expected %d",
                  (unsigned long)strlen(text), SK_CLAIM_VALUE_MAX);
    ck_assert_msg(memcmp(text, raw, SK_CLAIM_VALUE_MAX) == 0,
                  "text is not a prefix of the value");
}
END_TEST

START_TEST(value_at_max)
{
    char *raw = apr_palloc(unit_pool, SK_CLAIM_VALUE_MAX + 1);
    char *text;

    memset(raw, 'x', SK_CLAIM_VALUE_MAX);
    raw[SK_CLAIM_VALUE_MAX] = '\0';

    text = value_text(cJSON_CreateString(raw));

    ck_assert_msg(strlen(text) == SK_CLAIM_VALUE_MAX,
                  "a value of exactly %d bytes became %lu bytes",
                  SK_CLAIM_VALUE_MAX, (unsigned long)strlen(text));
}
END_TEST

/*
 * A long value of 4-byte characters after _i ASCII bytes, so that for each
 * _i the limit falls at a different place inside a character. The text
 * must be the longest prefix of whole characters within the limit.
 */
START_TEST(value_long_utf8)
{
    const char *emoji = "\xf0\x9f\x98\x80";
    apr_size_t offset = (apr_size_t)_i;
    apr_size_t len = SK_CLAIM_VALUE_MAX + 64;
    char *raw = apr_palloc(unit_pool, len + 1);
    apr_size_t expected = offset + (SK_CLAIM_VALUE_MAX - offset) / 4 * 4;
    char *text;

    memset(raw, 'a', offset);
    for (apr_size_t i = offset; i + 4 <= len; i += 4) {
        memcpy(raw + i, emoji, 4);
    }
    raw[offset + (len - offset) / 4 * 4] = '\0';

    text = value_text(cJSON_CreateString(raw));

    ck_assert_msg(strlen(text) == expected,
                  "offset %lu: text has %lu bytes, expected %lu",
                  (unsigned long)offset, (unsigned long)strlen(text),
                  (unsigned long)expected);
    ck_assert_msg(unit_is_utf8(text, strlen(text)),
                  "offset %lu: the cut split a UTF-8 sequence",
                  (unsigned long)offset);
    ck_assert_msg(memcmp(text, raw, expected) == 0,
                  "offset %lu: text is not a prefix of the value",
                  (unsigned long)offset);
}
END_TEST

/* The limit also applies to joined arrays. */
START_TEST(value_long_array)
{
    cJSON *array = cJSON_CreateArray();
    char element[1025];
    char *text;

    memset(element, 'r', sizeof(element) - 1);
    element[sizeof(element) - 1] = '\0';
    for (int i = 0; i < 20; i++) {
        cJSON_AddItemToArray(array, cJSON_CreateString(element));
    }

    text = value_text(array);

    ck_assert_msg(strlen(text) == SK_CLAIM_VALUE_MAX,
                  "text has %lu bytes, expected %d",
                  (unsigned long)strlen(text), SK_CLAIM_VALUE_MAX);
    ck_assert_msg(text[1024] == ',', "elements are not joined with ','");
}
END_TEST

Suite *claims_suite(void)
{
    Suite *s = suite_create("claims");
    TCase *name = tcase_create("name");
    TCase *value = tcase_create("value");

    tcase_add_checked_fixture(name, unit_pool_setup, unit_pool_teardown);
    tcase_add_loop_test(name, var_name, 0, NAME_COUNT);
    tcase_add_test(name, var_name_prefix);
    suite_add_tcase(s, name);

    tcase_add_checked_fixture(value, unit_pool_setup, unit_pool_teardown);
    tcase_add_loop_test(value, value_json, 0, VALUE_COUNT);
    tcase_add_test(value, value_number_item);
    tcase_add_loop_test(value, value_replaced, 0, CONTROL_COUNT);
    tcase_add_test(value, value_array_control);
    tcase_add_test(value, value_object_control);
    tcase_add_test(value, value_long_ascii);
    tcase_add_test(value, value_at_max);
    tcase_add_loop_test(value, value_long_utf8, 0, 4);
    tcase_add_test(value, value_long_array);
    suite_add_tcase(s, value);

    return s;
}
