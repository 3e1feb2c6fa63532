/*
 * Redirect target checks.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>

#include "sk_url.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)apr_tolower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/*
 * Rejects bytes that browsers strip or reinterpret: controls, whitespace and
 * backslashes, also percent-encoded, and malformed percent escapes.
 */
static int has_forbidden_bytes(const char *target)
{
    const unsigned char *c;

    for (c = (const unsigned char *)target; *c; c++) {
        if (*c == '%') {
            int hi = hex_value((char)c[1]);
            int lo = hi < 0 ? -1 : hex_value((char)c[2]);
            unsigned char byte;

            if (hi < 0 || lo < 0) {
                return 1;
            }
            byte = (unsigned char)(hi * 16 + lo);
            if (byte < 0x20 || byte == 0x7f || byte == '\\') {
                return 1;
            }
            c += 2;
        }
        else if (*c <= 0x20 || *c == 0x7f || *c == '\\') {
            return 1;
        }
    }
    return 0;
}

static int is_local_path(const char *target)
{
    if (target[0] != '/') {
        return 0;
    }
    /* "//host" and an encoded second slash are network-path references. */
    if (target[1] == '/' || (target[1] == '%' && target[2] == '2'
                             && (target[3] == 'f' || target[3] == 'F'))) {
        return 0;
    }
    return 1;
}

/* Returns whether a URL's port text is empty or a decimal number from 1 to 65535:
 * apr_uri_parse keeps only the low 16 bits and takes signs, so it cannot tell. */
static int is_valid_port(const char *text)
{
    apr_size_t i, len;

    if (text == NULL || text[0] == '\0') {
        return 1;
    }
    len = strlen(text);
    if (len > 5) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!apr_isdigit(text[i])) {
            return 0;
        }
    }
    return atoi(text) >= 1 && atoi(text) <= 65535;
}

static apr_port_t port_of(const apr_uri_t *uri)
{
    if (uri->port_str != NULL) {
        return uri->port;
    }
    return apr_uri_port_of_scheme(uri->scheme);
}

static int same_host(const apr_uri_t *a, const apr_uri_t *b)
{
    return a->hostname != NULL && b->hostname != NULL
           && strcasecmp(a->hostname, b->hostname) == 0 && port_of(a) == port_of(b);
}

static int host_allowed(apr_pool_t *p, const apr_uri_t *uri,
                        const char *const *allowed_hosts)
{
    const char *with_port;
    int i;

    if (allowed_hosts == NULL) {
        return 0;
    }
    with_port = apr_psprintf(p, "%s:%u", uri->hostname, (unsigned)port_of(uri));
    for (i = 0; allowed_hosts[i] != NULL; i++) {
        if (strcasecmp(allowed_hosts[i], uri->hostname) == 0
            || strcasecmp(allowed_hosts[i], with_port) == 0) {
            return 1;
        }
    }
    return 0;
}

const char *sk_url_check_target(apr_pool_t *p, const char *target, const char *origin,
                                const char *const *allowed_hosts)
{
    apr_uri_t uri, own;

    if (target == NULL || target[0] == '\0' || has_forbidden_bytes(target)) {
        return NULL;
    }
    if (is_local_path(target)) {
        return target;
    }

    if (apr_uri_parse(p, target, &uri) != APR_SUCCESS || uri.scheme == NULL
        || (strcasecmp(uri.scheme, "https") != 0 && strcasecmp(uri.scheme, "http") != 0)
        || uri.hostname == NULL || uri.hostname[0] == '\0'
        || uri.user != NULL || uri.password != NULL
        || !is_valid_port(uri.port_str)
        || strncasecmp(target + strlen(uri.scheme), "://", 3) != 0) {
        return NULL;
    }

    if (origin != NULL && apr_uri_parse(p, origin, &own) == APR_SUCCESS
        && own.scheme != NULL && strcasecmp(uri.scheme, own.scheme) == 0
        && same_host(&uri, &own)) {
        return target;
    }
    if (host_allowed(p, &uri, allowed_hosts)) {
        return target;
    }
    return NULL;
}
