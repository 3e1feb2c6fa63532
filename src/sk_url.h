/*
 * Checks of redirect targets taken from requests (return_to, relay_state), so the
 * module never becomes an open redirect. No httpd header is included here.
 */
#ifndef SK_URL_H
#define SK_URL_H

#include <apr_pools.h>

/*
 * Returns target when it is safe to redirect to, otherwise NULL. Safe means a local
 * path ("/..." but not "//..." or "/\...") or an absolute http(s) URL without userinfo
 * whose scheme, host and port equal origin ("https://host:port" of this server), or
 * whose host (or host:port) is listed in allowed_hosts (NULL-terminated, may be
 * NULL). Control characters, whitespace and backslashes are rejected anywhere, also
 * when percent-encoded, and so is an encoded "/" or "\" at the start of a path.
 */
const char *sk_url_check_target(apr_pool_t *p, const char *target, const char *origin,
                                const char *const *allowed_hosts);

#endif /* SK_URL_H */
