/*
 * Cookies and the sealed session cookie.
 *
 * The session is JSON sealed with AES-256-GCM under a key derived from
 * ScalekitSessionSecret, bound to the cookie name as additional data. A value longer
 * than one cookie can carry is split into numbered chunk cookies, and the base cookie
 * then holds only "chunks:N".
 */
#include <apr_lib.h>
#include <apr_strings.h>

#include <http_protocol.h>

#include "mod_auth_scalekit.h"

/* Bytes of sealed text per cookie: browsers keep at least 4096 per cookie including
 * the name and attributes (RFC 6265, section 6.1). */
#define CHUNK_SIZE 3800
#define MAX_CHUNKS 8
#define CHUNKS_PREFIX "chunks:"

#define SESSION_VERSION 1

/* Finds name in the Cookie headers. Returns the first value, or NULL. */
const char *sk_cookie_get(request_rec *r, const char *name)
{
    const apr_array_header_t *headers = apr_table_elts(r->headers_in);
    const apr_table_entry_t *entries = (const apr_table_entry_t *)headers->elts;
    apr_size_t name_len = strlen(name);
    int i;

    for (i = 0; i < headers->nelts; i++) {
        const char *c;

        if (entries[i].key == NULL || strcasecmp(entries[i].key, "Cookie") != 0) {
            continue;
        }
        for (c = entries[i].val; c && *c; ) {
            const char *end;

            while (*c == ' ' || *c == '\t' || *c == ';') {
                c++;
            }
            end = strchr(c, ';');
            if (strncmp(c, name, name_len) == 0 && c[name_len] == '=') {
                const char *value = c + name_len + 1;
                apr_size_t len = end ? (apr_size_t)(end - value) : strlen(value);

                while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t')) {
                    len--;
                }
                return apr_pstrmemdup(r->pool, value, len);
            }
            c = end;
        }
    }
    return NULL;
}

void sk_cookie_set(request_rec *r, const char *name, const char *value,
                   const char *path, long max_age)
{
    int secure = strcmp(ap_http_scheme(r), "https") == 0;
    const char *expiry = "";

    if (max_age == 0) {
        expiry = "; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT";
    }
    else if (max_age > 0) {
        expiry = apr_psprintf(r->pool, "; Max-Age=%ld", max_age);
    }

    apr_table_addn(r->err_headers_out, "Set-Cookie",
                   apr_psprintf(r->pool, "%s=%s; Path=%s%s; HttpOnly%s; SameSite=Lax",
                                name, value, path, expiry,
                                secure ? "; Secure" : ""));
}

/* Reassembles a chunked value. Returns NULL when a chunk is missing or the count is
 * outside 1..MAX_CHUNKS. */
static const char *read_chunks(request_rec *r, const char *base_name,
                               const char *marker)
{
    const char *count_text = marker + strlen(CHUNKS_PREFIX);
    apr_array_header_t *parts;
    int count, i;

    if (!apr_isdigit(count_text[0]) || count_text[1] != '\0') {
        return NULL;
    }
    count = count_text[0] - '0';
    if (count < 1 || count > MAX_CHUNKS) {
        return NULL;
    }

    parts = apr_array_make(r->pool, count, sizeof(const char *));
    for (i = 1; i <= count; i++) {
        const char *chunk = sk_cookie_get(r, apr_psprintf(r->pool, "%s_%d",
                                                          base_name, i));

        if (chunk == NULL || chunk[0] == '\0') {
            return NULL;
        }
        APR_ARRAY_PUSH(parts, const char *) = chunk;
    }
    return apr_array_pstrcat(r->pool, parts, 0);
}

static apr_status_t cleanup_cjson(void *data)
{
    cJSON_Delete(data);
    return APR_SUCCESS;
}

