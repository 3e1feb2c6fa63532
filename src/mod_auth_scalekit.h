/*
 * Private header of the httpd glue: configuration records and the functions that the
 * glue files share. Only glue files include httpd headers.
 */
#ifndef MOD_AUTH_SCALEKIT_H
#define MOD_AUTH_SCALEKIT_H

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <util_filter.h>
#include <http_log.h>
#include <http_request.h>
#include <ap_socache.h>
#include <apr_global_mutex.h>

#include "sk_crypto.h"
#include "sk_oidc.h"
#include "sk_http.h"
#include "sk_jose.h"

#define SK_MODULE_VERSION "0.1.0"
#define SK_USER_AGENT "mod_auth_scalekit/" SK_MODULE_VERSION
#define SK_AUTH_TYPE "Scalekit"

#define SK_UNSET -1

/* Defaults of the server directives. */
#define SK_DEFAULT_REDIRECT_PATH "/scalekit/callback"
#define SK_DEFAULT_LOGOUT_PATH "/scalekit/logout"
#define SK_DEFAULT_LOGIN_PATH "/scalekit/login"
#define SK_DEFAULT_INACTIVITY_TIMEOUT 3600  /* seconds: 1 hour */
#define SK_DEFAULT_SCOPES "openid email profile"
#define SK_DEFAULT_COOKIE_NAME "scalekit_session"
#define SK_DEFAULT_CLOCK_SKEW 60            /* seconds */
#define SK_DEFAULT_HTTP_TIMEOUT 10          /* seconds */
#define SK_DEFAULT_SESSION_MAX_AGE 28800    /* seconds: 8 hours */
#define SK_SESSION_SECRET_MIN 32            /* bytes */
#define SK_DEFAULT_DISCOVERY_TTL 86400      /* seconds: 24 hours */
#define SK_DEFAULT_JWKS_TTL 3600            /* seconds: 1 hour */

/* Socache defaults: shmcb files in the runtime directory. The provider cache contains
 * a few documents; the session cache about 16,000 sessions of 1 KiB. */
#define SK_DEFAULT_PROVIDER_CACHE_SIZE 2097152
#define SK_DEFAULT_SESSION_CACHE_SIZE 16777216

/* Largest value kept in a socache, in bytes. */
#define SK_CACHE_MAX_VALUE 65536

/* Names of the global mutexes, for Apache's Mutex directive. */
#define SK_MUTEX_PROVIDER_CACHE "auth-scalekit-cache"
#define SK_MUTEX_SESSION_CACHE "auth-scalekit-session"
#define SK_MUTEX_FETCH "auth-scalekit-fetch"

/* A login attempt must come back within this many seconds. */
#define SK_STATE_MAX_AGE 600
#define SK_STATE_COOKIE_PREFIX "scalekit_state_"

/* Maximum length of the return address kept in a state cookie, in bytes. With the
 * nonce, verifier and sealing overhead, the cookie stays under the 4096 bytes that
 * browsers keep per cookie. */
#define SK_STATE_URL_MAX 2048

/* Pending logins per browser: one state cookie each, at most this many (up to 16,
 * one hexadecimal digit). 16 cookies of about 350 bytes stay under httpd's default
 * LimitRequestFieldSize of 8190 bytes on the callback. */
#define SK_STATE_SLOTS 16

/* Prefix of the environment variables that carry claims. */
#define SK_CLAIM_ENV_PREFIX "SCALEKIT_CLAIM_"

/* The file that declares the module gets the log index from AP_DECLARE_MODULE. */
#ifndef SK_DECLARES_MODULE
APLOG_USE_MODULE(auth_scalekit);
#endif
extern module AP_MODULE_DECLARE_DATA auth_scalekit_module;

/* A socache instance with the global mutex it needs, if any; see cache.c. */
typedef struct sk_cache_t sk_cache_t;

typedef enum {
    SK_SESSION_STORE_UNSET = 0,
    SK_SESSION_STORE_COOKIE,
    SK_SESSION_STORE_CACHE
} sk_session_store_t;

/* Process-wide state, rebuilt at every (re)start from the server-wide directives. */
typedef struct {
    const char *provider_cache_spec;    /* ScalekitCache, NULL for the default */
    const char *session_cache_spec;     /* ScalekitSessionCache, NULL for the default */
    sk_cache_t *provider_cache;
    sk_cache_t *session_cache;          /* NULL unless a server stores sessions there */
    apr_global_mutex_t *fetch_mutex;
} sk_globals_t;

