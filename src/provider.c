/*
 * The provider's discovery document and JWKS, fetched over HTTP and kept in the
 * shared ScalekitCache.
 *
 * Raw documents are cached, not parsed objects, so each request parses its own copy
 * into r->pool. Only logins read these documents; requests with a session never do.
 * A fetch runs under the global fetch mutex and looks at the cache again once it holds
 * the mutex, so a cold start of many processes makes one request per document.
 */
#include <apr_strings.h>

#include "mod_auth_scalekit.h"

/* How long a copy past its lifetime is kept to serve while the provider is down. */
#define STALE_KEEP (7 * 86400)

/* A JWKS refetch forced by an unknown kid happens at most once per this interval. */
#define JWKS_FORCED_INTERVAL 60

/* After a failed fetch, requests in this many seconds do not try again: during an
 * outage each would otherwise wait for the fetch mutex and then for its own timeout. */
#define FAILURE_BACKOFF 5

typedef apr_status_t (*validate_fn)(request_rec *r, sk_server_config_t *sc,
                                    const char *text, apr_size_t len,
                                    const char **err);

/* A document read from the cache: the body and when it was fetched. */
typedef struct {
    const char *body;
    apr_size_t len;
    apr_time_t fetched;
} cached_doc_t;

static sk_http_options_t http_options(const sk_server_config_t *sc)
{
    sk_http_options_t options;

    options.timeout = sc->http_timeout;
    options.verify_tls = sc->ssl_verify;
    options.ca_file = sc->ca_file;
    options.user_agent = SK_USER_AGENT;
    options.bearer_token = NULL;
    options.basic_user = NULL;
    options.basic_password = NULL;
    return options;
}

/* Entries are "<fetch time in microseconds>\n<document>". */
static int read_entry(request_rec *r, const char *key, cached_doc_t *doc)
{
    char *value, *newline, *end;
    apr_size_t len;
    apr_status_t rv;

    rv = sk_cache_get(sk_globals.provider_cache, r->server, r->pool, key, &value,
                      &len);
    if (rv != APR_SUCCESS) {
        if (rv != APR_NOTFOUND) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "reading %s from "
                          "ScalekitCache failed", key);
        }
        return 0;
    }
    newline = memchr(value, '\n', len);
    if (newline == NULL) {
        return 0;
    }
    *newline = '\0';
    doc->fetched = (apr_time_t)apr_strtoi64(value, &end, 10);
    if (*end != '\0' || doc->fetched <= 0) {
        return 0;
    }
    doc->body = newline + 1;
    doc->len = len - (apr_size_t)(newline + 1 - value);
    return 1;
}

static void write_entry(request_rec *r, const char *key, const char *body,
                        apr_size_t len, apr_time_t now, apr_time_t keep)
{
    const char *value = apr_psprintf(r->pool, "%" APR_TIME_T_FMT "\n%s", now, body);
    apr_status_t rv;

    rv = sk_cache_set(sk_globals.provider_cache, r->server, r->pool, key, value,
                      strlen(value), now + keep);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "storing %s (%"
                      APR_SIZE_T_FMT " bytes) in ScalekitCache failed; it will be "
                      "fetched again", key, len);
    }
}

/* Reads a time stamp entry such as the last forced refetch; 0 when absent. */
static apr_time_t read_time(request_rec *r, const char *key)
{
    cached_doc_t doc;

    return read_entry(r, key, &doc) ? doc.fetched : 0;
}

static void write_time(request_rec *r, const char *key, apr_time_t when)
{
    write_entry(r, key, "", 0, when, apr_time_from_sec(STALE_KEEP));
}

/*
 * Logs that a stale copy is served, at most once per interval for all processes,
 * so an outage does not write one line per login.
 */
static void warn_stale(request_rec *r, const char *what, const char *key,
                       apr_time_t fetched, apr_time_t interval, const char *err)
{
    const char *warn_key = apr_pstrcat(r->pool, "warn|", key, NULL);
    apr_time_t now = apr_time_now();

    if (now - read_time(r, warn_key) < interval) {
        return;
    }
    write_time(r, warn_key, now);
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "fetching %s failed, serving the "
                  "copy fetched %" APR_TIME_T_FMT " seconds ago until the provider "
                  "answers again: %s", what, apr_time_sec(now - fetched), err);
}