apr_status_t sk_session_load(request_rec *r, sk_server_config_t *sc,
                             sk_session_t **session_out)
{
    const char *value = sk_cookie_get(r, sc->cookie_name);
    unsigned char *plain;
    apr_size_t len;
    cJSON *doc;
    const cJSON *version, *created, *expires, *claims;
    const char *id;
    sk_session_t *session;
    apr_time_t now = apr_time_sec(apr_time_now());

    if (value == NULL || value[0] == '\0') {
        return APR_NOTFOUND;
    }
    if (strncmp(value, CHUNKS_PREFIX, strlen(CHUNKS_PREFIX)) == 0) {
        value = read_chunks(r, sc->cookie_name, value);
        if (value == NULL) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "session cookie %s has a "
                          "missing or invalid chunk; treating it as no session",
                          sc->cookie_name);
            return APR_EINVAL;
        }
    }

    if (sk_unseal(r->pool, sc->session_key, sc->cookie_name, value, &plain, &len)
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "session cookie %s could not be "
                      "decrypted (tampered, truncated or sealed with another "
                      "ScalekitSessionSecret); treating it as no session",
                      sc->cookie_name);
        return APR_EINVAL;
    }

    doc = sk_json_parse_object(r->pool, (const char *)plain, len);
    version = cJSON_GetObjectItemCaseSensitive(doc, "v");
    created = cJSON_GetObjectItemCaseSensitive(doc, "iat");
    expires = cJSON_GetObjectItemCaseSensitive(doc, "exp");
    claims = cJSON_GetObjectItemCaseSensitive(doc, "claims");
    id = sk_json_string(doc, "sid");
    if (doc == NULL || !cJSON_IsNumber(version)
        || version->valueint != SESSION_VERSION || !cJSON_IsNumber(created)
        || !cJSON_IsNumber(expires) || !cJSON_IsObject(claims) || id == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "session cookie %s has an "
                      "unknown layout; treating it as no session", sc->cookie_name);
        return APR_EINVAL;
    }

    if ((apr_time_t)expires->valuedouble <= now) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session expired %"
                      APR_TIME_T_FMT " seconds ago",
                      now - (apr_time_t)expires->valuedouble);
        return APR_TIMEUP;
    }

    session = apr_pcalloc(r->pool, sizeof(*session));
    session->id = id;
    session->created = (apr_time_t)created->valuedouble;
    session->expires = (apr_time_t)expires->valuedouble;
    session->claims = (cJSON *)claims;
    *session_out = session;
    return APR_SUCCESS;
}

apr_status_t sk_session_save(request_rec *r, sk_server_config_t *sc,
                             const cJSON *claims)
{
    apr_time_t now = apr_time_sec(apr_time_now());
    cJSON *doc = cJSON_CreateObject();
    const char *id = sk_random_token(r->pool, 16);
    char *json, *sealed;
    apr_size_t len;
    int chunks, i;

    if (doc == NULL || id == NULL) {
        cJSON_Delete(doc);
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(r->pool, doc, cleanup_cjson, apr_pool_cleanup_null);

    cJSON_AddNumberToObject(doc, "v", SESSION_VERSION);
    cJSON_AddStringToObject(doc, "sid", id);
    cJSON_AddNumberToObject(doc, "iat", (double)now);
    cJSON_AddNumberToObject(doc, "exp", (double)(now + sc->session_max_age));
    cJSON_AddItemToObject(doc, "claims", cJSON_Duplicate(claims, 1));

    json = cJSON_PrintUnformatted(doc);
    if (json == NULL) {
        return APR_EGENERAL;
    }
    sealed = sk_seal(r->pool, sc->session_key, sc->cookie_name,
                     (const unsigned char *)json, strlen(json));
    cJSON_free(json);
    if (sealed == NULL) {
        return APR_EGENERAL;
    }

    len = strlen(sealed);
    chunks = len <= CHUNK_SIZE ? 0 : (int)((len + CHUNK_SIZE - 1) / CHUNK_SIZE);
    if (chunks > MAX_CHUNKS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "the session is %" APR_SIZE_T_FMT
                      " bytes sealed, more than %d cookies of %d bytes can carry; "
                      "the ID token has too many or too large claims", len,
                      MAX_CHUNKS, CHUNK_SIZE);
        return APR_ENOSPC;
    }

    if (chunks == 0) {
        sk_cookie_set(r, sc->cookie_name, sealed, "/", -1);
    }
    else {
        sk_cookie_set(r, sc->cookie_name,
                      apr_psprintf(r->pool, CHUNKS_PREFIX "%d", chunks), "/", -1);
        for (i = 1; i <= chunks; i++) {
            sk_cookie_set(r, apr_psprintf(r->pool, "%s_%d", sc->cookie_name, i),
                          apr_pstrndup(r->pool, sealed + (i - 1) * CHUNK_SIZE,
                                       CHUNK_SIZE),
                          "/", -1);
        }
    }

    /* Chunks left over from a larger earlier session would confuse nobody, but they
     * cost bytes on every request: expire them. */
    for (i = chunks + 1; i <= MAX_CHUNKS; i++) {
        const char *name = apr_psprintf(r->pool, "%s_%d", sc->cookie_name, i);

        if (sk_cookie_get(r, name) != NULL) {
            sk_cookie_set(r, name, "", "/", 0);
        }
    }

    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session created, %"
                  APR_SIZE_T_FMT " bytes in %d cookie(s)", len,
                  chunks ? chunks + 1 : 1);
    return APR_SUCCESS;
}
