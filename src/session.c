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
#include <openssl/crypto.h>

#include "mod_auth_scalekit.h"

/* Bytes of sealed text per cookie: browsers keep at least 4096 per cookie including
 * the name and attributes (RFC 6265, section 6.1). */
#define CHUNK_SIZE 3800

/* Most sealed bytes written for one session. The browser sends all cookies in one
 * Cookie header, which httpd's default LimitRequestFieldSize caps at 8190 bytes, so a
 * larger session would lock the visitor out of every page, logout included. */
#define MAX_SESSION_BYTES 7000

/* Most chunks read back: bounds the work a forged "chunks:N" can cause. */
#define MAX_CHUNKS 8
#define CHUNKS_PREFIX "chunks:"

#define SESSION_VERSION 1

/* Random bytes in a server-side session id, and its length as base64url. */
#define SESSION_ID_BYTES 32
#define SESSION_ID_LEN 43

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

/* Socache key of a session stored server-side: a digest, so that someone who can read
 * the cache cannot learn the cookie values that open the sessions. */
static const char *session_key(request_rec *r, const char *id)
{
    return apr_pstrcat(r->pool, "session|", sk_sha256_b64url(r->pool, id, strlen(id)),
                       NULL);
}

/* Socache key that marks a cookie session as ended by logout. */
static const char *ended_key(request_rec *r, const char *sid)
{
    return apr_pstrcat(r->pool, "ended|", sid, NULL);
}

/* The cache that records ended sessions: the session cache when there is one, so
 * that every host behind a load balancer rejects a session ended on another. */
static sk_cache_t *ended_cache(void)
{
    return sk_globals.session_cache ? sk_globals.session_cache
                                    : sk_globals.provider_cache;
}

static int is_session_id(const char *value)
{
    const char *c;

    for (c = value; *c; c++) {
        if (!apr_isalnum(*c) && *c != '-' && *c != '_') {
            return 0;
        }
    }
    return c - value == SESSION_ID_LEN;
}

/* Reads the sealed session text from the cookie or from the session cache. */
static apr_status_t read_sealed(request_rec *r, sk_server_config_t *sc,
                                const char *value, const char **sealed,
                                const char **aad)
{
    char *cached;
    apr_size_t len;
    apr_status_t rv;

    if (sc->session_store != SK_SESSION_STORE_CACHE) {
        if (strncmp(value, CHUNKS_PREFIX, strlen(CHUNKS_PREFIX)) == 0) {
            value = read_chunks(r, sc->cookie_name, value);
            if (value == NULL) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "session cookie %s has "
                              "a missing or invalid chunk; treating it as no "
                              "session", sc->cookie_name);
                return APR_EINVAL;
            }
        }
        *sealed = value;
        *aad = sc->cookie_name;
        return APR_SUCCESS;
    }

    if (!is_session_id(value)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "session cookie %s is not a "
                      "session id; treating it as no session", sc->cookie_name);
        return APR_EINVAL;
    }
    rv = sk_cache_get(sk_globals.session_cache, r->server, r->pool,
                      session_key(r, value), &cached, &len);
    if (rv == APR_NOTFOUND) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session cookie %s names no "
                      "session in the session cache (ended or evicted)",
                      sc->cookie_name);
        return APR_NOTFOUND;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "reading the session from "
                      "ScalekitSessionCache failed");
        return APR_EGENERAL;
    }
    *sealed = cached;
    *aad = apr_pstrcat(r->pool, "cache|", sc->cookie_name, NULL);
    return APR_SUCCESS;
}

apr_status_t sk_session_load(request_rec *r, sk_server_config_t *sc,
                             sk_session_t **session_out)
{
    const char *value = sk_cookie_get(r, sc->cookie_name);
    const char *sealed = NULL, *aad = NULL, *id;
    unsigned char *plain;
    apr_size_t len;
    cJSON *doc;
    const cJSON *version, *created, *expires, *claims, *seen;
    apr_time_t last_seen;
    sk_session_t *session;
    char *ended;
    apr_size_t ended_len;
    apr_status_t rv;
    apr_time_t now = apr_time_sec(apr_time_now());

    if (value == NULL || value[0] == '\0') {
        return APR_NOTFOUND;
    }
    rv = read_sealed(r, sc, value, &sealed, &aad);
    if (rv != APR_SUCCESS) {
        return rv;
    }

    if (sk_unseal(r->pool, sc->session_key, aad, sealed, &plain, &len)
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

    seen = cJSON_GetObjectItemCaseSensitive(doc, "seen");
    last_seen = cJSON_IsNumber(seen) ? (apr_time_t)seen->valuedouble
                                     : (apr_time_t)created->valuedouble;
    if (sc->inactivity_timeout > 0 && now - last_seen > sc->inactivity_timeout) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session inactive for %"
                      APR_TIME_T_FMT " seconds, over ScalekitSessionInactivityTimeout "
                      "%d", now - last_seen, sc->inactivity_timeout);
        return APR_TIMEUP;
    }

    /* A cookie session stays valid until it expires unless logout marked it ended. */
    if (sc->session_store != SK_SESSION_STORE_CACHE) {
        rv = sk_cache_get(ended_cache(), r->server, r->pool, ended_key(r, id),
                          &ended, &ended_len);
        if (rv == APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "session cookie %s belongs "
                          "to a session ended by logout", sc->cookie_name);
            return APR_NOTFOUND;
        }
        if (rv != APR_NOTFOUND) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "checking for ended "
                          "sessions in the cache failed");
            return APR_EGENERAL;
        }
    }

    session = apr_pcalloc(r->pool, sizeof(*session));
    session->id = id;
    session->cache_id = sc->session_store == SK_SESSION_STORE_CACHE ? value : NULL;
    session->created = (apr_time_t)created->valuedouble;
    session->expires = (apr_time_t)expires->valuedouble;
    session->claims = (cJSON *)claims;
    session->id_token = sk_json_string(doc, "idt");
    session->last_seen = last_seen;
    session->doc = doc;
    *session_out = session;
    return APR_SUCCESS;
}

