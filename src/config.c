/*
 * Directives of mod_auth_scalekit: parsing, merging and the checks made at start.
 * Every handler parses the whole value strictly and returns an error that names the
 * directive and the value, so `apachectl configtest` points at the line to fix.
 */
#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>

#include <http_core.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "mod_auth_scalekit.h"

/* Largest secret read through file: */
#define SK_SECRET_FILE_MAX 65536

void *sk_create_server_config(apr_pool_t *p, server_rec *s)
{
    sk_server_config_t *sc = apr_pcalloc(p, sizeof(*sc));

    sc->ssl_verify = SK_UNSET;
    sc->clock_skew = SK_UNSET;
    sc->http_timeout = SK_UNSET;
    sc->session_max_age = SK_UNSET;
    sc->discovery_ttl = SK_UNSET;
    sc->jwks_ttl = SK_UNSET;
    sc->inactivity_timeout = SK_UNSET;
    sc->userinfo = SK_UNSET;
    sc->token_auth_basic = SK_UNSET;
    return sc;
}

#define MERGE_PTR(field) merged->field = add->field ? add->field : base->field
#define MERGE_INT(field) \
    merged->field = add->field != SK_UNSET ? add->field : base->field

void *sk_merge_server_config(apr_pool_t *p, void *base_conf, void *add_conf)
{
    sk_server_config_t *base = base_conf, *add = add_conf;
    sk_server_config_t *merged = apr_pcalloc(p, sizeof(*merged));

    MERGE_PTR(issuer);
    MERGE_PTR(client_id);
    MERGE_PTR(client_secret);
    MERGE_PTR(redirect_uri);
    MERGE_PTR(redirect_path);
    MERGE_PTR(logout_path);
    MERGE_PTR(allowed_hosts);
    MERGE_PTR(session_secret);
    MERGE_PTR(scopes);
    MERGE_PTR(cookie_name);
    MERGE_PTR(ca_file);
    MERGE_INT(ssl_verify);
    MERGE_INT(clock_skew);
    MERGE_INT(http_timeout);
    MERGE_INT(session_max_age);
    MERGE_INT(inactivity_timeout);
    MERGE_INT(userinfo);
    MERGE_INT(token_auth_basic);
    MERGE_PTR(login_path);
    MERGE_INT(discovery_ttl);
    MERGE_INT(jwks_ttl);
    merged->session_store = add->session_store != SK_SESSION_STORE_UNSET
                            ? add->session_store : base->session_store;
    return merged;
}

void *sk_create_dir_config(apr_pool_t *p, char *dir)
{
    sk_dir_config_t *dc = apr_pcalloc(p, sizeof(*dc));

    dc->allow_login_hint = SK_UNSET;
    dc->pass_claims_as = SK_UNSET;
    return dc;
}

void *sk_merge_dir_config(apr_pool_t *p, void *base_conf, void *add_conf)
{
    sk_dir_config_t *base = base_conf, *add = add_conf;
    sk_dir_config_t *merged = apr_pcalloc(p, sizeof(*merged));

    MERGE_PTR(remote_user_claim);
    MERGE_PTR(connection_id);
    MERGE_PTR(organization_id);
    MERGE_PTR(domain);
    MERGE_PTR(login_hint);
    MERGE_INT(allow_login_hint);
    MERGE_INT(pass_claims_as);
    merged->unauth_action = add->unauth_action != SK_UNAUTH_UNSET
                            ? add->unauth_action : base->unauth_action;

    /* A directory that names any selector replaces all three inherited ones, so a
     * connection set above cannot override an organization set here. */
    if (add->connection_id != NULL || add->organization_id != NULL
        || add->domain != NULL) {
        merged->connection_id = add->connection_id;
        merged->organization_id = add->organization_id;
        merged->domain = add->domain;
    }
    return merged;
}

static sk_server_config_t *server_config(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &auth_scalekit_module);
}

/* Returns NULL when value has no whitespace or control character. */
static const char *check_token(cmd_parms *cmd, const char *value)
{
    const char *c;

    if (value[0] == '\0') {
        return apr_psprintf(cmd->pool, "%s: the value is empty", cmd->cmd->name);
    }
    for (c = value; *c; c++) {
        if (apr_isspace(*c) || apr_iscntrl(*c)) {
            return apr_psprintf(cmd->pool, "%s: \"%s\" contains whitespace or a "
                                "control character", cmd->cmd->name, value);
        }
    }
    return NULL;
}

