/*
 * Require providers on the claims of the session:
 *   Require scalekit-claim NAME:VALUE ...   exact value, any of the arguments
 *   Require scalekit-claim NAME~REGEX ...   regular expression (PCRE via ap_regex)
 *   Require scalekit-org ORG_ID ...         the oid claim is one of the arguments
 * NAME may use "." to reach into objects (address.country). An array claim matches
 * when any element does. They combine with RequireAll, RequireAny and Require not.
 */
#include <apr_strings.h>

#include <ap_provider.h>
#include <ap_regex.h>
#include <mod_auth.h>

#include "mod_auth_scalekit.h"
#include "sk_claims.h"

typedef struct {
    const char *name;
    const char *value;          /* exact match, or NULL */
    ap_regex_t *regex;          /* regular expression, or NULL */
} claim_rule_t;

static const char *parse_claim_rules(cmd_parms *cmd, const char *line,
                                     const void **parsed)
{
    apr_array_header_t *rules = apr_array_make(cmd->pool, 2, sizeof(claim_rule_t));
    const char *word;

    while (*(word = ap_getword_conf(cmd->temp_pool, &line)) != '\0') {
        claim_rule_t *rule = apr_array_push(rules);
        const char *colon = strchr(word, ':');
        const char *tilde = strchr(word, '~');
        const char *sep = colon && (!tilde || colon < tilde) ? colon : tilde;

        if (sep == NULL || sep == word) {
            return apr_psprintf(cmd->pool, "Require scalekit-claim: \"%s\" is not "
                                "NAME:VALUE or NAME~REGEX", word);
        }
        memset(rule, 0, sizeof(*rule));
        rule->name = apr_pstrmemdup(cmd->pool, word, (apr_size_t)(sep - word));
        if (*sep == ':') {
            rule->value = apr_pstrdup(cmd->pool, sep + 1);
        }
        else {
            rule->regex = ap_pregcomp(cmd->pool, sep + 1, AP_REG_EXTENDED);
            if (rule->regex == NULL) {
                return apr_psprintf(cmd->pool, "Require scalekit-claim: \"%s\" is not "
                                    "a valid regular expression", sep + 1);
            }
        }
    }
    if (rules->nelts == 0) {
        return "Require scalekit-claim needs at least one NAME:VALUE or NAME~REGEX";
    }
    *parsed = rules;
    return NULL;
}

static const char *parse_orgs(cmd_parms *cmd, const char *line, const void **parsed)
{
    apr_array_header_t *orgs = apr_array_make(cmd->pool, 2, sizeof(const char *));
    const char *word;

    while (*(word = ap_getword_conf(cmd->pool, &line)) != '\0') {
        APR_ARRAY_PUSH(orgs, const char *) = word;
    }
    if (orgs->nelts == 0) {
        return "Require scalekit-org needs at least one organization id (org_...)";
    }
    *parsed = orgs;
    return NULL;
}

/* Follows a dotted name through nested objects. */
static const cJSON *find_claim(apr_pool_t *p, const cJSON *claims, const char *name)
{
    char *copy = apr_pstrdup(p, name);
    char *last, *part;
    const cJSON *node = claims;

    /* A claim whose own name has a dot wins over the nested reading. */
    node = cJSON_GetObjectItemCaseSensitive(claims, name);
    if (node != NULL) {
        return node;
    }
    node = claims;
    for (part = apr_strtok(copy, ".", &last); part && node;
         part = apr_strtok(NULL, ".", &last)) {
        node = cJSON_IsObject(node) ? cJSON_GetObjectItemCaseSensitive(node, part)
                                    : NULL;
    }
    return node;
}

static int value_matches(apr_pool_t *p, const cJSON *value, const claim_rule_t *rule)
{
    const char *text;

    if (cJSON_IsArray(value)) {
        const cJSON *item;

        cJSON_ArrayForEach(item, value) {
            if (value_matches(p, item, rule)) {
                return 1;
            }
        }
        return 0;
    }
    if (value == NULL || cJSON_IsObject(value) || cJSON_IsNull(value)) {
        return 0;
    }
    text = sk_claim_value_text(p, value);
    if (rule->value != NULL) {
        return strcmp(text, rule->value) == 0;
    }
    return ap_regexec(rule->regex, text, 0, NULL, 0) == 0;
}

static authz_status check_claim(request_rec *r, const char *line,
                                const void *parsed)
{
    const apr_array_header_t *rules = parsed;
    sk_session_t *session;
    int i;

    if (r->user == NULL) {
        return AUTHZ_DENIED_NO_USER;
    }
    session = sk_request_session(r);
    if (session == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "Require scalekit-claim is used "
                      "for %s, which is not under AuthType Scalekit", r->uri);
        return AUTHZ_DENIED;
    }

    for (i = 0; i < rules->nelts; i++) {
        const claim_rule_t *rule = &APR_ARRAY_IDX(rules, i, claim_rule_t);

        if (value_matches(r->pool, find_claim(r->pool, session->claims, rule->name),
                          rule)) {
            return AUTHZ_GRANTED;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "Require scalekit-claim %s: no "
                  "match for user %s", line, ap_escape_logitem(r->pool, r->user));
    return AUTHZ_DENIED;
}

static authz_status check_org(request_rec *r, const char *line, const void *parsed)
{
    const apr_array_header_t *orgs = parsed;
    sk_session_t *session;
    const char *oid;
    int i;

    if (r->user == NULL) {
        return AUTHZ_DENIED_NO_USER;
    }
    session = sk_request_session(r);
    oid = session ? sk_json_string(session->claims, "oid") : NULL;
    for (i = 0; oid != NULL && i < orgs->nelts; i++) {
        if (strcmp(oid, APR_ARRAY_IDX(orgs, i, const char *)) == 0) {
            return AUTHZ_GRANTED;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "Require scalekit-org %s: user %s "
                  "is in organization %s", line, ap_escape_logitem(r->pool, r->user),
                  oid ? ap_escape_logitem(r->pool, oid) : "(none)");
    return AUTHZ_DENIED;
}

static const authz_provider claim_provider = { check_claim, parse_claim_rules };
static const authz_provider org_provider = { check_org, parse_orgs };

void sk_register_authz_providers(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "scalekit-claim",
                              AUTHZ_PROVIDER_VERSION, &claim_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "scalekit-org",
                              AUTHZ_PROVIDER_VERSION, &org_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
}