/*
 * Returns the document from the cache when fresh, otherwise fetches it under the
 * fetch mutex. When the fetch fails, an expired copy is served (stale-if-error).
 * *text is in r->pool.
 */
static apr_status_t get_doc(request_rec *r, sk_server_config_t *sc, const char *what,
                            const char *key, const char *url, validate_fn validate,
                            apr_time_t ttl, int force, const char **text,
                            apr_size_t *len)
{
    sk_http_options_t options = http_options(sc);
    sk_http_response_t *resp = NULL;
    const char *err = NULL;
    const char *failed_key = apr_pstrcat(r->pool, "failed|", key, NULL);
    cached_doc_t doc;
    int cached;
    apr_status_t rv;
    apr_time_t now = apr_time_now();

    cached = read_entry(r, key, &doc);
    if (cached && !force && now - doc.fetched < ttl) {
        *text = doc.body;
        *len = doc.len;
        return APR_SUCCESS;
    }
    if (now - read_time(r, failed_key) < apr_time_from_sec(FAILURE_BACKOFF)) {
        err = "the last fetch failed less than " APR_STRINGIFY(FAILURE_BACKOFF)
              " seconds ago";
        rv = APR_EAGAIN;
        goto failed;
    }

    apr_global_mutex_lock(sk_globals.fetch_mutex);

    /* A fetch that failed while this request waited for the mutex stands for it. */
    if (read_time(r, failed_key) >= now) {
        apr_global_mutex_unlock(sk_globals.fetch_mutex);
        err = "the fetch by a concurrent request just failed";
        rv = APR_EAGAIN;
        goto failed;
    }

    /* Another process may have fetched it while this one waited for the mutex. A
     * forced fetch reuses only a copy fetched after it was requested, since any
     * older copy may lack the key that caused the force. */
    cached = read_entry(r, key, &doc);
    if (cached && (force ? doc.fetched >= now
                         : apr_time_now() - doc.fetched < ttl)) {
        apr_global_mutex_unlock(sk_globals.fetch_mutex);
        *text = doc.body;
        *len = doc.len;
        return APR_SUCCESS;
    }

    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "fetching %s from %s", what, url);
    rv = sk_http_request(r->pool, url, NULL, &options, &resp, &err);
    if (rv == APR_SUCCESS && resp->status != 200) {
        err = apr_psprintf(r->pool, "%s returned HTTP status %ld", url, resp->status);
        rv = APR_EGENERAL;
    }
    if (rv == APR_SUCCESS) {
        rv = validate(r, sc, resp->body, resp->len, &err);
    }
    if (rv == APR_SUCCESS) {
        write_entry(r, key, resp->body, resp->len, apr_time_now(),
                    ttl + apr_time_from_sec(STALE_KEEP));
    }
    else {
        write_time(r, failed_key, apr_time_now());
    }
    apr_global_mutex_unlock(sk_globals.fetch_mutex);

    if (rv == APR_SUCCESS) {
        *text = resp->body;
        *len = resp->len;
        return APR_SUCCESS;
    }

failed:
    if (cached) {
        warn_stale(r, what, key, doc.fetched, ttl, err);
        *text = doc.body;
        *len = doc.len;
        return APR_SUCCESS;
    }

    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "fetching %s failed and no copy is "
                  "cached: %s", what, err);
    return rv == APR_SUCCESS ? APR_EGENERAL : rv;
}

static apr_status_t validate_discovery(request_rec *r, sk_server_config_t *sc,
                                       const char *text, apr_size_t len,
                                       const char **err)
{
    sk_provider_metadata_t *md;

    return sk_discovery_parse(r->pool, text, len, sc->issuer, &md, err);
}

static apr_status_t validate_jwks(request_rec *r, sk_server_config_t *sc,
                                  const char *text, apr_size_t len, const char **err)
{
    sk_jwks_t *jwks;

    return sk_jwks_parse(r->pool, text, len, &jwks, err);
}