static int is_loopback_host(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0
           || strcmp(host, "::1") == 0;
}

/*
 * Resolves a secret given as the value itself, as env:NAME or as file:/path. The value
 * is never part of an error message.
 */
static const char *resolve_secret(cmd_parms *cmd, const char *arg,
                                  const char **secret)
{
    const char *name = cmd->cmd->name;

    if (strncmp(arg, "env:", 4) == 0) {
        const char *value = getenv(arg + 4);

        if (arg[4] == '\0') {
            return apr_psprintf(cmd->pool, "%s: env: needs a variable name", name);
        }
        if (value == NULL || value[0] == '\0') {
            return apr_psprintf(cmd->pool, "%s: environment variable %s is not set "
                                "or empty", name, arg + 4);
        }
        *secret = apr_pstrdup(cmd->pool, value);
        return NULL;
    }

    if (strncmp(arg, "file:", 5) == 0) {
        const char *path = ap_server_root_relative(cmd->temp_pool, arg + 5);
        char buf[SK_SECRET_FILE_MAX + 1];
        apr_size_t len = SK_SECRET_FILE_MAX + 1;
        apr_file_t *file;
        apr_status_t rv;
        char errbuf[120];

        if (path == NULL || arg[5] == '\0') {
            return apr_psprintf(cmd->pool, "%s: invalid file path \"%s\"", name,
                                arg + 5);
        }
        rv = apr_file_open(&file, path, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT,
                           cmd->temp_pool);
        if (rv == APR_SUCCESS) {
            rv = apr_file_read_full(file, buf, len, &len);
            apr_file_close(file);
            if (rv == APR_EOF) {
                rv = APR_SUCCESS;
            }
        }
        if (rv != APR_SUCCESS) {
            return apr_psprintf(cmd->pool, "%s: cannot read \"%s\": %s", name, path,
                                apr_strerror(rv, errbuf, sizeof(errbuf)));
        }
        if (len > SK_SECRET_FILE_MAX) {
            return apr_psprintf(cmd->pool, "%s: \"%s\" is larger than %d bytes",
                                name, path, SK_SECRET_FILE_MAX);
        }
        /* The secret is the first line, so an editor's final newline is harmless. */
        if (memchr(buf, '\n', len) != NULL) {
            len = (apr_size_t)((char *)memchr(buf, '\n', len) - buf);
        }
        if (len > 0 && buf[len - 1] == '\r') {
            len--;
        }
        if (memchr(buf, '\0', len) != NULL) {
            memset(buf, 0, sizeof(buf));
            return apr_psprintf(cmd->pool, "%s: the first line of \"%s\" contains a "
                                "NUL byte", name, path);
        }
        if (len == 0) {
            return apr_psprintf(cmd->pool, "%s: the first line of \"%s\" is empty",
                                name, path);
        }
        *secret = apr_pstrmemdup(cmd->pool, buf, len);
        memset(buf, 0, sizeof(buf));
        return NULL;
    }

    if (arg[0] == '\0') {
        return apr_psprintf(cmd->pool, "%s: the value is empty", name);
    }
    *secret = arg;
    return NULL;
}

/* Returns whether text is a decimal TCP port from 1 to 65535. */
static int is_port(const char *text)
{
    char *end;
    apr_int64_t port;

    if (text == NULL || !apr_isdigit(text[0])) {
        return 0;
    }
    port = apr_strtoi64(text, &end, 10);
    return *end == '\0' && port >= 1 && port <= 65535;
}

/*
 * Parses an absolute URL of any scheme with a host, an optional valid port, and no
 * userinfo, query or fragment. Returns 0 when arg is anything else.
 */
static int parse_url(cmd_parms *cmd, const char *arg, apr_uri_t *uri)
{
    return check_token(cmd, arg) == NULL
           && apr_uri_parse(cmd->pool, arg, uri) == APR_SUCCESS
           && uri->scheme != NULL
           && strncmp(arg + strlen(uri->scheme), "://", 3) == 0
           && uri->hostname != NULL && uri->hostname[0] != '\0'
           && (uri->port_str == NULL || is_port(uri->port_str))
           && uri->user == NULL && uri->password == NULL
           && uri->query == NULL && uri->fragment == NULL;
}

