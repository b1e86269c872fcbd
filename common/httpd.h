/* httpd: a small embedded HTTP/1.1 server (libmicrohttpd behind a neutral interface): a pool
 * of threads calls one handler per complete request, with hard limits on connections,
 * header and body size and idle time. No HTTP is parsed here by hand. */
#ifndef COMMON_HTTPD_H
#define COMMON_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

struct httpd;

/* One complete request, valid for the duration of the handler call. */
struct httpd_request {
    const char *method; /* as sent: "GET", "POST", ... */
    const char *path;   /* the URL's path, without the query string (MHD decodes %XX) */
    const char *body;   /* the request body (NUL-terminated), "" when none */
    size_t body_len;
    void *impl; /* the library's connection; only for the functions below */
};

/* The first value of a query-string argument (decoded), or NULL. Borrowed. */
const char *httpd_query(const struct httpd_request *r, const char *name);

/* A request header (case-insensitive name), or NULL. Borrowed. */
const char *httpd_header(const struct httpd_request *r, const char *name);

/* The value of field name in an application/x-www-form-urlencoded or multipart/form-data
 * body, copied into out. False when the body is not such a form, has no such field, or its
 * value does not fit outsz - 1 bytes. */
bool httpd_form_field(const struct httpd_request *r, const char *name, char *out, size_t outsz);

#define HTTPD_HEADERS_MAX 10

/* What the handler answers. status 0 means 500. Header names and values are borrowed and
 * must outlive the handler call (string literals, or strings owned by the handler's arg). */
struct httpd_response {
    int status;
    const char *content_type;
    struct buf body; /* initialised by httpd (limit 1 MiB), freed by httpd */
    struct {
        const char *name;
        const char *value;
    } headers[HTTPD_HEADERS_MAX];
    size_t nheaders;
};

/* Adds a header to the response; ignored past HTTPD_HEADERS_MAX. */
void httpd_response_header(struct httpd_response *res, const char *name, const char *value);

/* Called on one of the pool's threads, concurrently with other calls: arg must be safe to
 * share. Never called for requests the limits refused (those get 413, 414 or 431). */
typedef void (*httpd_handler)(void *arg, const struct httpd_request *req,
                              struct httpd_response *res);

struct httpd_options {
    const char *listen;       /* "host:port", host an IPv4 or IPv6 ([::1]) literal or name;
                               * port 0 picks a free one (httpd_port tells which) */
    unsigned max_connections; /* open connections at once; more are refused */
    unsigned idle_timeout_s;  /* a connection silent this long is closed */
    size_t max_header_bytes;  /* request line + headers of one request */
    size_t max_body_bytes;    /* a larger body gets 413 and the connection is closed */
    unsigned threads;         /* handler threads */
};

/* Parses "host:port" (host non-empty, IPv6 in brackets, port 0..65535) into host (at most
 * hostsz - 1 characters) and port. False when malformed. */
bool httpd_parse_listen(const char *listen, char *host, size_t hostsz, int *port);

/* Starts listening and serving (new; stop with httpd_stop). handler and arg are borrowed
 * until httpd_stop. Signals are blocked on the server's threads, so SIGTERM and friends
 * reach the caller's. ERR_CONFIG when listen is malformed or does not resolve,
 * ERR_UNAVAILABLE when the address cannot be bound (in use, not local). */
struct httpd *httpd_start(const struct httpd_options *o, httpd_handler handler, void *arg,
                          struct err *e);

/* The port actually bound. */
int httpd_port(const struct httpd *d);

/* Stops accepting, waits for the requests in hand, frees. NULL-safe. */
void httpd_stop(struct httpd *d);

#endif
