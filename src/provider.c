/*
 * The provider's discovery document and JWKS, fetched over HTTP and kept per process.
 *
 * The raw documents are cached, not parsed objects: each request parses its own copy
 * into r->pool, so no thread ever holds a pointer into memory that another thread may
 * replace. Only logins read these documents; requests with a session never do.
 */
#include <apr_strings.h>

#include "mod_auth_scalekit.h"

/* Lifetimes of the cached copies, in seconds. */
#define DISCOVERY_TTL 86400
#define JWKS_TTL 3600

/* A JWKS refetch forced by an unknown kid happens at most once per this interval. */
#define JWKS_FORCED_INTERVAL 60

/* One cached document: malloc'ed text, replaced under the cache mutex. */
typedef struct {
    char *text;
    apr_size_t len;
    apr_time_t fetched;
    apr_time_t last_warning;
} cached_doc_t;

/* TODO: keep these documents in a socache under a global mutex so that all child
 * processes share one copy; today each child fetches its own. */
struct sk_provider_cache_t {
    apr_thread_mutex_t *mutex;
    cached_doc_t discovery;
    cached_doc_t jwks;
    apr_time_t jwks_forced;
};

static apr_status_t cleanup_cache(void *data)
{
    sk_provider_cache_t *cache = data;

    free(cache->discovery.text);
    free(cache->jwks.text);
    cache->discovery.text = NULL;
    cache->jwks.text = NULL;
    return APR_SUCCESS;
}

sk_provider_cache_t *sk_provider_cache_create(apr_pool_t *p)
{
    sk_provider_cache_t *cache = apr_pcalloc(p, sizeof(*cache));

    if (apr_thread_mutex_create(&cache->mutex, APR_THREAD_MUTEX_DEFAULT, p)
        != APR_SUCCESS) {
        return NULL;
    }
    apr_pool_cleanup_register(p, cache, cleanup_cache, apr_pool_cleanup_null);
    return cache;
}

static sk_http_options_t http_options(const sk_server_config_t *sc)
{
    sk_http_options_t options;

    options.timeout = sc->http_timeout;
    options.verify_tls = sc->ssl_verify;
    options.ca_file = sc->ca_file;
    options.user_agent = SK_USER_AGENT;
    return options;
}

static void store_doc(cached_doc_t *doc, const char *text, apr_size_t len)
{
    char *copy = malloc(len + 1);

    if (copy == NULL) {
        return;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    free(doc->text);
    doc->text = copy;
    doc->len = len;
    doc->fetched = apr_time_now();
}

/*
 * Fetches url and checks the body with validate before it replaces the cached copy.
 * Returns APR_SUCCESS with *text in r->pool. When the fetch fails and a copy exists,
 * that copy is returned whatever its age (stale-if-error), with a WARNING at most once
 * per ttl. Called with the cache mutex held.
 */
static apr_status_t fetch_doc(request_rec *r, sk_server_config_t *sc,
                              cached_doc_t *doc, const char *what, const char *url,
                              apr_status_t (*validate)(request_rec *,
                                                       sk_server_config_t *,
                                                       const char *, apr_size_t,
                                                       const char **),
                              apr_time_t ttl, int force,
                              const char **text, apr_size_t *len)
{
    sk_http_options_t options = http_options(sc);
    sk_http_response_t *resp = NULL;
    const char *err = NULL;
    apr_status_t rv;
    apr_time_t now = apr_time_now();

    if (doc->text != NULL && !force && now - doc->fetched < ttl) {
        *text = apr_pstrmemdup(r->pool, doc->text, doc->len);
        *len = doc->len;
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
        store_doc(doc, resp->body, resp->len);
        *text = resp->body;
        *len = resp->len;
        return APR_SUCCESS;
    }

    if (doc->text != NULL) {
        if (now - doc->last_warning >= ttl) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r,
                          "fetching %s failed, using the copy from %" APR_TIME_T_FMT
                          " seconds ago: %s", what,
                          apr_time_sec(now - doc->fetched), err);
            doc->last_warning = now;
        }
        *text = apr_pstrmemdup(r->pool, doc->text, doc->len);
        *len = doc->len;
        return APR_SUCCESS;
    }

    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "fetching %s failed: %s", what, err);
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
    sk_provider_cache_t *cache = sc->provider;
    const char *url = apr_pstrcat(r->pool, sc->issuer,
                                  "/.well-known/openid-configuration", NULL);
    const char *text = NULL, *err = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    apr_thread_mutex_lock(cache->mutex);
    rv = fetch_doc(r, sc, &cache->discovery, "discovery document", url,
                   validate_discovery, apr_time_from_sec(DISCOVERY_TTL), 0,
                   &text, &len);
    apr_thread_mutex_unlock(cache->mutex);

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
    sk_provider_cache_t *cache = sc->provider;
    const char *text = NULL, *err = NULL;
    apr_size_t len = 0;
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    apr_thread_mutex_lock(cache->mutex);
    if (force) {
        if (now - cache->jwks_forced < apr_time_from_sec(JWKS_FORCED_INTERVAL)) {
            apr_thread_mutex_unlock(cache->mutex);
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "JWKS refetch for an "
                          "unknown kid skipped: the last one was less than %d "
                          "seconds ago", JWKS_FORCED_INTERVAL);
            return APR_EAGAIN;
        }
        cache->jwks_forced = now;
    }
    rv = fetch_doc(r, sc, &cache->jwks, "JWKS", metadata->jwks_uri, validate_jwks,
                   apr_time_from_sec(JWKS_TTL), force, &text, &len);
    apr_thread_mutex_unlock(cache->mutex);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = sk_jwks_parse(r->pool, text, len, jwks, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "JWKS: %s", err);
    }
    return rv;
}

apr_status_t sk_provider_post_form(request_rec *r, sk_server_config_t *sc,
                                   const char *url, const char *form,
                                   sk_http_response_t **response, const char **err)
{
    sk_http_options_t options = http_options(sc);

    return sk_http_request(r->pool, url, form, &options, response, err);
}
