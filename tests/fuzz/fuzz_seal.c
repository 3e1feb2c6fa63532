/*
 * libFuzzer target for sealed values (sk_seal, sk_unseal) and for the session cookie
 * code of src/session.c, linked with the stand-ins of glue_stubs.c.
 *
 * The first input byte selects a mode (modulo 4), the rest is its data:
 *   0  a sealed value for sk_unseal under the session key and the cookie name as
 *      additional data. What opens must not open under another additional data.
 *   1  a plaintext: sealing then unsealing returns it, and a sealed value with one
 *      character changed or one removed does not open.
 *   2  Cookie headers, one per line, for sk_session_load: the real cookie parser,
 *      chunk reassembly, unsealing and session layout checks.
 *   3  a program that builds Cookie headers from the chunks of one fixed sealed
 *      session: chunks in any order, repeated, cut, changed or left out, and any
 *      "chunks:N" count. sk_session_load must succeed exactly when the chunks it
 *      reads, the first cookie of each name, join to the sealed session.
 */
#include <cJSON.h>

#include "fuzz_common.h"
#include "glue_stubs.h"
#include "mod_auth_scalekit.h"

/* The session secret of the seeds: make_seeds.py seals with a key derived from it. */
#define FUZZ_SESSION_SECRET "fuzz-session-secret-0123456789abcdef"
#define COOKIE_NAME "scalekit_session"

/* CHUNK_SIZE of src/session.c: bytes of sealed text per chunk cookie. */
#define FUZZ_CHUNK_SIZE 3800
#define FUZZ_MAX_PIECES 8

static sk_server_config_t server_config;
static const char *big_sealed;  /* sealed session of more than one chunk */
static const char *pieces[FUZZ_MAX_PIECES];
static int piece_count;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_pool_t *p;
    cJSON *doc, *claims, *groups;
    char *json;
    apr_size_t len, offset;
    int i;

    fuzz_setup_begin();
    p = fuzz_global_pool();
    doc = cJSON_CreateObject();
    claims = cJSON_AddObjectToObject(doc, "claims");
    groups = cJSON_AddArrayToObject(claims, "groups");

    server_config.cookie_name = COOKIE_NAME;
    server_config.session_store = SK_SESSION_STORE_COOKIE;
    server_config.inactivity_timeout = 0;
    /* The derivation of sk_config_finish in src/config.c. */
    if (sk_hkdf_sha256((const unsigned char *)FUZZ_SESSION_SECRET,
                       strlen(FUZZ_SESSION_SECRET), "mod_auth_scalekit",
                       "session cookie v1", server_config.session_key,
                       SK_KEY_LEN) != APR_SUCCESS) {
        abort();
    }

    cJSON_AddNumberToObject(doc, "v", 1);
    cJSON_AddStringToObject(doc, "sid", "fuzz-session-id");
    cJSON_AddNumberToObject(doc, "iat", 1700000000);
    cJSON_AddNumberToObject(doc, "seen", 1700000000);
    cJSON_AddNumberToObject(doc, "exp", 4102444800.0);
    cJSON_AddStringToObject(claims, "sub", "usr_fuzz");
    for (i = 0; i < 300; i++) {
        cJSON_AddItemToArray(groups, cJSON_CreateString(
            apr_psprintf(p, "group-%03d-engineering-and-operations", i)));
    }
    json = cJSON_PrintUnformatted(doc);
    big_sealed = sk_seal(p, server_config.session_key, COOKIE_NAME,
                         (const unsigned char *)json, strlen(json));
    cJSON_free(json);
    cJSON_Delete(doc);

    len = strlen(big_sealed);
    for (offset = 0; offset < len; offset += FUZZ_CHUNK_SIZE) {
        pieces[piece_count++] = apr_pstrndup(p, big_sealed + offset, FUZZ_CHUNK_SIZE);
    }
    if (piece_count < 2 || piece_count > FUZZ_MAX_PIECES) {
        fprintf(stderr, "the fixed session has %d chunks, expected 2 to %d\n",
                piece_count, FUZZ_MAX_PIECES);
        abort();
    }
    fuzz_setup_end();
    return 0;
}