static const char *set_issuer(cmd_parms *cmd, void *dconf, const char *arg)
{
    sk_server_config_t *sc = server_config(cmd);
    apr_uri_t uri;

    if (!parse_url(cmd, arg, &uri)) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not an absolute URL without "
                            "query or fragment, such as https://example.scalekit.dev",
                            cmd->cmd->name, arg);
    }
    if (strcasecmp(uri.scheme, "https") != 0
        && !(strcasecmp(uri.scheme, "http") == 0 && is_loopback_host(uri.hostname))) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" must use https (plain http is "
                            "accepted only for a provider on the loopback address)",
                            cmd->cmd->name, arg);
    }
    sc->issuer = arg;
    return NULL;
}

static const char *set_client_id(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = check_token(cmd, arg);

    if (err == NULL) {
        server_config(cmd)->client_id = arg;
    }
    return err;
}

static const char *set_client_secret(cmd_parms *cmd, void *dconf, const char *arg)
{
    return resolve_secret(cmd, arg, &server_config(cmd)->client_secret);
}

static const char *set_session_secret(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *secret = NULL;
    const char *err = resolve_secret(cmd, arg, &secret);

    if (err != NULL) {
        return err;
    }
    if (strlen(secret) < SK_SESSION_SECRET_MIN) {
        return apr_psprintf(cmd->pool, "%s: the secret has %d bytes, at least %d "
                            "are required (openssl rand -base64 48 makes one)",
                            cmd->cmd->name, (int)strlen(secret),
                            SK_SESSION_SECRET_MIN);
    }
    server_config(cmd)->session_secret = secret;
    return NULL;
}

static const char *set_redirect_uri(cmd_parms *cmd, void *dconf, const char *arg)
{
    sk_server_config_t *sc = server_config(cmd);
    const char *invalid = apr_psprintf(cmd->pool, "%s: \"%s\" is not a path such as "
                                       "/scalekit/callback or an absolute http(s) "
                                       "URL with a host and a path, without "
                                       "userinfo, query or fragment",
                                       cmd->cmd->name, arg);
    apr_uri_t uri;

    if (check_token(cmd, arg) != NULL || strchr(arg, '?') || strchr(arg, '#')
        || strchr(arg, '\\') || strchr(arg, '%')) {
        return invalid;
    }
    if (arg[0] == '/') {
        if (arg[1] == '/') {
            return invalid;
        }
        sc->redirect_uri = arg;
        sc->redirect_path = arg;
        return NULL;
    }
    if (!parse_url(cmd, arg, &uri) || uri.path == NULL || uri.path[0] != '/'
        || uri.path[1] == '/'
        || (strcasecmp(uri.scheme, "https") != 0
            && strcasecmp(uri.scheme, "http") != 0)) {
        return invalid;
    }
    sc->redirect_uri = arg;
    sc->redirect_path = uri.path;
    return NULL;
}

