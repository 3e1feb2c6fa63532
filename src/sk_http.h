/*
 * A small HTTP client over libcurl for the provider's endpoints. No httpd header here.
 */
#ifndef SK_HTTP_H
#define SK_HTTP_H

#include <apr_pools.h>
#include <apr_errno.h>

/* Largest response body read from the provider; a larger one is an error. */
#define SK_HTTP_MAX_BODY (1024 * 1024)

typedef struct {
    long timeout;              /* seconds for the whole request, connect included */
    int verify_tls;            /* verify the peer certificate and host name */
    const char *ca_file;       /* PEM bundle to verify against, NULL for the system one */
    const char *user_agent;
    const char *bearer_token;  /* sent as Authorization: Bearer, or NULL */
    const char *basic_user;    /* with basic_password: HTTP Basic (RFC 6749, 2.3.1) */
    const char *basic_password;
} sk_http_options_t;

typedef struct {
    long status;
    char *body;                /* NUL-terminated */
    apr_size_t len;
    const char *content_type;  /* NULL when absent */
} sk_http_response_t;

/* Initialises libcurl once per process, before any thread is started. */
apr_status_t sk_http_global_init(void);

/*
 * Sends a GET, or a POST of an application/x-www-form-urlencoded body when form is not
 * NULL. Redirects are not followed, only http and https are allowed, and bodies over
 * SK_HTTP_MAX_BODY are refused. Returns APR_SUCCESS when a response with any status
 * arrived, APR_TIMEUP on timeout, or APR_EGENERAL with *err describing the failure.
 */
apr_status_t sk_http_request(apr_pool_t *p, const char *url, const char *form,
                             const sk_http_options_t *options,
                             sk_http_response_t **response, const char **err);

#endif /* SK_HTTP_H */
