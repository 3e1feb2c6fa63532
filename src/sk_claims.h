/*
 * Mapping of token claims to environment variables and headers. No httpd header here.
 */
#ifndef SK_CLAIMS_H
#define SK_CLAIMS_H

#include <apr_pools.h>
#include <cJSON.h>

/* Maximum length of an exported claim value, in bytes. Longer values are cut at a
 * UTF-8 character boundary. */
#define SK_CLAIM_VALUE_MAX (16 * 1024)

/*
 * Returns prefix followed by the claim name with every byte outside [A-Za-z0-9_]
 * replaced by '_'.
 */
char *sk_claim_var_name(apr_pool_t *p, const char *prefix, const char *claim);

/*
 * Formats a claim value as text: strings as they are, numbers and booleans as JSON text,
 * arrays whose elements are all strings joined with ",", other arrays and objects as
 * compact JSON, null as "". C0 and C1 control characters (CR, LF and DEL among them)
 * and each byte of invalid UTF-8 become '?', so the value can go into an environment
 * variable or a header.
 */
char *sk_claim_value_text(apr_pool_t *p, const cJSON *value);

#endif /* SK_CLAIMS_H */