/* Checks an endpoint path: absolute, no query, fragment, escapes or backslashes. */
static const char *check_endpoint_path(cmd_parms *cmd, const char *arg)
{
    const char *c;

    for (c = arg; *c; c++) {
        if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '?' || *c == '#'
            || *c == '%' || *c == '\\') {
            break;
        }
    }
    if (arg[0] != '/' || arg[1] == '/' || *c != '\0') {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a path such as "
                            "/scalekit/logout", cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *set_logout_uri(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = check_endpoint_path(cmd, arg);

    if (err == NULL) {
        server_config(cmd)->logout_path = arg;
    }
    return err;
}

static const char *set_login_uri(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = check_endpoint_path(cmd, arg);

    if (err == NULL) {
        server_config(cmd)->login_path = arg;
    }
    return err;
}

static const char *add_allowed_host(cmd_parms *cmd, void *dconf, const char *arg)
{
    sk_server_config_t *sc = server_config(cmd);
    const char *host_end, *c;
    int valid = 1;

    /* host, host:port, [IPv6] or [IPv6]:port */
    if (arg[0] == '[') {
        host_end = strchr(arg, ']');
        valid = host_end != NULL && host_end > arg + 1;
        for (c = arg + 1; valid && c < host_end; c++) {
            valid = apr_isxdigit(*c) || *c == ':' || *c == '.';
        }
        host_end = host_end ? host_end + 1 : arg;
    }
    else {
        host_end = arg + strcspn(arg, ":");
        valid = host_end > arg;
        for (c = arg; valid && c < host_end; c++) {
            valid = apr_isalnum(*c) || *c == '.' || *c == '-';
        }
    }
    if (valid && *host_end != '\0') {
        valid = *host_end == ':' && is_port(host_end + 1);
    }
    if (!valid) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a host name, host:port, "
                            "[IPv6 address] or [IPv6 address]:port",
                            cmd->cmd->name, arg);
    }
    if (sc->allowed_hosts == NULL) {
        sc->allowed_hosts = apr_array_make(cmd->pool, 4, sizeof(const char *));
    }
    else {
        /* Drop the NULL that ends the list before adding to it. */
        sc->allowed_hosts->nelts--;
    }
    APR_ARRAY_PUSH(sc->allowed_hosts, const char *) = arg;
    APR_ARRAY_PUSH(sc->allowed_hosts, const char *) = NULL;
    return NULL;
}

static const char *set_scopes(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *c;
    char *last, *scope, *copy = apr_pstrdup(cmd->temp_pool, arg);
    int has_openid = 0;

    for (c = arg; *c; c++) {
        if (apr_iscntrl(*c) || *c == '"' || *c == '\\') {
            return apr_psprintf(cmd->pool, "%s: \"%s\" contains a character not "
                                "allowed in a scope", cmd->cmd->name, arg);
        }
    }
    for (scope = apr_strtok(copy, " ", &last); scope;
         scope = apr_strtok(NULL, " ", &last)) {
        has_openid |= strcmp(scope, "openid") == 0;
    }
    if (!has_openid) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" must include the scope openid",
                            cmd->cmd->name, arg);
    }
    server_config(cmd)->scopes = arg;
    return NULL;
}

static const char *set_ssl_verify(cmd_parms *cmd, void *dconf, int flag)
{
    server_config(cmd)->ssl_verify = flag;
    return NULL;
}

/* Parses a whole decimal number of seconds within [min, max]. */
static const char *parse_seconds(cmd_parms *cmd, const char *arg, int min, int max,
                                 int *out)
{
    char *end;
    apr_int64_t value;

    errno = 0;
    value = apr_strtoi64(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || !apr_isdigit(arg[0])
        || value < min || value > max) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a whole number of seconds "
                            "from %d to %d", cmd->cmd->name, arg, min, max);
    }
    *out = (int)value;
    return NULL;
}

static const char *set_clock_skew(cmd_parms *cmd, void *dconf, const char *arg)
{
    return parse_seconds(cmd, arg, 0, 3600, &server_config(cmd)->clock_skew);
}

static const char *set_http_timeout(cmd_parms *cmd, void *dconf, const char *arg)
{
    return parse_seconds(cmd, arg, 1, 300, &server_config(cmd)->http_timeout);
}

static const char *set_session_max_age(cmd_parms *cmd, void *dconf, const char *arg)
{
    return parse_seconds(cmd, arg, 60, 31536000,
                         &server_config(cmd)->session_max_age);
}

static const char *set_discovery_ttl(cmd_parms *cmd, void *dconf, const char *arg)
{
    return parse_seconds(cmd, arg, 60, 604800, &server_config(cmd)->discovery_ttl);
}

static const char *set_jwks_ttl(cmd_parms *cmd, void *dconf, const char *arg)
{
    return parse_seconds(cmd, arg, 60, 604800, &server_config(cmd)->jwks_ttl);
}

static const char *set_session_store(cmd_parms *cmd, void *dconf, const char *arg)
{
    sk_server_config_t *sc = server_config(cmd);

    if (strcasecmp(arg, "cookie") == 0) {
        sc->session_store = SK_SESSION_STORE_COOKIE;
    }
    else if (strcasecmp(arg, "cache") == 0) {
        sc->session_store = SK_SESSION_STORE_CACHE;
    }
    else {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not one of cookie, cache",
                            cmd->cmd->name, arg);
    }
    return NULL;
}

