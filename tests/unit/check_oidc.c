/*
 * Tests for sk_discovery_parse, sk_token_response_parse and
 * sk_idtoken_validate.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_strings.h>

#include "sk_http.h"
#include "sk_jose.h"
#include "sk_oidc.h"
#include "unit.h"

#define ISSUER "https://example.scalekit.dev"
#define CLIENT_ID "client-123"
#define NONCE "n-0S6_WzA2Mj"

/* The time of every ID token test, in seconds since the epoch, and the
 * clock skew allowed, in seconds. */
#define NOW 1733333333L
#define SKEW 60

/*
 * One change to a JSON object: member is set to the JSON text json, or
 * removed when json is NULL. A json of "now+N" or "now-N" is the number
 * NOW + N or NOW - N.
 */
struct edit {
    const char *member;
    const char *json;
};

static void apply_edit(cJSON *obj, const struct edit *edit)
{
    cJSON *value;

    if (edit->member == NULL) {
        return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(obj, edit->member);
    if (edit->json == NULL) {
        return;
    }

    if (strncmp(edit->json, "now", 3) == 0) {
        value = cJSON_CreateNumber((double)(NOW + atol(edit->json + 3)));
    }
    else {
        value = cJSON_Parse(edit->json);
    }
    ck_assert_msg(value != NULL, "test JSON is invalid: %s", edit->json);
    cJSON_AddItemToObject(obj, edit->member, value);
}

/* Returns the JSON text of obj from the pool and deletes obj. */
static char *print_and_delete(cJSON *obj)
{
    char *printed = cJSON_PrintUnformatted(obj);
    char *text = apr_pstrdup(unit_pool, printed);

    cJSON_free(printed);
    cJSON_Delete(obj);
    return text;
}

static cJSON *discovery_document(void)
{
    cJSON *doc = cJSON_CreateObject();

    cJSON_AddStringToObject(doc, "issuer", ISSUER);
    cJSON_AddStringToObject(doc, "authorization_endpoint",
                            ISSUER "/oauth/authorize");
    cJSON_AddStringToObject(doc, "token_endpoint", ISSUER "/oauth/token");
    cJSON_AddStringToObject(doc, "jwks_uri", ISSUER "/keys");
    cJSON_AddStringToObject(doc, "userinfo_endpoint", ISSUER "/userinfo");
    cJSON_AddStringToObject(doc, "end_session_endpoint", ISSUER "/end_session");
    cJSON_AddStringToObject(doc, "response_types_supported", "code");
    return doc;
}

static apr_status_t parse_discovery(const char *json, const char *issuer,
                                    sk_provider_metadata_t **metadata,
                                    const char **err)
{
    *metadata = NULL;
    *err = NULL;
    return sk_discovery_parse(unit_pool, json, strlen(json), issuer,
                              metadata, err);
}

START_TEST(discovery_valid)
{
    char *json = print_and_delete(discovery_document());
    sk_provider_metadata_t *md;
    const char *err;
    apr_status_t rv = parse_discovery(json, ISSUER, &md, &err);

    UNIT_ASSERT_ACCEPTED(rv, err);
    ck_assert_msg(md != NULL, "parse succeeded but *metadata is NULL");
    ck_assert_str_eq(md->issuer, ISSUER);
    ck_assert_str_eq(md->authorization_endpoint, ISSUER "/oauth/authorize");
    ck_assert_str_eq(md->token_endpoint, ISSUER "/oauth/token");
    ck_assert_str_eq(md->jwks_uri, ISSUER "/keys");
    ck_assert_str_eq(md->userinfo_endpoint, ISSUER "/userinfo");
    ck_assert_str_eq(md->end_session_endpoint, ISSUER "/end_session");
}
END_TEST

START_TEST(discovery_optional)
{
    cJSON *doc = discovery_document();
    char *json;
    sk_provider_metadata_t *md;
    const char *err;
    apr_status_t rv;

    cJSON_DeleteItemFromObjectCaseSensitive(doc, "userinfo_endpoint");
    cJSON_DeleteItemFromObjectCaseSensitive(doc, "end_session_endpoint");
    json = print_and_delete(doc);

    rv = parse_discovery(json, ISSUER, &md, &err);

    UNIT_ASSERT_ACCEPTED(rv, err);
    ck_assert_msg(md->userinfo_endpoint == NULL,
                  "userinfo_endpoint is \"%s\", expected NULL",
                  md->userinfo_endpoint);
    ck_assert_msg(md->end_session_endpoint == NULL,
                  "end_session_endpoint is \"%s\", expected NULL",
                  md->end_session_endpoint);
}
END_TEST

struct discovery_case {
    const char *label;
    struct edit edit;
    int accepted;
};

static const struct discovery_case discovery_cases[] = {
    { "http endpoints",
      { "token_endpoint", "\"http://localhost:8080/token\"" }, 1 },
    { "issuer with trailing slash",
      { "issuer", "\"" ISSUER "/\"" }, 0 },
    { "other issuer", { "issuer", "\"https://evil.example\"" }, 0 },
    { "issuer in upper case",
      { "issuer", "\"HTTPS://EXAMPLE.SCALEKIT.DEV\"" }, 0 },
    { "issuer missing", { "issuer", NULL }, 0 },
    { "issuer not a string", { "issuer", "42" }, 0 },
    { "token_endpoint missing", { "token_endpoint", NULL }, 0 },
    { "authorization_endpoint missing",
      { "authorization_endpoint", NULL }, 0 },
    { "jwks_uri missing", { "jwks_uri", NULL }, 0 },
    { "token_endpoint ftp",
      { "token_endpoint", "\"ftp://example.scalekit.dev/token\"" }, 0 },
    { "token_endpoint file", { "token_endpoint", "\"file:///etc/passwd\"" },
      0 },
    { "token_endpoint httpx",
      { "token_endpoint", "\"httpx://example.scalekit.dev/token\"" }, 0 },
    { "token_endpoint relative", { "token_endpoint", "\"/oauth/token\"" },
      0 },
    /* HTTP forbids http and https URIs with an empty host (RFC 7230,
     * section 2.7, now replaced by RFC 9110). */
    { "token_endpoint empty host",
      { "token_endpoint", "\"https:///oauth/token\"" }, 0 },
    { "token_endpoint empty", { "token_endpoint", "\"\"" }, 0 },
    { "token_endpoint not a string", { "token_endpoint", "[]" }, 0 },
    { "authorization_endpoint javascript",
      { "authorization_endpoint", "\"javascript:alert(1)\"" }, 0 },
    { "jwks_uri data", { "jwks_uri", "\"data:,{}\"" }, 0 },
};

#define DISCOVERY_COUNT \
    ((int)(sizeof(discovery_cases) / sizeof(discovery_cases[0])))

START_TEST(discovery_rules)
{
    const struct discovery_case *c = &discovery_cases[_i];
    cJSON *doc = discovery_document();
    char *json;
    sk_provider_metadata_t *md;
    const char *err;
    apr_status_t rv;

    apply_edit(doc, &c->edit);
    json = print_and_delete(doc);

    rv = parse_discovery(json, ISSUER, &md, &err);

    if (c->accepted) {
        ck_assert_msg(rv == APR_SUCCESS, "%s: status is %s (err: %s), "
                      "expected APR_SUCCESS", c->label, unit_status_name(rv),
                      err != NULL ? err : "(not set)");
    }
    else {
        ck_assert_msg(rv == SK_EINVAL, "%s: status is %s, expected SK_EINVAL",
                      c->label, unit_status_name(rv));
        ck_assert_msg(err != NULL, "%s: *err was not set",
                      c->label);
        ck_assert_msg(err[0] != '\0', "%s: *err is empty",
                      c->label);
    }
}
END_TEST

/* The configured issuer has a trailing slash and the document has none. */
START_TEST(discovery_expected_slash)
{
    char *json = print_and_delete(discovery_document());
    sk_provider_metadata_t *md;
    const char *err;
    apr_status_t rv = parse_discovery(json, ISSUER "/", &md, &err);

    UNIT_ASSERT_REJECTED(rv, SK_EINVAL, err);
}
END_TEST

START_TEST(discovery_not_json)
{
    static const char *docs[] = {
        "", "<html>Not Found</html>", "[]", "\"" ISSUER "\"", "{\"issuer\":",
    };
    sk_provider_metadata_t *md;
    const char *err;
    apr_status_t rv = parse_discovery(docs[_i], ISSUER, &md, &err);

    ck_assert_msg(rv == SK_EINVAL, "document '%s': status is %s, expected "
                  "SK_EINVAL", docs[_i], unit_status_name(rv));
    ck_assert_msg(err != NULL,
                  "document '%s': *err was not set", docs[_i]);
    ck_assert_msg(err[0] != '\0',
                  "document '%s': *err is empty", docs[_i]);
}
END_TEST

static apr_status_t parse_token_response(const char *json,
                                         sk_token_response_t **response,
                                         const char **err)
{
    *response = NULL;
    *err = NULL;
    return sk_token_response_parse(unit_pool, json, strlen(json), response,
                                   err);
}

START_TEST(token_response_valid)
{
    const char *json = "{\"access_token\":\"at-1\",\"token_type\":\"Bearer\","
                       "\"expires_in\":3600,\"refresh_token\":\"rt-1\","
                       "\"id_token\":\"h.p.s\",\"scope\":\"openid\"}";
    sk_token_response_t *response;
    const char *err;
    apr_status_t rv = parse_token_response(json, &response, &err);

    UNIT_ASSERT_ACCEPTED(rv, err);
    ck_assert_msg(response != NULL, "parse succeeded but *response is NULL");
    ck_assert_str_eq(response->id_token, "h.p.s");
    ck_assert_str_eq(response->access_token, "at-1");
    ck_assert_str_eq(response->token_type, "Bearer");
    ck_assert_str_eq(response->refresh_token, "rt-1");
    ck_assert_msg(response->expires_in == 3600,
                  "expires_in is %ld, expected 3600", response->expires_in);
}
END_TEST

START_TEST(token_response_minimal)
{
    const char *json = "{\"access_token\":\"at-1\",\"token_type\":\"Bearer\","
                       "\"id_token\":\"h.p.s\"}";
    sk_token_response_t *response;
    const char *err;
    apr_status_t rv = parse_token_response(json, &response, &err);

    UNIT_ASSERT_ACCEPTED(rv, err);
    ck_assert_msg(response->refresh_token == NULL,
                  "refresh_token is \"%s\", expected NULL",
                  response->refresh_token);
    ck_assert_msg(response->expires_in == -1,
                  "expires_in is %ld, expected -1", response->expires_in);
}
END_TEST

/* The error code goes into *err but the provider's description does not. */
START_TEST(token_response_error)
{
    const char *json = "{\"error\":\"invalid_grant\","
                       "\"error_description\":\"code c0de-5ecret expired\"}";
    sk_token_response_t *response;
    const char *err;
    apr_status_t rv = parse_token_response(json, &response, &err);

    UNIT_ASSERT_REJECTED(rv, SK_EINVAL, err);
    ck_assert_msg(strstr(err, "invalid_grant") != NULL,
                  "*err does not name the error code: %s", err);
    ck_assert_msg(strstr(err, "c0de-5ecret") == NULL,
                  "*err contains the error description: %s", err);
}
END_TEST

/* An error member wins even when the body also has an id_token. */
START_TEST(token_response_error_with_id_token)
{
    const char *json = "{\"error\":\"server_error\",\"id_token\":\"h.p.s\","
                       "\"access_token\":\"at-1\",\"token_type\":\"Bearer\"}";
    sk_token_response_t *response;
    const char *err;
    apr_status_t rv = parse_token_response(json, &response, &err);

    UNIT_ASSERT_REJECTED(rv, SK_EINVAL, err);
}
END_TEST

/* An expires_in beyond the range of long is rejected or kept in range,
 * never converted with undefined behavior into a negative lifetime. */
START_TEST(token_response_expires_range)
{
    const char *json = "{\"access_token\":\"at-1\",\"token_type\":\"Bearer\","
                       "\"id_token\":\"h.p.s\",\"expires_in\":1e300}";
    sk_token_response_t *response;
    const char *err;
    apr_status_t rv = parse_token_response(json, &response, &err);

    if (rv == APR_SUCCESS) {
        ck_assert_msg(response->expires_in >= 0,
                      "expires_in 1e300 became %ld", response->expires_in);
    }
    else {
        UNIT_ASSERT_REJECTED(rv, SK_EINVAL, err);
    }
}
END_TEST

START_TEST(token_response_bad)
{
    static const char *bodies[] = {
        "{\"access_token\":\"at-1\",\"token_type\":\"Bearer\"}",
        "{\"access_token\":\"at-1\",\"token_type\":\"Bearer\","
        "\"id_token\":42}",
        "{\"access_token\":\"at-1\",\"token_type\":\"Bearer\","
        "\"id_token\":null}",
        "not json",
        "",
        "[{\"id_token\":\"h.p.s\"}]",
        "{\"id_token\":\"h.p.s\"",
    };
    sk_token_response_t *response;
    const char *err;
    apr_status_t rv = parse_token_response(bodies[_i], &response, &err);

    ck_assert_msg(rv == SK_EINVAL, "body '%s': status is %s, expected "
                  "SK_EINVAL", bodies[_i], unit_status_name(rv));
    ck_assert_msg(err != NULL,
                  "body '%s': *err was not set", bodies[_i]);
    ck_assert_msg(err[0] != '\0',
                  "body '%s': *err is empty", bodies[_i]);
}
END_TEST

/* Claims that pass every rule at NOW. */
static cJSON *id_token_claims(void)
{
    cJSON *claims = cJSON_CreateObject();

    cJSON_AddStringToObject(claims, "iss", ISSUER);
    cJSON_AddStringToObject(claims, "sub", "user_1");
    cJSON_AddStringToObject(claims, "aud", CLIENT_ID);
    cJSON_AddNumberToObject(claims, "exp", (double)(NOW + 300));
    cJSON_AddNumberToObject(claims, "iat", (double)(NOW - 10));
    cJSON_AddStringToObject(claims, "nonce", NONCE);
    cJSON_AddStringToObject(claims, "email", "user@example.com");
    return claims;
}

static const sk_idtoken_expect_t expect_default = {
    ISSUER, CLIENT_ID, NONCE, APR_USEC_PER_SEC * NOW, SKEW,
};

struct claims_case {
    const char *label;
    struct edit edits[2];
    int accepted;
};

static const struct claims_case claims_cases[] = {
    { "valid", { { NULL, NULL } }, 1 },
    { "aud string equal", { { "aud", "\"" CLIENT_ID "\"" } }, 1 },
    { "aud array with client", { { "aud", "[\"" CLIENT_ID "\"]" } }, 1 },
    { "aud array of two with azp",
      { { "aud", "[\"other\",\"" CLIENT_ID "\"]" },
        { "azp", "\"" CLIENT_ID "\"" } }, 1 },
    { "azp equal", { { "azp", "\"" CLIENT_ID "\"" } }, 1 },
    { "exp past within skew", { { "exp", "now-59" } }, 1 },
    { "iat future within skew", { { "iat", "now+59" } }, 1 },
    { "nbf future within skew", { { "nbf", "now+59" } }, 1 },
    { "nbf past", { { "nbf", "now-10" } }, 1 },

    { "iss other", { { "iss", "\"https://evil.example\"" } }, 0 },
    { "iss trailing slash", { { "iss", "\"" ISSUER "/\"" } }, 0 },
    { "iss missing", { { "iss", NULL } }, 0 },
    { "iss not a string", { { "iss", "[\"" ISSUER "\"]" } }, 0 },
    { "aud other", { { "aud", "\"other\"" } }, 0 },
    { "aud prefix of client", { { "aud", "\"client-12\"" } }, 0 },
    { "aud client as prefix", { { "aud", "\"client-1234\"" } }, 0 },
    { "aud array without client", { { "aud", "[\"a\",\"b\"]" } }, 0 },
    { "aud empty array", { { "aud", "[]" } }, 0 },
    { "aud array of two without azp",
      { { "aud", "[\"" CLIENT_ID "\",\"other\"]" } }, 0 },
    { "aud missing", { { "aud", NULL } }, 0 },
    { "aud number", { { "aud", "123" } }, 0 },
    { "azp other", { { "azp", "\"other\"" } }, 0 },
    { "azp other with aud array",
      { { "aud", "[\"" CLIENT_ID "\",\"other\"]" },
        { "azp", "\"other\"" } }, 0 },
    { "azp not a string", { { "azp", "123" } }, 0 },
    { "exp past beyond skew", { { "exp", "now-61" } }, 0 },
    { "exp missing", { { "exp", NULL } }, 0 },
    { "exp string", { { "exp", "\"1733333633\"" } }, 0 },
    { "exp null", { { "exp", "null" } }, 0 },
    { "iat future beyond skew", { { "iat", "now+61" } }, 0 },
    { "iat string", { { "iat", "\"1733333323\"" } }, 0 },
    { "nbf future beyond skew", { { "nbf", "now+61" } }, 0 },
    { "nbf string", { { "nbf", "\"1733333000\"" } }, 0 },
    { "nonce other", { { "nonce", "\"n-other\"" } }, 0 },
    { "nonce prefix", { { "nonce", "\"n-0S6_WzA2M\"" } }, 0 },
    { "nonce longer", { { "nonce", "\"" NONCE "x\"" } }, 0 },
    { "nonce missing", { { "nonce", NULL } }, 0 },
    { "nonce empty", { { "nonce", "\"\"" } }, 0 },
    { "nonce not a string", { { "nonce", "42" } }, 0 },
    { "sub missing", { { "sub", NULL } }, 0 },
    { "sub empty", { { "sub", "\"\"" } }, 0 },
    { "sub number", { { "sub", "42" } }, 0 },
    { "sub null", { { "sub", "null" } }, 0 },
    { "exp in milliseconds", { { "exp", "1733333633000" } }, 0 },
    { "exp beyond 2038", { { "exp", "4102444800" } }, 0 },
    { "exp one year ahead", { { "exp", "now+31536000" } }, 1 },
};

#define CLAIMS_COUNT ((int)(sizeof(claims_cases) / sizeof(claims_cases[0])))

START_TEST(id_token_rules)
{
    const struct claims_case *c = &claims_cases[_i];
    cJSON *claims = id_token_claims();
    const char *err = NULL;
    apr_status_t rv;

    apply_edit(claims, &c->edits[0]);
    apply_edit(claims, &c->edits[1]);

    rv = sk_idtoken_validate(claims, &expect_default, &err);
    cJSON_Delete(claims);

    if (c->accepted) {
        ck_assert_msg(rv == APR_SUCCESS, "%s: status is %s (err: %s), "
                      "expected APR_SUCCESS", c->label, unit_status_name(rv),
                      err != NULL ? err : "(not set)");
    }
    else {
        ck_assert_msg(rv == SK_EINVAL, "%s: status is %s, expected SK_EINVAL",
                      c->label, unit_status_name(rv));
        ck_assert_msg(err != NULL, "%s: *err was not set",
                      c->label);
        ck_assert_msg(err[0] != '\0', "%s: *err is empty",
                      c->label);
    }
}
END_TEST

/* With no skew allowed, one second either side of exp decides. */
START_TEST(id_token_zero_skew)
{
    sk_idtoken_expect_t expect = expect_default;
    cJSON *claims = id_token_claims();
    const char *err = NULL;
    apr_status_t rv;

    expect.clock_skew = 0;

    cJSON_ReplaceItemInObject(claims, "exp",
                              cJSON_CreateNumber((double)(NOW + 1)));
    rv = sk_idtoken_validate(claims, &expect, &err);

    UNIT_ASSERT_ACCEPTED(rv, err);

    cJSON_ReplaceItemInObject(claims, "exp",
                              cJSON_CreateNumber((double)(NOW - 1)));
    err = NULL;
    rv = sk_idtoken_validate(claims, &expect, &err);
    cJSON_Delete(claims);

    UNIT_ASSERT_REJECTED(rv, SK_EINVAL, err);
}
END_TEST

/* The claims are valid at NOW and expired an hour later, which is true
 * only when the validator reads expect->now as microseconds. */
START_TEST(id_token_now)
{
    sk_idtoken_expect_t expect = expect_default;
    cJSON *claims = id_token_claims();
    const char *err = NULL;
    apr_status_t rv = sk_idtoken_validate(claims, &expect, &err);

    UNIT_ASSERT_ACCEPTED(rv, err);

    expect.now += apr_time_from_sec(3600);
    err = NULL;
    rv = sk_idtoken_validate(claims, &expect, &err);
    cJSON_Delete(claims);

    UNIT_ASSERT_REJECTED(rv, SK_EINVAL, err);
}
END_TEST

/*
 * The HTTP client that fetches discovery, JWKS and tokens allows only http
 * and https. A file: URL of a local file tests this without network
 * traffic, because a client that allowed it would return the file.
 */
START_TEST(http_file_url)
{
    sk_http_options_t options = { 5, 1, NULL, "check_sk" };
    sk_http_response_t *response = NULL;
    const char *err = NULL;
    const char *temp_dir = NULL;
    char *path;
    apr_file_t *file;
    apr_status_t rv;

    ck_assert_msg(apr_temp_dir_get(&temp_dir, unit_pool) == APR_SUCCESS,
                  "apr_temp_dir_get failed");
    path = apr_pstrcat(unit_pool, temp_dir, "/check_sk_XXXXXX", NULL);
    /* Flags 0 would add APR_FOPEN_DELONCLOSE, and the file must outlive
     * apr_file_close so that a faulty client could read it. */
    rv = apr_file_mktemp(&file, path,
                         APR_FOPEN_CREATE | APR_FOPEN_READ | APR_FOPEN_WRITE
                         | APR_FOPEN_EXCL, unit_pool);
    ck_assert_msg(rv == APR_SUCCESS, "apr_file_mktemp failed for %s", path);
    ck_assert_msg(apr_file_puts("{\"issuer\":\"x\"}", file) == APR_SUCCESS,
                  "writing %s failed", path);
    apr_file_close(file);
    ck_assert_msg(sk_http_global_init() == APR_SUCCESS,
                  "sk_http_global_init failed");

    rv = sk_http_request(unit_pool, apr_pstrcat(unit_pool, "file://", path,
                                                NULL),
                         NULL, &options, &response, &err);
    apr_file_remove(path, unit_pool);

    UNIT_ASSERT_REJECTED(rv, APR_EGENERAL, err);
    ck_assert_msg(response == NULL, "*response was set for a file: URL");
}
END_TEST

Suite *oidc_suite(void)
{
    Suite *s = suite_create("oidc");
    TCase *discovery = tcase_create("discovery");
    TCase *token = tcase_create("token_response");
    TCase *id_token = tcase_create("id_token");
    TCase *http = tcase_create("http");

    tcase_add_checked_fixture(discovery, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(discovery, discovery_valid);
    tcase_add_test(discovery, discovery_optional);
    tcase_add_loop_test(discovery, discovery_rules, 0, DISCOVERY_COUNT);
    tcase_add_test(discovery, discovery_expected_slash);
    tcase_add_loop_test(discovery, discovery_not_json, 0, 5);
    suite_add_tcase(s, discovery);

    tcase_add_checked_fixture(token, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(token, token_response_valid);
    tcase_add_test(token, token_response_minimal);
    tcase_add_test(token, token_response_error);
    tcase_add_test(token, token_response_error_with_id_token);
    tcase_add_test(token, token_response_expires_range);
    tcase_add_loop_test(token, token_response_bad, 0, 7);
    suite_add_tcase(s, token);

    tcase_add_loop_test(id_token, id_token_rules, 0, CLAIMS_COUNT);
    tcase_add_test(id_token, id_token_zero_skew);
    tcase_add_test(id_token, id_token_now);
    suite_add_tcase(s, id_token);

    tcase_add_checked_fixture(http, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(http, http_file_url);
    suite_add_tcase(s, http);

    return s;
}