apr_status_t sk_provider_metadata(request_rec *r, sk_server_config_t *sc,
                                  sk_provider_metadata_t **metadata)
{
    apr_size_t issuer_len = strlen(sc->issuer);
    const char *key = apr_pstrcat(r->pool, "discovery|", sc->issuer, NULL);
    const char *url, *text = NULL, *err = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    /* OpenID Connect Discovery 1.0, section 4: a terminating "/" of the issuer is
     * removed before the well-known path is appended. */
    if (issuer_len > 0 && sc->issuer[issuer_len - 1] == '/') {
        issuer_len--;
    }
    url = apr_pstrcat(r->pool, apr_pstrmemdup(r->pool, sc->issuer, issuer_len),
                      "/.well-known/openid-configuration", NULL);

    rv = get_doc(r, sc, "discovery document", key, url, validate_discovery,
                 apr_time_from_sec(sc->discovery_ttl), 0, &text, &len);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = sk_discovery_parse(r->pool, text, len, sc->issuer, metadata, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "discovery document: %s", err);
    }
    return rv;
}

apr_status_t sk_provider_jwks(request_rec *r, sk_server_config_t *sc,
                              const sk_provider_metadata_t *metadata, int force,
                              sk_jwks_t **jwks)
{
    const char *key = apr_pstrcat(r->pool, "jwks|", sc->issuer, NULL);
    const char *forced_key = apr_pstrcat(r->pool, "jwks-forced|", sc->issuer, NULL);
    const char *text = NULL, *err = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    if (force) {
        apr_time_t now = apr_time_now();

        /* Read and written without a lock: two processes may both refetch once. */
        if (now - read_time(r, forced_key)
            < apr_time_from_sec(JWKS_FORCED_INTERVAL)) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "JWKS refetch for an "
                          "unknown kid skipped: the last one was less than %d "
                          "seconds ago", JWKS_FORCED_INTERVAL);
            return APR_EAGAIN;
        }
        write_time(r, forced_key, now);
    }

    rv = get_doc(r, sc, "JWKS", key, metadata->jwks_uri, validate_jwks,
                 apr_time_from_sec(sc->jwks_ttl), force, &text, &len);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = sk_jwks_parse(r->pool, text, len, jwks, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "JWKS: %s", err);
    }
    return rv;
}

apr_status_t sk_provider_verify_jwt(request_rec *r, sk_server_config_t *sc,
                                    const sk_provider_metadata_t *metadata,
                                    const char *token, sk_jwt_t **jwt,
                                    const char **err)
{
    sk_jwks_t *jwks;
    apr_status_t rv;

    rv = sk_provider_jwks(r, sc, metadata, 0, &jwks);
    if (rv != APR_SUCCESS) {
        *err = "the JWKS is not available";
        return rv;
    }
    rv = sk_jwt_verify(r->pool, token, jwks, jwt, err);

    /* A kid the cached set lacks may be a rotated key: fetch the set once more. */
    if (rv == SK_ENOKEY && sk_provider_jwks(r, sc, metadata, 1, &jwks) == APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "unknown kid in a token, JWKS "
                      "refetched");
        rv = sk_jwt_verify(r->pool, token, jwks, jwt, err);
    }
    return rv;
}

int sk_provider_unavailable(request_rec *r)
{
    return sk_error_page(r, HTTP_SERVICE_UNAVAILABLE, "Identity provider unavailable",
                         "The sign-in service cannot be reached right now. Please "
                         "try again in a few minutes.");
}

apr_status_t sk_provider_get_bearer(request_rec *r, sk_server_config_t *sc,
                                    const char *url, const char *token,
                                    sk_http_response_t **response, const char **err)
{
    sk_http_options_t options = http_options(sc);

    options.bearer_token = token;
    return sk_http_request(r->pool, url, NULL, &options, response, err);
}

apr_status_t sk_provider_post_form(request_rec *r, sk_server_config_t *sc,
                                   const char *url, const char *form,
                                   sk_http_response_t **response, const char **err)
{
    sk_http_options_t options = http_options(sc);

    if (sc->token_auth_basic) {
        options.basic_user = sc->client_id;
        options.basic_password = sc->client_secret;
    }
    return sk_http_request(r->pool, url, form, &options, response, err);
}