static void fuzz_unseal(apr_pool_t *p, const uint8_t *data, size_t len)
{
    const char *sealed = fuzz_cstring(p, data, len);
    unsigned char *plain = NULL;
    apr_size_t plain_len = 0;
    apr_status_t rv;

    rv = sk_unseal(p, server_config.session_key, COOKIE_NAME, sealed, &plain,
                   &plain_len);
    if (rv != APR_SUCCESS) {
        FUZZ_CHECK(rv == SK_EINVAL, "sk_unseal returned %d", rv);
        return;
    }
    FUZZ_CHECK(plain[plain_len] == '\0', "the plaintext is not NUL-terminated");
    FUZZ_CHECK(sk_unseal(p, server_config.session_key, "scalekit_state_0", sealed,
                         &plain, &plain_len) != APR_SUCCESS,
               "a value opened under two different additional data");
}

static void fuzz_roundtrip(apr_pool_t *p, const uint8_t *data, size_t len)
{
    char *sealed = sk_seal(p, server_config.session_key, COOKIE_NAME, data, len);
    unsigned char *plain = NULL;
    apr_size_t plain_len = 0;
    size_t sealed_len, at;

    FUZZ_CHECK(sealed != NULL, "sk_seal failed on %zu bytes", len);
    FUZZ_CHECK(sk_unseal(p, server_config.session_key, COOKIE_NAME, sealed, &plain,
                         &plain_len) == APR_SUCCESS, "a fresh sealed value did not open");
    FUZZ_CHECK(plain_len == len && memcmp(plain, data, len) == 0,
               "unsealing changed the plaintext");

    sealed_len = strlen(sealed);
    at = len > 0 ? (data[0] * 131u + len) % sealed_len : 0;
    sealed[at] = sealed[at] == 'A' ? 'B' : 'A';
    FUZZ_CHECK(sk_unseal(p, server_config.session_key, COOKIE_NAME, sealed, &plain,
                         &plain_len) != APR_SUCCESS,
               "a sealed value with character %zu changed still opened", at);
    sealed[at] = sealed[at] == 'A' ? 'B' : 'A';
    sealed[sealed_len - 1] = '\0';
    FUZZ_CHECK(sk_unseal(p, server_config.session_key, COOKIE_NAME, sealed, &plain,
                         &plain_len) != APR_SUCCESS,
               "a sealed value without its last character still opened");
}

static void check_session(const sk_session_t *session)
{
    FUZZ_CHECK(session != NULL && cJSON_IsObject(session->claims),
               "a loaded session has no claims object");
    FUZZ_CHECK(session->id != NULL, "a loaded session has no id");
    FUZZ_CHECK(session->expires > apr_time_sec(apr_time_now()),
               "an expired session was loaded");
}

static void fuzz_cookie_headers(apr_pool_t *p, const uint8_t *data, size_t len)
{
    request_rec *r = fuzz_make_request(p);
    char *text = fuzz_cstring(p, data, len);
    char *last = NULL, *line;
    sk_session_t *session = NULL;

    for (line = apr_strtok(text, "\n", &last); line != NULL;
         line = apr_strtok(NULL, "\n", &last)) {
        apr_table_addn(r->headers_in, "Cookie", line);
    }
    if (sk_session_load(r, &server_config, &session) == APR_SUCCESS) {
        check_session(session);
    }
}

/* The cookies that mode 3 sends, in order, and the first value of each name. */
typedef struct {
    apr_array_header_t *headers;   /* of apr_array_header_t * of "name=value" */
    apr_table_t *first;            /* name -> first value */
} cookie_plan_t;

static void plan_cookie(apr_pool_t *p, cookie_plan_t *plan, const char *name,
                        const char *value)
{
    apr_array_header_t *current;

    if (plan->headers->nelts == 0) {
        APR_ARRAY_PUSH(plan->headers, apr_array_header_t *) =
            apr_array_make(p, 8, sizeof(const char *));
    }
    current = APR_ARRAY_IDX(plan->headers, plan->headers->nelts - 1,
                            apr_array_header_t *);
    APR_ARRAY_PUSH(current, const char *) = apr_pstrcat(p, name, "=", value, NULL);
    if (apr_table_get(plan->first, name) == NULL) {
        apr_table_setn(plan->first, name, value);
    }
}