extern sk_globals_t sk_globals;

typedef struct {
    const char *issuer;
    const char *client_id;
    const char *client_secret;
    const char *redirect_uri;       /* as configured: a path or an absolute URL */
    const char *redirect_path;      /* the path part, matched against r->uri */
    const char *logout_path;
    apr_array_header_t *allowed_hosts;  /* NULL-terminated array of const char * */
    const char *session_secret;
    const char *scopes;
    const char *cookie_name;
    const char *ca_file;
    int ssl_verify;
    int clock_skew;
    int http_timeout;
    int session_max_age;
    int inactivity_timeout;
    int userinfo;
    int token_auth_basic;
    const char *login_path;
    int discovery_ttl;
    int jwks_ttl;
    sk_session_store_t session_store;

    /* Set in post_config from the merged values. */
    int ready;
    unsigned char session_key[SK_KEY_LEN];
    unsigned char state_key[SK_KEY_LEN];
} sk_server_config_t;

/* What happens to a request without a session (ScalekitUnauthAction). */
typedef enum {
    SK_UNAUTH_UNSET = 0,
    SK_UNAUTH_AUTH,         /* navigations log in, other requests get 401 */
    SK_UNAUTH_401,
    SK_UNAUTH_403,
    SK_UNAUTH_PASS          /* the handler decides; claims exported when logged in */
} sk_unauth_action_t;

/* Destinations of claims (ScalekitPassClaimsAs), as a bit mask. */
#define SK_CLAIMS_ENV 1
#define SK_CLAIMS_HEADERS 2

/* Prefix of the request headers that carry claims to a proxied application. */
#define SK_CLAIM_HEADER_PREFIX "Scalekit-Claim-"

typedef struct {
    const char *remote_user_claim;
    const char *connection_id;
    const char *organization_id;
    const char *domain;
    const char *login_hint;
    int allow_login_hint;           /* SK_UNSET, 0 or 1 */
    int pass_claims_as;             /* SK_UNSET or SK_CLAIMS_* bits */
    sk_unauth_action_t unauth_action;
} sk_dir_config_t;

/* SSO routing and return address of one login. */
typedef struct {
    const char *connection_id;
    const char *organization_id;
    const char *domain;
    const char *login_hint;
    const char *return_to;          /* checked local path or same-origin URL */
    const char *required_org;       /* oid the login must yield, or NULL */
} sk_login_t;


/* A session read from or written to the session cookie. */
typedef struct {
    const char *id;
    const char *cache_id;          /* the cookie's id with ScalekitSessionStore cache */
    const char *id_token;          /* cache sessions only; see sk_session_logout_hint */
    apr_time_t created;            /* seconds since the epoch */
    apr_time_t expires;            /* seconds since the epoch */
    apr_time_t last_seen;          /* seconds since the epoch */
    cJSON *claims;
    cJSON *doc;                    /* the whole session, for sk_session_touch */
} sk_session_t;

/* Per-request state kept in r->request_config. */
typedef struct {
    sk_session_t *session;
} sk_request_state_t;

/* config.c */
extern const command_rec sk_directives[];
void *sk_create_server_config(apr_pool_t *p, server_rec *s);
void *sk_merge_server_config(apr_pool_t *p, void *base, void *add);
void *sk_create_dir_config(apr_pool_t *p, char *dir);
void *sk_merge_dir_config(apr_pool_t *p, void *base, void *add);
int sk_config_is_client(const sk_server_config_t *sc);
apr_status_t sk_config_finish(apr_pool_t *p, server_rec *s, sk_server_config_t *sc);

/* cache.c */
const char *sk_cache_create(apr_pool_t *p, apr_pool_t *ptemp, const char *spec,
                            const char *default_args, const char *mutex_type,
                            sk_cache_t **cache);
apr_status_t sk_cache_init(sk_cache_t *cache, const char *namespace,
                           apr_size_t avg_value, server_rec *s, apr_pool_t *pconf);
void sk_cache_child_init(sk_cache_t *cache, apr_pool_t *p, server_rec *s);
void sk_cache_destroy(sk_cache_t *cache, server_rec *s);
apr_status_t sk_cache_get(sk_cache_t *cache, server_rec *s, apr_pool_t *p,
                          const char *key, char **value, apr_size_t *len);