/*
 * Checks a socache specification such as shmcb, shmcb:/path(size),
 * memcache:host:port or redis:host:port. The provider module must be loaded before
 * this line; the instance itself is made in post_config.
 */
static const char *set_cache_spec(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    sk_cache_t *probe;

    if (err != NULL) {
        return err;
    }
    err = sk_cache_create(cmd->temp_pool, cmd->temp_pool, arg, NULL,
                          SK_MUTEX_PROVIDER_CACHE, &probe);
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    *(const char **)((char *)&sk_globals + (apr_size_t)cmd->info) =
        apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *set_inactivity_timeout(cmd_parms *cmd, void *dconf,
                                          const char *arg)
{
    return parse_seconds(cmd, arg, 0, 31536000,
                         &server_config(cmd)->inactivity_timeout);
}

static const char *set_userinfo(cmd_parms *cmd, void *dconf, int flag)
{
    server_config(cmd)->userinfo = flag;
    return NULL;
}

static const char *set_token_auth(cmd_parms *cmd, void *dconf, const char *arg)
{
    sk_server_config_t *sc = server_config(cmd);

    if (strcmp(arg, "client_secret_post") == 0) {
        sc->token_auth_basic = 0;
    }
    else if (strcmp(arg, "client_secret_basic") == 0) {
        sc->token_auth_basic = 1;
    }
    else {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not one of "
                            "client_secret_post, client_secret_basic",
                            cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *set_allow_login_hint(cmd_parms *cmd, void *dconf, int flag)
{
    ((sk_dir_config_t *)dconf)->allow_login_hint = flag;
    return NULL;
}

static const char *set_pass_claims_as(cmd_parms *cmd, void *dconf, const char *arg)
{
    sk_dir_config_t *dc = dconf;

    if (strcasecmp(arg, "env") == 0) {
        dc->pass_claims_as = SK_CLAIMS_ENV;
    }
    else if (strcasecmp(arg, "headers") == 0) {
        dc->pass_claims_as = SK_CLAIMS_HEADERS;
    }
    else if (strcasecmp(arg, "both") == 0) {
        dc->pass_claims_as = SK_CLAIMS_ENV | SK_CLAIMS_HEADERS;
    }
    else if (strcasecmp(arg, "none") == 0) {
        dc->pass_claims_as = 0;
    }
    else {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not one of env, headers, "
                            "both, none", cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *set_unauth_action(cmd_parms *cmd, void *dconf, const char *arg)
{
    sk_dir_config_t *dc = dconf;

    if (strcasecmp(arg, "auth") == 0) {
        dc->unauth_action = SK_UNAUTH_AUTH;
    }
    else if (strcmp(arg, "401") == 0) {
        dc->unauth_action = SK_UNAUTH_401;
    }
    else if (strcmp(arg, "403") == 0) {
        dc->unauth_action = SK_UNAUTH_403;
    }
    else if (strcasecmp(arg, "pass") == 0) {
        dc->unauth_action = SK_UNAUTH_PASS;
    }
    else {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not one of auth, 401, 403, "
                            "pass", cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *set_cookie_name(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *c;

    for (c = arg; *c; c++) {
        if (!apr_isalnum(*c) && *c != '_' && *c != '-') {
            break;
        }
    }
    if (arg[0] == '\0' || *c != '\0' || strlen(arg) > 64) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a cookie name of 1 to 64 "
                            "letters, digits, '_' or '-'", cmd->cmd->name, arg);
    }
    if (strncmp(arg, SK_STATE_COOKIE_PREFIX, strlen(SK_STATE_COOKIE_PREFIX)) == 0) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" starts with %s, the prefix of the "
                            "cookies of logins in progress", cmd->cmd->name, arg,
                            SK_STATE_COOKIE_PREFIX);
    }
    server_config(cmd)->cookie_name = arg;
    return NULL;
}

static const char *set_ca_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_finfo_t finfo;

    BIO *bio;
    X509 *cert = NULL;

    if (path == NULL
        || apr_stat(&finfo, path, APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS
        || finfo.filetype != APR_REG) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a readable file",
                            cmd->cmd->name, arg);
    }

    /* A file without a certificate would pass here and fail every login later. */
    bio = BIO_new_file(path, "r");
    if (bio != NULL) {
        cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    ERR_clear_error();
    if (cert == NULL) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" contains no PEM certificate",
                            cmd->cmd->name, arg);
    }
    X509_free(cert);
    server_config(cmd)->ca_file = path;
    return NULL;
}

