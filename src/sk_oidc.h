/*
 * OpenID Connect rules for mod_auth_scalekit: discovery documents, token responses and
 * ID token claim validation (OpenID Connect Core 1.0, section 3.1.3.7).
 * No httpd header is included here.
 */
#ifndef SK_OIDC_H
#define SK_OIDC_H

#include <apr_pools.h>
#include <apr_time.h>
#include <cJSON.h>

/* Provider metadata taken from the discovery document. */
typedef struct {
    const char *issuer;
    const char *authorization_endpoint;
    const char *token_endpoint;
    const char *jwks_uri;
    const char *userinfo_endpoint;      /* NULL when not published */
    const char *end_session_endpoint;   /* NULL when not published */
} sk_provider_metadata_t;

/*
 * Parses a discovery document. Its issuer must equal expected_issuer exactly (OpenID
 * Connect Discovery 1.0, section 4.3), and the authorization, token and JWKS endpoints
 * must be http or https URLs. Returns APR_SUCCESS or SK_EINVAL with *err set.
 */
apr_status_t sk_discovery_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                const char *expected_issuer,
                                sk_provider_metadata_t **metadata, const char **err);

/* The members of a successful token response that the module uses. */
typedef struct {
    const char *id_token;
    const char *access_token;
    const char *token_type;
    const char *refresh_token;   /* NULL when absent */
    long expires_in;             /* -1 when absent */
} sk_token_response_t;

/*
 * Parses a token endpoint response body. These give SK_EINVAL with *err naming the
 * problem: an "error" member, a missing or empty id_token, a token_type other than
 * Bearer, an expires_in that is not a number from 0 to ten years, or a body that is
 * not one JSON object. *err includes the provider's error code but not its
 * description.
 */
apr_status_t sk_token_response_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                     sk_token_response_t **response, const char **err);

/* Latest exp accepted, in seconds from now: ID tokens live minutes, so a later exp
 * is a mistake such as milliseconds instead of seconds. */
#define SK_IDTOKEN_MAX_LIFETIME (366 * 86400)

/* What an ID token must match. */
typedef struct {
    const char *issuer;
    const char *client_id;
    const char *nonce;         /* the nonce sent, or NULL to skip the nonce check */
    apr_time_t now;
    long clock_skew;           /* seconds allowed on exp, iat and nbf */
} sk_idtoken_expect_t;

/*
 * Validates the claims of an ID token whose signature was already verified. The rules:
 * exact iss; aud containing the client id; azp equal to the client id when present or
 * when aud has several values; exp in the future but within SK_IDTOKEN_MAX_LIFETIME;
 * iat and nbf not in the future (each time within the clock skew, and exp and iat
 * required); nonce equal to the one sent; and a non-empty string sub.
 * Returns APR_SUCCESS or SK_EINVAL with *err naming the failed rule.
 */
apr_status_t sk_idtoken_validate(const cJSON *claims, const sk_idtoken_expect_t *expect,
                                 const char **err);

#endif /* SK_OIDC_H */
