/*
 * The request that fuzz_seal hands to src/session.c, and the log counter of the
 * stand-ins in glue_stubs.c.
 */
#ifndef GLUE_STUBS_H
#define GLUE_STUBS_H

#include <httpd.h>

extern int fuzz_log_calls;

/* Returns a request_rec with a pool, empty header tables and every log level on. */
request_rec *fuzz_make_request(apr_pool_t *p);

#endif /* GLUE_STUBS_H */