/* Stores a token-like directory value (routing parameters, claim names). */
static const char *set_dir_token(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = check_token(cmd, arg);

    if (err == NULL && strlen(arg) > 256) {
        err = apr_psprintf(cmd->pool, "%s: the value is longer than 256 characters",
                           cmd->cmd->name);
    }
    if (err == NULL) {
        *(const char **)((char *)dconf + (apr_size_t)cmd->info) = arg;
    }
    return err;
}

static const char *set_login_hint(cmd_parms *cmd, void *dconf, const char *arg)
{
    if (sk_checked_login_hint(arg) == NULL) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not an email address",
                            cmd->cmd->name, arg);
    }
    ((sk_dir_config_t *)dconf)->login_hint = arg;
    return NULL;
}

const command_rec sk_directives[] = {
    AP_INIT_TAKE1("ScalekitIssuer", set_issuer, NULL, RSRC_CONF,
                  "Scalekit environment URL, e.g. https://acme.scalekit.dev"),
    AP_INIT_TAKE1("ScalekitClientID", set_client_id, NULL, RSRC_CONF,
                  "Client ID of the Scalekit application (skc_...)"),
    AP_INIT_TAKE1("ScalekitClientSecret", set_client_secret, NULL, RSRC_CONF,
                  "Client secret: the value, env:NAME or file:/path"),
    AP_INIT_TAKE1("ScalekitRedirectURI", set_redirect_uri, NULL, RSRC_CONF,
                  "Callback path or absolute URL (default /scalekit/callback)"),
    AP_INIT_TAKE1("ScalekitSessionSecret", set_session_secret, NULL, RSRC_CONF,
                  "Key material for session cookies, 32 bytes or more: the value, "
                  "env:NAME or file:/path"),
    AP_INIT_TAKE1("ScalekitLogoutURI", set_logout_uri, NULL, RSRC_CONF,
                  "Path that logs out (default /scalekit/logout)"),
    AP_INIT_ITERATE("ScalekitLogoutRedirectAllowed", add_allowed_host, NULL,
                    RSRC_CONF, "Hosts (host or host:port) that return_to may name "
                    "besides this server"),
    AP_INIT_RAW_ARGS("ScalekitScopes", set_scopes, NULL, RSRC_CONF,
                     "Space-separated scopes (default openid email profile)"),
    AP_INIT_FLAG("ScalekitSSLVerify", set_ssl_verify, NULL, RSRC_CONF,
                 "Verify the provider's TLS certificate (default On)"),
    AP_INIT_TAKE1("ScalekitClockSkew", set_clock_skew, NULL, RSRC_CONF,
                  "Seconds of clock difference allowed on token times (default 60)"),
    AP_INIT_TAKE1("ScalekitHTTPTimeout", set_http_timeout, NULL, RSRC_CONF,
                  "Seconds allowed for a request to the provider (default 10)"),
    AP_INIT_TAKE1("ScalekitSessionMaxAge", set_session_max_age, NULL, RSRC_CONF,
                  "Seconds a session lasts after login (default 28800)"),
    AP_INIT_TAKE1("ScalekitCookieName", set_cookie_name, NULL, RSRC_CONF,
                  "Name of the session cookie (default scalekit_session)"),
    AP_INIT_TAKE1("ScalekitCAFile", set_ca_file, NULL, RSRC_CONF,
                  "PEM file of CA certificates to verify the provider against"),
    AP_INIT_TAKE1("ScalekitDiscoveryTTL", set_discovery_ttl, NULL, RSRC_CONF,
                  "Seconds the discovery document is cached (default 86400)"),
    AP_INIT_TAKE1("ScalekitJWKSTTL", set_jwks_ttl, NULL, RSRC_CONF,
                  "Seconds the JWKS is cached (default 3600)"),
    AP_INIT_TAKE1("ScalekitSessionStore", set_session_store, NULL, RSRC_CONF,
                  "Where sessions live: cookie (sealed in the cookie, the default) "
                  "or cache (in ScalekitSessionCache)"),
    AP_INIT_TAKE1("ScalekitCache", set_cache_spec,
                  (void *)APR_OFFSETOF(sk_globals_t, provider_cache_spec), RSRC_CONF,
                  "Socache for discovery and JWKS: shmcb (default), "
                  "shmcb:/path(bytes), memcache:host:port, redis:host:port"),
    AP_INIT_TAKE1("ScalekitSessionCache", set_cache_spec,
                  (void *)APR_OFFSETOF(sk_globals_t, session_cache_spec), RSRC_CONF,
                  "Socache for ScalekitSessionStore cache: shmcb (default), "
                  "memcache:host:port, redis:host:port"),
    AP_INIT_TAKE1("ScalekitSessionInactivityTimeout", set_inactivity_timeout, NULL,
                  RSRC_CONF, "Seconds without a request after which a session "
                  "ends, 0 for none (default 3600)"),
    AP_INIT_FLAG("ScalekitUserInfo", set_userinfo, NULL, RSRC_CONF,
                 "Merge the userinfo endpoint's claims at login (default Off)"),
    AP_INIT_TAKE1("ScalekitTokenEndpointAuth", set_token_auth, NULL, RSRC_CONF,
                  "client_secret_post (default) or client_secret_basic"),
    AP_INIT_TAKE1("ScalekitLoginURI", set_login_uri, NULL, RSRC_CONF,
                  "Path that starts a login from a link (default /scalekit/login)"),
    AP_INIT_FLAG("ScalekitAllowLoginHint", set_allow_login_hint, NULL, OR_AUTHCFG,
                 "Pass the visitor's login_hint query parameter to Scalekit "
                 "(default Off)"),
    AP_INIT_TAKE1("ScalekitPassClaimsAs", set_pass_claims_as, NULL, OR_AUTHCFG,
                  "Where claims go: env (default), headers, both or none"),
    AP_INIT_TAKE1("ScalekitUnauthAction", set_unauth_action, NULL, OR_AUTHCFG,
                  "Without a session: auth (default), 401, 403 or pass"),
    AP_INIT_TAKE1("ScalekitRemoteUserClaim", set_dir_token,
                  (void *)APR_OFFSETOF(sk_dir_config_t, remote_user_claim),
                  OR_AUTHCFG, "Claim that becomes REMOTE_USER (default sub)"),
    AP_INIT_TAKE1("ScalekitConnectionID", set_dir_token,
                  (void *)APR_OFFSETOF(sk_dir_config_t, connection_id),
                  OR_AUTHCFG, "Scalekit connection to log in with (conn_...)"),
    AP_INIT_TAKE1("ScalekitOrganizationID", set_dir_token,
                  (void *)APR_OFFSETOF(sk_dir_config_t, organization_id),
                  OR_AUTHCFG, "Scalekit organization to log in with (org_...)"),
    AP_INIT_TAKE1("ScalekitDomain", set_dir_token,
                  (void *)APR_OFFSETOF(sk_dir_config_t, domain),
                  OR_AUTHCFG, "Email domain whose organization logs in"),
    AP_INIT_TAKE1("ScalekitLoginHint", set_login_hint, NULL, OR_AUTHCFG,
                  "Email address sent as login_hint"),
    { NULL }
};

