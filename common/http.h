/* http: one HTTP request over libcurl with bounded time, verified TLS and a bounded response,
 * its failure classified where it is seen (unavailable / temporary / permanent). */
#ifndef COMMON_HTTP_H
#define COMMON_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

enum http_method { HTTP_GET = 0, HTTP_POST, HTTP_PUT, HTTP_DELETE };

#define HTTP_TIMEOUT_MS_DEFAULT 10000L
#define HTTP_CONNECT_TIMEOUT_MS_DEFAULT 5000L
#define HTTP_RESPONSE_MAX_DEFAULT ((size_t)16 * 1024)
/* Redirects are not followed unless asked for, and never more than this many. */
#define HTTP_REDIRECTS_MAX 3

/* Every string is borrowed for the duration of the call. TLS peer and host verification are
 * always on; only the trust store can be changed (ca_file). */
struct http_request {
    enum http_method method;
    const char *url;          /* http:// or https:// only */
    const char *body;         /* may be NULL (no body); sent as is */
    size_t body_len;          /* bytes of body */
    const char *content_type; /* of body; NULL means application/octet-stream */
    long timeout_ms;          /* whole request; 0 means HTTP_TIMEOUT_MS_DEFAULT */
    long connect_timeout_ms;  /* 0 means HTTP_CONNECT_TIMEOUT_MS_DEFAULT */
    int max_redirects;        /* 0: a 3xx is an answer; else followed up to HTTP_REDIRECTS_MAX */
    size_t max_response;      /* response body bytes kept; 0 means HTTP_RESPONSE_MAX_DEFAULT */
    const char *ca_file;      /* optional PEM bundle instead of the system store */
    const char *user_agent;   /* optional */
    /* When the path itself is a secret (a heartbeat check's UUID), error messages name only
     * scheme, host and port. */
    bool hide_path;
};

struct http_response {
    long status;     /* the final HTTP status, 0 when no response arrived */
    char *body;      /* owned, NUL-terminated ("" when empty), at most max_response bytes */
    size_t body_len; /* bytes in body */
    bool truncated;  /* the server sent more than max_response bytes */
};

/* Performs req. Returns ERR_OK for a 2xx answer. Otherwise e says what happened, naming
 * the method and the URL with credentials and query masked (log_mask_url):
 *   ERR_UNAVAILABLE  no answer: resolve, connect, TLS, send/receive failure or timeout;
 *   ERR_TEMPORARY    5xx, 408 or 429 (worth retrying later);
 *   ERR_PERMANENT    any other 4xx, or a 3xx not followed (fix the URL);
 *   ERR_CONFIG       a URL curl cannot use (malformed, not http/https);
 *   ERR_INTERNAL     out of memory or a curl failure that is a bug.
 * resp (may be NULL) receives the status and the start of the body whether or not the
 * call succeeds; free it with http_response_free. Thread-safe when http_global_init has been
 * called before any thread starts. */
/* Process-wide setup and teardown of the HTTP library; call once, before any thread. */
void http_global_init(void);
void http_global_cleanup(void);

int http_request(const struct http_request *req, struct http_response *resp, struct err *e);

/* Frees resp's body and zeroes it. NULL-safe. */
void http_response_free(struct http_response *resp);

/* The error code an HTTP status maps to (ERR_OK for 2xx), as http_request decides it. */
int http_status_err(long status);

#endif
