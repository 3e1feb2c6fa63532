/*
 * Checks of redirect targets taken from requests (return_to, relay_state), so the
 * module never becomes an open redirect. No httpd header is included here.
 */
#ifndef SK_URL_H
#define SK_URL_H

#include <apr_pools.h>

/*
 * Returns target when it is safe to redirect to, otherwise NULL. Two kinds are safe:
 * a local path ("/..." but not "//..." or "/\..."), and an absolute http(s) URL
 * without userinfo. The URL's scheme, host and port must equal origin
 * ("https://host:port" of this server), or its host (or host:port) must be listed
 * in allowed_hosts, a NULL-terminated array that may be NULL. Control characters,
 * whitespace and backslashes are rejected anywhere, also when percent-encoded, and so
 * is an encoded "/" at the start of a path.
 */
const char *sk_url_check_target(apr_pool_t *p, const char *target, const char *origin,
                                const char *const *allowed_hosts);

#endif /* SK_URL_H */