int sk_config_is_client(const sk_server_config_t *sc)
{
    return sc->issuer != NULL || sc->client_id != NULL || sc->client_secret != NULL
           || sc->session_secret != NULL;
}

/*
 * Checks that a server with any client setting has all of them, applies the
 * defaults and derives the cookie keys. Logs the problem and returns APR_EINVAL
 * when the server cannot work, so httpd refuses to start.
 */
apr_status_t sk_config_finish(apr_pool_t *p, server_rec *s, sk_server_config_t *sc)
{
    const char *missing = NULL;
    unsigned char key[SK_KEY_LEN];

    if (sc->issuer == NULL) {
        missing = "ScalekitIssuer";
    }
    else if (sc->client_id == NULL) {
        missing = "ScalekitClientID";
    }
    else if (sc->client_secret == NULL) {
        missing = "ScalekitClientSecret";
    }
    else if (sc->session_secret == NULL) {
        missing = "ScalekitSessionSecret";
    }
    if (missing != NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "Scalekit is configured for server %s (%s:%d) but %s is "
                     "missing; set it in that server or virtual host",
                     s->server_hostname ? s->server_hostname : "(unnamed)",
                     s->defn_name ? s->defn_name : "main config",
                     s->defn_line_number, missing);
        return APR_EINVAL;
    }

    if (sc->ssl_verify == 0) {
        apr_uri_t uri;

        if (apr_uri_parse(p, sc->issuer, &uri) != APR_SUCCESS
            || !is_loopback_host(uri.hostname)) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "ScalekitSSLVerify Off is "
                         "accepted only for a provider on the loopback address, "
                         "not for %s; use ScalekitCAFile for a private CA",
                         sc->issuer);
            return APR_EINVAL;
        }
    }

    if (sc->redirect_uri == NULL) {
        sc->redirect_uri = SK_DEFAULT_REDIRECT_PATH;
        sc->redirect_path = SK_DEFAULT_REDIRECT_PATH;
    }
    if (sc->login_path == NULL) {
        sc->login_path = SK_DEFAULT_LOGIN_PATH;
    }
    if (sc->inactivity_timeout == SK_UNSET) {
        sc->inactivity_timeout = SK_DEFAULT_INACTIVITY_TIMEOUT;
    }
    if (sc->userinfo == SK_UNSET) {
        sc->userinfo = 0;
    }
    if (sc->token_auth_basic == SK_UNSET) {
        sc->token_auth_basic = 0;
    }
    if (sc->logout_path == NULL) {
        sc->logout_path = SK_DEFAULT_LOGOUT_PATH;
    }
    if (sc->scopes == NULL) {
        sc->scopes = SK_DEFAULT_SCOPES;
    }
    if (sc->cookie_name == NULL) {
        sc->cookie_name = SK_DEFAULT_COOKIE_NAME;
    }
    if (sc->ssl_verify == SK_UNSET) {
        sc->ssl_verify = 1;
    }
    if (sc->clock_skew == SK_UNSET) {
        sc->clock_skew = SK_DEFAULT_CLOCK_SKEW;
    }
    if (sc->http_timeout == SK_UNSET) {
        sc->http_timeout = SK_DEFAULT_HTTP_TIMEOUT;
    }
    if (sc->session_max_age == SK_UNSET) {
        sc->session_max_age = SK_DEFAULT_SESSION_MAX_AGE;
    }
    if (sc->discovery_ttl == SK_UNSET) {
        sc->discovery_ttl = SK_DEFAULT_DISCOVERY_TTL;
    }
    if (sc->jwks_ttl == SK_UNSET) {
        sc->jwks_ttl = SK_DEFAULT_JWKS_TTL;
    }
    if (sc->session_store == SK_SESSION_STORE_UNSET) {
        sc->session_store = SK_SESSION_STORE_COOKIE;
    }

    /* The quick handler serves these paths in a fixed order: a shared path would
     * silently hide one endpoint. */
    if (strcmp(sc->redirect_path, sc->logout_path) == 0
        || strcmp(sc->redirect_path, sc->login_path) == 0
        || strcmp(sc->login_path, sc->logout_path) == 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "ScalekitRedirectURI (%s), "
                     "ScalekitLoginURI (%s) and ScalekitLogoutURI (%s) of server %s "
                     "must be three different paths", sc->redirect_path,
                     sc->login_path, sc->logout_path,
                     s->server_hostname ? s->server_hostname : "(unnamed)");
        return APR_EINVAL;
    }

    /* Separate keys for the two cookie kinds, derived once here and not per request. */
    if (sk_hkdf_sha256((const unsigned char *)sc->session_secret,
                       strlen(sc->session_secret), "mod_auth_scalekit",
                       "session cookie v1", key, sizeof(key)) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memcpy(sc->session_key, key, sizeof(key));
    if (sk_hkdf_sha256((const unsigned char *)sc->session_secret,
                       strlen(sc->session_secret), "mod_auth_scalekit",
                       "state cookie v1", key, sizeof(key)) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memcpy(sc->state_key, key, sizeof(key));
    memset(key, 0, sizeof(key));

    sc->ready = 1;
    return APR_SUCCESS;
}