/* Returns what sk_session_load reassembles from the plan's cookies, or NULL. */
static const char *expected_sealed(apr_pool_t *p, const cookie_plan_t *plan)
{
    const char *base = apr_table_get(plan->first, COOKIE_NAME);
    const char *joined = "";
    int count, i;

    if (base == NULL || strncmp(base, "chunks:", 7) != 0) {
        return base;
    }
    if (base[7] < '1' || base[7] > '8' || base[8] != '\0') {
        return NULL;
    }
    count = base[7] - '0';
    for (i = 1; i <= count; i++) {
        const char *chunk = apr_table_get(plan->first,
                                          apr_psprintf(p, "%s_%d", COOKIE_NAME, i));

        if (chunk == NULL || chunk[0] == '\0') {
            return NULL;
        }
        joined = apr_pstrcat(p, joined, chunk, NULL);
    }
    return joined;
}

static void fuzz_chunk_plan(apr_pool_t *p, const uint8_t *data, size_t len)
{
    request_rec *r = fuzz_make_request(p);
    cookie_plan_t plan;
    sk_session_t *session = NULL;
    const char *expected;
    apr_status_t rv;
    size_t i = 0;
    int h;

    plan.headers = apr_array_make(p, 4, sizeof(apr_array_header_t *));
    plan.first = apr_table_make(p, 8);

    while (i < len) {
        unsigned op = data[i] >> 5, arg = data[i] & 31u;
        unsigned next = i + 1 < len ? data[i + 1] : 0;
        const char *chunk_name = apr_psprintf(p, "%s_%u", COOKIE_NAME, arg % 10);
        char *piece = apr_pstrdup(p, pieces[next % piece_count]);

        i += op >= 2 && op <= 4 ? 2 : 1;
        switch (op) {
        case 0:
            plan_cookie(p, &plan, COOKIE_NAME, apr_psprintf(p, "chunks:%u", arg % 10));
            break;
        case 1:
            plan_cookie(p, &plan, COOKIE_NAME, big_sealed);
            break;
        case 2:
            plan_cookie(p, &plan, chunk_name, piece);
            break;
        case 3:
            piece[strlen(piece) - (next % 16 + 1) % strlen(piece)] = '\0';
            plan_cookie(p, &plan, chunk_name, piece);
            break;
        case 4:
            piece[(next * 37u) % strlen(piece)] ^= 1;
            plan_cookie(p, &plan, chunk_name, piece);
            break;
        case 5:
            plan_cookie(p, &plan, apr_psprintf(p, "other%u", arg), "x");
            break;
        case 6:
            APR_ARRAY_PUSH(plan.headers, apr_array_header_t *) =
                apr_array_make(p, 8, sizeof(const char *));
            break;
        default:
            plan_cookie(p, &plan, chunk_name, "");
            break;
        }
    }

    for (h = 0; h < plan.headers->nelts; h++) {
        apr_array_header_t *cookies = APR_ARRAY_IDX(plan.headers, h,
                                                    apr_array_header_t *);

        apr_table_addn(r->headers_in, h % 2 ? "cookie" : "Cookie",
                       apr_array_pstrcat(p, cookies, ';'));
    }

    expected = expected_sealed(p, &plan);
    rv = sk_session_load(r, &server_config, &session);
    if (expected != NULL && strcmp(expected, big_sealed) == 0) {
        FUZZ_CHECK(rv == APR_SUCCESS, "the intact chunks were rejected (%d)", rv);
        check_session(session);
        FUZZ_CHECK(strcmp(sk_json_string(session->claims, "sub"), "usr_fuzz") == 0,
                   "the session has another sub");
    }
    else {
        FUZZ_CHECK(rv != APR_SUCCESS,
                   "chunks that do not join to the sealed session were accepted");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;

    if (size == 0) {
        return 0;
    }
    p = fuzz_input_pool();
    fuzz_log_calls = 0;
    switch (data[0] % 4) {
    case 0:
        fuzz_unseal(p, data + 1, size - 1);
        break;
    case 1:
        fuzz_roundtrip(p, data + 1, size - 1);
        break;
    case 2:
        fuzz_cookie_headers(p, data + 1, size - 1);
        break;
    default:
        fuzz_chunk_plan(p, data + 1, size - 1);
        break;
    }
    apr_pool_destroy(p);
    return 0;
}
