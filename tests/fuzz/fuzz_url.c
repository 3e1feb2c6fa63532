/*
 * libFuzzer target for sk_url_check_target, the open redirect guard of return_to
 * and relay_state.
 *
 * The first input byte selects the origin and whether a list of allowed hosts is
 * given; the rest is the target. An accepted target must be either a local path
 * that a browser cannot read as another host, or an http(s) URL without userinfo
 * whose scheme, host and port are the origin's (or whose host is an allowed one).
 * The check below parses the URL on its own, the way a browser reads a Location
 * header, instead of calling the parser that the library uses.
 */
#include <ctype.h>

#include "fuzz_common.h"
#include "sk_url.h"

typedef struct {
    const char *origin;
    const char *scheme;
    const char *host;
    unsigned port;
} origin_t;

static const origin_t origins[] = {
    {"https://app.example.test", "https", "app.example.test", 443},
    {"http://127.0.0.1:8080", "http", "127.0.0.1", 8080},
};

/* Allowed hosts of the second mode: one for any port, one for port 8443 only. */
static const char *const allowed_hosts[] = {
    "partner.example.test", "cdn.example.test:8443", NULL
};

static int hex_value(unsigned char c)
{
    if (isdigit(c)) {
        return c - '0';
    }
    c = (unsigned char)tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Returns the byte that s encodes at its start, decoding one %XX escape. */
static int first_byte(const char *s)
{
    if (s[0] == '%' && hex_value((unsigned char)s[1]) >= 0
        && hex_value((unsigned char)s[2]) >= 0) {
        return hex_value((unsigned char)s[1]) * 16 + hex_value((unsigned char)s[2]);
    }
    return (unsigned char)s[0];
}

static void check_bytes(const char *target)
{
    const unsigned char *c;

    /* Browsers drop tab, CR and LF inside URLs and read "\" as "/", so any of them
     * could turn "/\t/evil" into "//evil". */
    for (c = (const unsigned char *)target; *c; c++) {
        FUZZ_CHECK(*c > 0x20 && *c != 0x7f && *c != '\\',
                   "accepted a target with byte 0x%02x", *c);
    }
}

static void check_local_path(const char *target)
{
    int second = first_byte(target + 1);

    FUZZ_CHECK(second != '/' && second != '\\',
               "accepted a path that a browser reads as another host: %s", target);
}

static unsigned default_port(const char *scheme)
{
    return strcasecmp(scheme, "https") == 0 ? 443 : 80;
}

static void check_absolute(apr_pool_t *p, const char *target, const origin_t *origin,
                           int with_allowed)
{
    const char *sep = strstr(target, "://");
    const char *scheme, *authority, *host, *colon, *entry;
    unsigned port = 0;
    size_t authority_len;
    int allowed = 0, i;

    FUZZ_CHECK(sep != NULL, "accepted a target that is neither a path nor a URL: %s",
               target);
    scheme = apr_pstrmemdup(p, target, (apr_size_t)(sep - target));
    FUZZ_CHECK(strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0,
               "accepted scheme %s", scheme);

    authority_len = strcspn(sep + 3, "/?#");
    authority = apr_pstrmemdup(p, sep + 3, authority_len);
    FUZZ_CHECK(strchr(authority, '@') == NULL, "accepted userinfo in %s", target);

    colon = strrchr(authority, ':');
    if (colon != NULL) {
        const char *digit;

        for (digit = colon + 1; *digit; digit++) {
            FUZZ_CHECK(isdigit((unsigned char)*digit), "accepted port in %s", target);
            port = port * 10 + (unsigned)(*digit - '0');
            FUZZ_CHECK(port <= 65535, "accepted port over 65535 in %s", target);
        }
        if (colon[1] == '\0') {
            port = default_port(scheme);
        }
        host = apr_pstrmemdup(p, authority, (apr_size_t)(colon - authority));
    }
    else {
        port = default_port(scheme);
        host = authority;
    }

    if (strcasecmp(host, origin->host) == 0 && port == origin->port
        && strcasecmp(scheme, origin->scheme) == 0) {
        return;
    }
    for (i = 0; with_allowed && allowed_hosts[i] != NULL; i++) {
        entry = allowed_hosts[i];
        allowed |= strcasecmp(entry, host) == 0
                   || strcasecmp(entry, apr_psprintf(p, "%s:%u", host, port)) == 0;
    }
    FUZZ_CHECK(allowed, "accepted %s, which is not on origin %s%s", target,
               origin->origin, with_allowed ? " or an allowed host" : "");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup_begin();
    fuzz_global_pool();
    fuzz_setup_end();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const origin_t *origin;
    int with_allowed;
    apr_pool_t *p;
    const char *target, *result;

    if (size == 0) {
        return 0;
    }
    origin = &origins[data[0] & 1];
    with_allowed = (data[0] & 2) != 0;
    p = fuzz_input_pool();
    target = fuzz_cstring(p, data + 1, size - 1);

    result = sk_url_check_target(p, target, origin->origin,
                                 with_allowed ? allowed_hosts : NULL);
    if (result != NULL) {
        FUZZ_CHECK(strcmp(result, target) == 0, "the accepted target was changed");
        check_bytes(target);
        if (target[0] == '/') {
            check_local_path(target);
        }
        else {
            check_absolute(p, target, origin, with_allowed);
        }
    }
    apr_pool_destroy(p);
    return 0;
}
