/* http: one request over libcurl's easy interface (RFC 9110 methods, http and https only). */
#include "http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h> /* the only file that includes it */

#include "buf.h"
#include "log.h"

/* How much of an error response goes into the message: enough for the Pushgateway's "pushed
 * metrics are invalid or inconsistent with existing metrics: ..." explanation. */
#define SNIPPET_MAX 200

struct capture {
    struct buf body;
    size_t max;
    bool truncated;
};

static size_t
on_write(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct capture *c = userdata;
    size_t n = size * nmemb;
    size_t room = c->max - c->body.len;
    size_t keep = n < room ? n : room;
    if (keep < n)
        c->truncated = true;
    /* The rest of an oversized body is read and dropped: the status is what matters, and
     * stopping early would turn a clear answer into a transfer error. */
    if (keep > 0 && !c->body.failed)
        buf_append(&c->body, data, keep);
    return n;
}

static const char *
method_name(enum http_method m)
{
    switch (m) {
    case HTTP_GET:
        return "GET";
    case HTTP_POST:
        return "POST";
    case HTTP_PUT:
        return "PUT";
    case HTTP_DELETE:
        return "DELETE";
    }
    return "?";
}

int
http_status_err(long status)
{
    if (status >= 200 && status <= 299)
        return ERR_OK;
    /* Request Timeout and Too Many Requests say "not now", not "never". */
    if (status == 408 || status == 429)
        return ERR_TEMPORARY;
    if (status >= 300 && status <= 499)
        return ERR_PERMANENT;
    return ERR_TEMPORARY;
}

static int
curl_err(CURLcode rc)
{
    switch (rc) {
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_FAILED_INIT:
        return ERR_INTERNAL;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_SSL_CACERT_BADFILE:
        return ERR_CONFIG;
    case CURLE_TOO_MANY_REDIRECTS:
        return ERR_PERMANENT;
    default:
        /* Resolve, connect, TLS handshake and verification, send, receive, timeout: the
         * other side could not be used this time. */
        return ERR_UNAVAILABLE;
    }
}

/* Where the authority starts (after "scheme://") and ends (at '/' or '?': as for
 * log_mask_url, a raw '#' in a password does not end it). */
static void
split_authority(const char *url, const char **start, const char **end)
{
    const char *p = strstr(url, "://");
    *start = p != NULL ? p + 3 : url;
    *end = *start + strcspn(*start, "/?");
}

/* Copies src into dst (of size dstsz) with every occurrence of secret (when long enough to
 * matter) replaced, and control characters turned into spaces, so a message built from
 * curl's error buffer or a response body never carries a password or breaks a log line. */