/* Sets the cookie, split into chunks when too long, and expires unused chunks. */
static apr_status_t write_cookie(request_rec *r, sk_server_config_t *sc,
                                 const char *value)
{
    apr_size_t len = strlen(value);
    int chunks = len <= CHUNK_SIZE ? 0 : (int)((len + CHUNK_SIZE - 1) / CHUNK_SIZE);
    int i;

    if (len > MAX_SESSION_BYTES) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "the session is %" APR_SIZE_T_FMT
                      " bytes sealed, more than the %d bytes that fit in the Cookie "
                      "header under httpd's default LimitRequestFieldSize; the ID "
                      "token has too many or too large claims, so use "
                      "ScalekitSessionStore cache", len, MAX_SESSION_BYTES);
        return APR_ENOSPC;
    }

    if (chunks == 0) {
        sk_cookie_set(r, sc->cookie_name, value, "/", -1);
    }
    else {
        sk_cookie_set(r, sc->cookie_name,
                      apr_psprintf(r->pool, CHUNKS_PREFIX "%d", chunks), "/", -1);
        for (i = 1; i <= chunks; i++) {
            sk_cookie_set(r, apr_psprintf(r->pool, "%s_%d", sc->cookie_name, i),
                          apr_pstrndup(r->pool, value + (i - 1) * CHUNK_SIZE,
                                       CHUNK_SIZE),
                          "/", -1);
        }
    }

    /* Chunks left from a larger earlier session cost bytes on every request. */
    for (i = chunks + 1; i <= MAX_CHUNKS; i++) {
        const char *name = apr_psprintf(r->pool, "%s_%d", sc->cookie_name, i);

        if (sk_cookie_get(r, name) != NULL) {
            sk_cookie_set(r, name, "", "/", 0);
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session cookie written, %"
                  APR_SIZE_T_FMT " bytes in %d cookie(s)", len, chunks ? chunks + 1 : 1);
    return APR_SUCCESS;
}

static void write_logout_hint(request_rec *r, sk_server_config_t *sc,
                              const char *id_token);

