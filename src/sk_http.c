/*
 * HTTP requests to the identity provider with libcurl's easy interface.
 */
#include <string.h>

#include <apr_strings.h>
#include <curl/curl.h>

#include "sk_http.h"

typedef struct {
    apr_pool_t *pool;
    char *data;
    apr_size_t len;
    apr_size_t cap;
    int too_big;
} body_buffer_t;

apr_status_t sk_http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? APR_SUCCESS
                                                             : APR_EGENERAL;
}

static size_t collect_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    body_buffer_t *buf = userdata;
    apr_size_t n = size * nmemb;

    if (buf->len + n > SK_HTTP_MAX_BODY) {
        buf->too_big = 1;
        return 0;               /* makes curl fail with CURLE_WRITE_ERROR */
    }
    if (buf->len + n + 1 > buf->cap) {
        apr_size_t cap = buf->cap ? buf->cap : 8192;
        char *grown;

        while (cap < buf->len + n + 1) {
            cap *= 2;
        }
        grown = apr_palloc(buf->pool, cap);
        if (buf->len > 0) {
            memcpy(grown, buf->data, buf->len);
        }
        buf->data = grown;
        buf->cap = cap;
    }
    memcpy(buf->data + buf->len, ptr, n);
    buf->len += n;
    return n;
}

static apr_status_t cleanup_curl(void *data)
{
    curl_easy_cleanup(data);
    return APR_SUCCESS;
}

static apr_status_t cleanup_slist(void *data)
{
    curl_slist_free_all(data);
    return APR_SUCCESS;
}

apr_status_t sk_http_request(apr_pool_t *p, const char *url, const char *form,
                             const sk_http_options_t *options,
                             sk_http_response_t **response, const char **err)
{
    body_buffer_t buf = { p, NULL, 0, 0, 0 };
    struct curl_slist *headers = NULL;
    sk_http_response_t *resp;
    char *content_type = NULL;
    char *errbuf = apr_pcalloc(p, CURL_ERROR_SIZE);
    CURLcode rc;
    CURL *curl;

    curl = curl_easy_init();
    if (curl == NULL) {
        *err = "curl_easy_init failed";
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(p, curl, cleanup_curl, apr_pool_cleanup_null);

    headers = curl_slist_append(headers, "Accept: application/json");
    if (options->bearer_token != NULL) {
        headers = curl_slist_append(headers,
                                    apr_pstrcat(p, "Authorization: Bearer ",
                                                options->bearer_token, NULL));
    }
    apr_pool_cleanup_register(p, headers, cleanup_slist, apr_pool_cleanup_null);

    /* RFC 6749, section 2.3.1: both parts form-urlencoded before Basic encoding. */
    if (options->basic_user != NULL) {
        char *user = curl_easy_escape(curl, options->basic_user, 0);
        char *password = curl_easy_escape(curl, options->basic_password, 0);

        curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(curl, CURLOPT_USERNAME, user);
        curl_easy_setopt(curl, CURLOPT_PASSWORD, password);
        curl_free(user);
        curl_free(password);
    }

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, options->timeout);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, options->timeout);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, options->verify_tls ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, options->verify_tls ? 2L : 0L);
    if (options->ca_file != NULL) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, options->ca_file);
    }
    if (options->user_agent != NULL) {
        curl_easy_setopt(curl, CURLOPT_USERAGENT, options->user_agent);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE,
                     (curl_off_t)SK_HTTP_MAX_BODY);
    if (form != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(form));
    }

    rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        if (buf.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
            *err = apr_psprintf(p, "response from %s is larger than %d bytes", url,
                                SK_HTTP_MAX_BODY);
            return APR_EGENERAL;
        }
        *err = apr_psprintf(p, "request to %s failed: %s", url,
                            errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return rc == CURLE_OPERATION_TIMEDOUT ? APR_TIMEUP : APR_EGENERAL;
    }

    resp = apr_pcalloc(p, sizeof(*resp));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &content_type);
    resp->content_type = content_type ? apr_pstrdup(p, content_type) : NULL;
    resp->body = buf.data ? buf.data : apr_pstrdup(p, "");
    resp->body[buf.len] = '\0';
    resp->len = buf.len;
    *response = resp;
    return APR_SUCCESS;
}