static void
scrub(char *dst, size_t dstsz, const char *src, size_t src_len, const char *secret,
      size_t secret_len)
{
    size_t o = 0;
    for (size_t i = 0; i < src_len && o + 1 < dstsz;) {
        if (secret_len >= 3 && src_len - i >= secret_len &&
            memcmp(src + i, secret, secret_len) == 0) {
            for (const char *m = "***"; *m != '\0' && o + 1 < dstsz; m++)
                dst[o++] = *m;
            i += secret_len;
            continue;
        }
        unsigned char ch = (unsigned char)src[i++];
        dst[o++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    dst[o] = '\0';
}

/* The password part of url's userinfo (or the whole userinfo when there is no ':'). */
static void
userinfo_secret(const char *url, const char **secret, size_t *len)
{
    const char *start, *end;
    split_authority(url, &start, &end);
    const char *at = NULL;
    for (const char *p = start; p < end; p++) {
        if (*p == '@')
            at = p;
    }
    *secret = NULL;
    *len = 0;
    if (at == NULL)
        return;
    const char *colon = memchr(start, ':', (size_t)(at - start));
    *secret = colon != NULL ? colon + 1 : start;
    *len = (size_t)(at - *secret);
}

static int
setup(CURL *h, const struct http_request *req, struct curl_slist **headers, struct capture *cap,
      char *errbuf)
{
    CURLcode rc = CURLE_OK;
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : HTTP_TIMEOUT_MS_DEFAULT;
    long connect =
        req->connect_timeout_ms > 0 ? req->connect_timeout_ms : HTTP_CONNECT_TIMEOUT_MS_DEFAULT;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(h, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    /* The worker sends from several threads; signals cannot carry timeouts there. */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, timeout);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, cap);
    if (req->max_redirects > 0) {
        long n = req->max_redirects < HTTP_REDIRECTS_MAX ? req->max_redirects : HTTP_REDIRECTS_MAX;
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, n);
        SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        /* Keep the method and body across 301/302/303 (a push must stay a push). */
        SET(CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
    }
    if (req->ca_file != NULL)
        SET(CURLOPT_CAINFO, req->ca_file);
    if (req->user_agent != NULL)
        SET(CURLOPT_USERAGENT, req->user_agent);

    if (req->method == HTTP_GET) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (req->method == HTTP_DELETE && req->body == NULL) {
        SET(CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
        /* POST and PUT always carry a body, if only an empty one, so Content-Length is sent. */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body != NULL ? req->body_len : 0));
        SET(CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
        if (req->method != HTTP_POST)
            SET(CURLOPT_CUSTOMREQUEST, method_name(req->method));
    }
#undef SET
    if (rc != CURLE_OK)
        return (int)rc;

    char ctype[256];
    if (req->body != NULL) {
        const char *t = req->content_type != NULL ? req->content_type : "application/octet-stream";
        if (strpbrk(t, "\r\n") != NULL)
            return (int)CURLE_BAD_FUNCTION_ARGUMENT;
        snprintf(ctype, sizeof ctype, "Content-Type: %s", t);
    } else {
        /* No body: do not let curl announce a form. */
        snprintf(ctype, sizeof ctype, "Content-Type:");
    }
    /* No "Expect: 100-continue" round trip: bodies here are small. */
    const char *lines[] = {ctype, "Expect:"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        struct curl_slist *next = curl_slist_append(*headers, lines[i]);
        if (next == NULL)
            return (int)CURLE_OUT_OF_MEMORY;
        *headers = next;
    }
    return (int)curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
}

int
http_request(const struct http_request *req, struct http_response *resp, struct err *e)
{
    if (resp != NULL)
        memset(resp, 0, sizeof *resp);
    if (req == NULL || req->url == NULL)
        return err_set(e, ERR_INTERNAL, "http request without a URL");
    if (req->method == HTTP_GET && req->body != NULL)
        return err_set(e, ERR_INTERNAL, "http GET with a body");

    const char *method = method_name(req->method);
    char *shown = log_mask_url(req->url, LOG_MASK_USERINFO | LOG_MASK_QUERY |
                                             (req->hide_path ? LOG_MASK_PATH : 0));
    if (shown == NULL)
        return err_set(e, ERR_INTERNAL, "http %s: out of memory", method);
    const char *secret;
    size_t secret_len;
    userinfo_secret(req->url, &secret, &secret_len);

    struct capture cap = {.max = req->max_response > 0 ? req->max_response
                                                       : HTTP_RESPONSE_MAX_DEFAULT};
    buf_init(&cap.body, cap.max);
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    int code = ERR_OK;
    long status = 0;

    CURL *h = curl_easy_init();
    if (h == NULL) {
        code = err_set(e, ERR_INTERNAL, "%s %s: curl_easy_init failed", method, shown);
        goto done;
    }
    CURLcode rc = (CURLcode)setup(h, req, &headers, &cap, errbuf);
    if (rc != CURLE_OK) {
        code =
            err_set(e, curl_err(rc) == ERR_CONFIG ? ERR_CONFIG : ERR_INTERNAL,
                    "%s %s: cannot set up the request: %s", method, shown, curl_easy_strerror(rc));
        goto done;
    }
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        char detail[CURL_ERROR_SIZE];
        const char *src = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
        scrub(detail, sizeof detail, src, strlen(src), secret, secret_len);
        code = err_set(e, curl_err(rc), "%s %s: %s (curl %d)", method, shown, detail, (int)rc);
        goto done;
    }
    code = http_status_err(status);
    if (code != ERR_OK) {
        char snippet[SNIPPET_MAX + 1];
        const char *body = buf_str(&cap.body);
        size_t n = cap.body.len < SNIPPET_MAX ? cap.body.len : SNIPPET_MAX;
        scrub(snippet, sizeof snippet, body, n, secret, secret_len);
        const char *what = (status >= 300 && status <= 399) ? "redirect not followed: " : "";
        err_set(e, code, "%s %s: HTTP %ld: %s%s", method, shown, status, what, snippet);
    }

done:
    if (resp != NULL) {
        resp->status = status;
        resp->truncated = cap.truncated;
        resp->body_len = cap.body.len;
        resp->body = cap.body.failed ? NULL : buf_steal(&cap.body);
        if (resp->body == NULL)
            resp->body_len = 0;
    }
    buf_free(&cap.body);
    curl_slist_free_all(headers);
    if (h != NULL)
        curl_easy_cleanup(h);
    free(shown);
    return code;
}

void
http_response_free(struct http_response *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

void
http_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void
http_global_cleanup(void)
{
    curl_global_cleanup();
}