/* Seals doc and writes it to the cookie, or to the cache under cache_id. */
static apr_status_t store_doc(request_rec *r, sk_server_config_t *sc, cJSON *doc,
                              const char *cache_id, apr_time_t expires)
{
    const char *aad;
    char *json, *sealed;
    apr_status_t rv;

    json = cJSON_PrintUnformatted(doc);
    if (json == NULL) {
        return APR_EGENERAL;
    }
    aad = cache_id ? apr_pstrcat(r->pool, "cache|", sc->cookie_name, NULL)
                   : sc->cookie_name;
    sealed = sk_seal(r->pool, sc->session_key, aad, (const unsigned char *)json,
                     strlen(json));
    OPENSSL_cleanse(json, strlen(json));
    cJSON_free(json);
    if (sealed == NULL) {
        return APR_EGENERAL;
    }
    if (cache_id == NULL) {
        return write_cookie(r, sc, sealed);
    }

    rv = sk_cache_set(sk_globals.session_cache, r->server, r->pool,
                      session_key(r, cache_id), sealed, strlen(sealed),
                      apr_time_from_sec(expires));
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "storing the session in "
                      "ScalekitSessionCache failed");
        return rv == APR_ENOSPC ? APR_ENOSPC : APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t sk_session_save(request_rec *r, sk_server_config_t *sc,
                             const cJSON *claims, const char *id_token)
{
    apr_time_t now = apr_time_sec(apr_time_now());
    apr_time_t expires = now + sc->session_max_age;
    cJSON *doc = cJSON_CreateObject();
    const char *sid = sk_random_token(r->pool, 16);
    const char *cache_id = NULL;
    apr_status_t rv;

    if (doc == NULL || sid == NULL) {
        cJSON_Delete(doc);
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(r->pool, doc, cleanup_cjson, apr_pool_cleanup_null);

    cJSON_AddNumberToObject(doc, "v", SESSION_VERSION);
    cJSON_AddStringToObject(doc, "sid", sid);
    cJSON_AddNumberToObject(doc, "iat", (double)now);
    cJSON_AddNumberToObject(doc, "seen", (double)now);
    cJSON_AddNumberToObject(doc, "exp", (double)expires);
    cJSON_AddItemToObject(doc, "claims", cJSON_Duplicate(claims, 1));
    if (sc->session_store == SK_SESSION_STORE_CACHE) {
        cache_id = sk_random_token(r->pool, SESSION_ID_BYTES);
        if (cache_id == NULL) {
            return APR_EGENERAL;
        }
        if (id_token != NULL) {
            cJSON_AddStringToObject(doc, "idt", id_token);
        }
    }
    else if (id_token != NULL) {
        write_logout_hint(r, sc, id_token);
    }
    rv = store_doc(r, sc, doc, cache_id, expires);
    if (rv == APR_SUCCESS && cache_id != NULL) {
        rv = write_cookie(r, sc, cache_id);
    }
    return rv;
}

void sk_session_touch(request_rec *r, sk_server_config_t *sc, sk_session_t *session)
{
    apr_time_t now = apr_time_sec(apr_time_now());
    apr_time_t interval = sc->inactivity_timeout / 10;

    /* Rewriting on every request would cost a Set-Cookie or a cache write each time.
     * Rewriting after a tenth of the timeout keeps the error of the check under 10%. */
    if (interval > 300) {
        interval = 300;
    }
    if (sc->inactivity_timeout <= 0 || now - session->last_seen < interval
        || session->doc == NULL) {
        return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(session->doc, "seen");
    cJSON_AddNumberToObject(session->doc, "seen", (double)now);
    if (store_doc(r, sc, session->doc, session->cache_id, session->expires)
        == APR_SUCCESS) {
        session->last_seen = now;
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "session activity time "
                      "updated");
    }
}

/* Name of the cookie that keeps the ID token of a cookie session for the logout. */
static const char *logout_hint_name(request_rec *r, const sk_server_config_t *sc)
{
    return apr_pstrcat(r->pool, sc->cookie_name, "_logout", NULL);
}

/*
 * Seals the ID token into its own cookie, scoped to the logout path. Only the logout
 * needs it (as id_token_hint), so every other request carries, decrypts and parses a
 * session cookie less than half as large.
 */
static void write_logout_hint(request_rec *r, sk_server_config_t *sc,
                              const char *id_token)
{
    const char *name = logout_hint_name(r, sc);
    char *sealed = sk_seal(r->pool, sc->session_key, name,
                           (const unsigned char *)id_token, strlen(id_token));

    if (sealed == NULL || strlen(sealed) > CHUNK_SIZE) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "the ID token is too large to "
                      "keep for the logout; the logout will not send id_token_hint");
        return;
    }
    sk_cookie_set(r, name, sealed, sc->logout_path, -1);
}

const char *sk_session_logout_hint(request_rec *r, sk_server_config_t *sc,
                                   const sk_session_t *session)
{
    const char *name = logout_hint_name(r, sc);
    const char *sealed;
    unsigned char *plain;
    apr_size_t len;

    if (session->id_token != NULL) {
        return session->id_token;
    }
    sealed = sk_cookie_get(r, name);
    if (sealed == NULL || sealed[0] == '\0'
        || sk_unseal(r->pool, sc->session_key, name, sealed, &plain, &len)
           != APR_SUCCESS) {
        return NULL;
    }
    return (const char *)plain;
}

void sk_session_clear_cookies(request_rec *r, sk_server_config_t *sc)
{
    const char *hint = logout_hint_name(r, sc);
    int i;

    if (sk_cookie_get(r, hint) != NULL) {
        sk_cookie_set(r, hint, "", sc->logout_path, 0);
    }

    if (sk_cookie_get(r, sc->cookie_name) != NULL) {
        sk_cookie_set(r, sc->cookie_name, "", "/", 0);
    }
    for (i = 1; i <= MAX_CHUNKS; i++) {
        const char *name = apr_psprintf(r->pool, "%s_%d", sc->cookie_name, i);

        if (sk_cookie_get(r, name) != NULL) {
            sk_cookie_set(r, name, "", "/", 0);
        }
    }
}

apr_status_t sk_session_end(request_rec *r, sk_server_config_t *sc,
                            const sk_session_t *session)
{
    apr_status_t rv;

    sk_session_clear_cookies(r, sc);
    if (session->cache_id != NULL) {
        rv = sk_cache_remove(sk_globals.session_cache, r->server, r->pool,
                             session_key(r, session->cache_id));
        if (rv == APR_NOTFOUND) {
            rv = APR_SUCCESS;
        }
    }
    else {
        rv = sk_cache_set(ended_cache(), r->server, r->pool,
                          ended_key(r, session->id), "1", 1,
                          apr_time_from_sec(session->expires));
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "ending the session in the "
                      "cache failed; a copy of its cookie stays valid until it "
                      "expires");
    }
    return rv;
}