apr_status_t sk_cache_set(sk_cache_t *cache, server_rec *s, apr_pool_t *p,
                          const char *key, const char *value, apr_size_t len,
                          apr_time_t expiry);
apr_status_t sk_cache_remove(sk_cache_t *cache, server_rec *s, apr_pool_t *p,
                             const char *key);

/* provider.c */
apr_status_t sk_provider_metadata(request_rec *r, sk_server_config_t *sc,
                                  sk_provider_metadata_t **metadata);
apr_status_t sk_provider_jwks(request_rec *r, sk_server_config_t *sc,
                              const sk_provider_metadata_t *metadata, int force,
                              sk_jwks_t **jwks);
/*
 * Verifies a token signed with a JWKS key, refetching the JWKS once (throttled) when
 * the token's kid is unknown, so key rotation needs no restart.
 */
apr_status_t sk_provider_verify_jwt(request_rec *r, sk_server_config_t *sc,
                                    const sk_provider_metadata_t *metadata,
                                    const char *token, sk_jwt_t **jwt,
                                    const char **err);
/* Returns 503 with the error page for a provider that cannot be reached. */
int sk_provider_unavailable(request_rec *r);
apr_status_t sk_provider_get_bearer(request_rec *r, sk_server_config_t *sc,
                                    const char *url, const char *token,
                                    sk_http_response_t **response, const char **err);
apr_status_t sk_provider_post_form(request_rec *r, sk_server_config_t *sc,
                                   const char *url, const char *form,
                                   sk_http_response_t **response, const char **err);

/* session.c */
const char *sk_cookie_get(request_rec *r, const char *name);
void sk_cookie_set(request_rec *r, const char *name, const char *value,
                   const char *path, long max_age);
apr_status_t sk_session_load(request_rec *r, sk_server_config_t *sc,
                             sk_session_t **session);
apr_status_t sk_session_save(request_rec *r, sk_server_config_t *sc,
                             const cJSON *claims, const char *id_token);
void sk_session_touch(request_rec *r, sk_server_config_t *sc, sk_session_t *session);
/* Returns the ID token of the session for the logout's id_token_hint, or NULL. */
const char *sk_session_logout_hint(request_rec *r, sk_server_config_t *sc,
                                   const sk_session_t *session);
void sk_session_clear_cookies(request_rec *r, sk_server_config_t *sc);
apr_status_t sk_session_end(request_rec *r, sk_server_config_t *sc,
                            const sk_session_t *session);

/* authn.c */
int sk_check_authn(request_rec *r);
int sk_fixups(request_rec *r);
/* Returns hint when it looks like an email address (text on both sides of an '@',
 * no spaces, quotes or
 * control characters, at most 256 bytes), else NULL. */
const char *sk_checked_login_hint(const char *hint);
int sk_start_login(request_rec *r, sk_server_config_t *sc, const sk_login_t *login);
void sk_login_from_dir(request_rec *r, const sk_dir_config_t *dc, sk_login_t *login);
sk_session_t *sk_request_session(request_rec *r);
int sk_note_auth_failure(request_rec *r, const char *auth_type);
void sk_insert_error_filter(request_rec *r);
apr_status_t sk_forbidden_filter(ap_filter_t *f, apr_bucket_brigade *bb);
int sk_strip_claim_headers(request_rec *r);

/* authz.c */
void sk_register_authz_providers(apr_pool_t *p);

/* login.c */
int sk_is_lookup_subrequest(request_rec *r);
int sk_handle_login(request_rec *r, sk_server_config_t *sc);
int sk_handle_idp_initiated(request_rec *r, sk_server_config_t *sc,
                            const char *token);
int sk_error_page(request_rec *r, int status, const char *title,
                  const char *message);
const char *sk_redirect_uri(request_rec *r, const sk_server_config_t *sc);

/* logout.c */
const char *sk_query_param(request_rec *r, const char *name);
const char *sk_origin(request_rec *r);
/* Returns target when it is a local path or a URL of this server, else NULL. */
const char *sk_local_target(request_rec *r, const char *target);
/* Returns target when sk_local_target accepts it or its host is listed in
 * ScalekitLogoutRedirectAllowed, else NULL. Only logout may leave the server. */
const char *sk_safe_target(request_rec *r, const sk_server_config_t *sc,
                           const char *target);
int sk_handle_logout(request_rec *r, sk_server_config_t *sc);

/* callback.c */
int sk_quick_handler(request_rec *r, int lookup);

#endif /* MOD_AUTH_SCALEKIT_H */
