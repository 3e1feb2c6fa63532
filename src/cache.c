/*
 * Shared caches over Apache's socache providers (shmcb, memcache, redis, ...).
 *
 * A provider that is not safe for concurrent use (AP_SOCACHE_FLAG_NOTMPSAFE, such as
 * shmcb) is serialised with a global mutex, so every process and thread of every MPM
 * uses one copy.
 */
#include <apr_strings.h>
#include <ap_provider.h>
#include <util_mutex.h>

#include "mod_auth_scalekit.h"

/* First retrieve buffer; larger entries are read again with SK_CACHE_MAX_VALUE. */
#define FIRST_BUFFER 8192

struct sk_cache_t {
    const char *spec;
    const char *mutex_type;
    const ap_socache_provider_t *provider;
    ap_socache_instance_t *instance;
    apr_global_mutex_t *mutex;      /* NULL when the provider is safe without one */
};

const char *sk_cache_create(apr_pool_t *p, apr_pool_t *ptemp, const char *spec,
                            const char *default_args, const char *mutex_type,
                            sk_cache_t **cache_out)
{
    const char *sep = strchr(spec, ':');
    const char *name = sep ? apr_pstrmemdup(p, spec, (apr_size_t)(sep - spec)) : spec;
    const char *args = sep ? sep + 1 : default_args;
    sk_cache_t *cache = apr_pcalloc(p, sizeof(*cache));
    const char *err;

    cache->spec = apr_pstrdup(p, spec);
    cache->mutex_type = mutex_type;
    cache->provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                                         AP_SOCACHE_PROVIDER_VERSION);
    if (cache->provider == NULL) {
        return apr_psprintf(p, "socache provider \"%s\" is not loaded; load "
                            "mod_socache_%s (a2enmod socache_%s)", name, name, name);
    }
    err = cache->provider->create(&cache->instance, args, ptemp, p);
    if (err != NULL) {
        return apr_psprintf(p, "socache \"%s\": %s", spec, err);
    }
    *cache_out = cache;
    return NULL;
}

apr_status_t sk_cache_init(sk_cache_t *cache, const char *namespace,
                           apr_size_t avg_value, server_rec *s, apr_pool_t *pconf)
{
    struct ap_socache_hints hints;
    apr_status_t rv;

    memset(&hints, 0, sizeof(hints));
    hints.avg_id_len = 48;
    hints.avg_obj_size = avg_value;
    hints.expiry_interval = apr_time_from_sec(60);

    if (cache->provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE) {
        rv = ap_global_mutex_create(&cache->mutex, NULL, cache->mutex_type, NULL, s,
                                    pconf, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "cannot create the %s "
                         "global mutex", cache->mutex_type);
            return rv;
        }
    }

    rv = cache->provider->init(cache->instance, namespace, &hints, s, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "cannot initialise the socache "
                     "\"%s\"", cache->spec);
    }
    return rv;
}

void sk_cache_child_init(sk_cache_t *cache, apr_pool_t *p, server_rec *s)
{
    apr_status_t rv;

    if (cache == NULL || cache->mutex == NULL) {
        return;
    }
    rv = apr_global_mutex_child_init(&cache->mutex,
                                     apr_global_mutex_lockfile(cache->mutex), p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "cannot attach to the %s global "
                     "mutex in this child", cache->mutex_type);
    }
}

void sk_cache_destroy(sk_cache_t *cache, server_rec *s)
{
    if (cache != NULL && cache->instance != NULL) {
        cache->provider->destroy(cache->instance, s);
        cache->instance = NULL;
    }
}

static void lock(sk_cache_t *cache)
{
    if (cache->mutex != NULL) {
        apr_global_mutex_lock(cache->mutex);
    }
}

static void unlock(sk_cache_t *cache)
{
    if (cache->mutex != NULL) {
        apr_global_mutex_unlock(cache->mutex);
    }
}

apr_status_t sk_cache_get(sk_cache_t *cache, server_rec *s, apr_pool_t *p,
                          const char *key, char **value, apr_size_t *len)
{
    unsigned int size = FIRST_BUFFER;
    unsigned char *buf;
    apr_status_t rv;

    for (;;) {
        unsigned int got = size - 1;

        buf = apr_palloc(p, size);
        lock(cache);
        rv = cache->provider->retrieve(cache->instance, s,
                                       (const unsigned char *)key,
                                       (unsigned int)strlen(key), buf, &got, p);
        unlock(cache);

        if (rv == APR_SUCCESS) {
            buf[got] = '\0';
            *value = (char *)buf;
            *len = got;
            return APR_SUCCESS;
        }
        /* Providers report a short buffer as ENOSPC or ENOMEM: read once more. */
        if ((rv == APR_ENOSPC || rv == APR_ENOMEM) && size < SK_CACHE_MAX_VALUE) {
            size = SK_CACHE_MAX_VALUE;
            continue;
        }
        return rv;
    }
}

apr_status_t sk_cache_set(sk_cache_t *cache, server_rec *s, apr_pool_t *p,
                          const char *key, const char *value, apr_size_t len,
                          apr_time_t expiry)
{
    apr_status_t rv;

    if (len >= SK_CACHE_MAX_VALUE) {
        return APR_ENOSPC;
    }
    lock(cache);
    rv = cache->provider->store(cache->instance, s, (const unsigned char *)key,
                                (unsigned int)strlen(key), expiry,
                                (unsigned char *)value, (unsigned int)len, p);
    unlock(cache);
    return rv;
}

apr_status_t sk_cache_remove(sk_cache_t *cache, server_rec *s, apr_pool_t *p,
                             const char *key)
{
    apr_status_t rv;

    lock(cache);
    rv = cache->provider->remove(cache->instance, s, (const unsigned char *)key,
                                 (unsigned int)strlen(key), p);
    unlock(cache);
    return rv;
}
