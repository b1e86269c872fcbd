/* httpd: libmicrohttpd (RFC 9110/9112 parsing, limits, threads) behind a small interface;
 * this file is the only one that includes it. */
#include "httpd.h"

#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "log.h"

#define RESPONSE_MAX ((size_t)1 << 20)

struct httpd {
    struct MHD_Daemon *daemon;
    httpd_handler handler;
    void *arg;
    size_t max_body;
    int port;
};

/* Per request: the body so far. */
struct request_state {
    struct buf body;
    size_t seen; /* body bytes received, kept or not */
    bool too_large;
    bool answered;
};

/* A body over the limit is still read (and dropped) up to this many times the limit, so
 * that the client, still sending, receives the 413 rather than a reset connection; past
 * that the 413 goes out at once and the connection is closed. */
#define DISCARD_FACTOR 64

const char *
httpd_query(const struct httpd_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->impl, MHD_GET_ARGUMENT_KIND, name);
}

const char *
httpd_header(const struct httpd_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->impl, MHD_HEADER_KIND, name);
}

struct form_lookup {
    const char *name;
    struct buf value;
    bool found;
};

static enum MHD_Result
form_iterator(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
              const char *content_type, const char *transfer_encoding, const char *data,
              uint64_t off, size_t size)
{
    (void)kind;
    (void)filename;
    (void)content_type;
    (void)transfer_encoding;
    (void)off;
    struct form_lookup *f = cls;
    if (key == NULL || strcmp(key, f->name) != 0)
        return MHD_YES;
    if (f->found && off == 0)
        return MHD_YES; /* the first occurrence wins */
    f->found = true;
    if (size > 0)
        buf_append(&f->value, data, size);
    return MHD_YES;
}

bool
httpd_form_field(const struct httpd_request *r, const char *name, char *out, size_t outsz)
{
    if (outsz == 0 || r->body_len == 0)
        return false;
    struct form_lookup f = {.name = name};
    buf_init(&f.value, outsz - 1);
    /* NULL unless the Content-Type is one of the two form encodings */
    struct MHD_PostProcessor *pp = MHD_create_post_processor(r->impl, 1024, form_iterator, &f);
    if (pp == NULL) {
        buf_free(&f.value);
        return false;
    }
    enum MHD_Result ok = MHD_post_process(pp, r->body, r->body_len);
    MHD_destroy_post_processor(pp);
    bool found = ok == MHD_YES && f.found && !f.value.failed;
    if (found)
        snprintf(out, outsz, "%s", buf_str(&f.value));
    buf_free(&f.value);
    return found;
}

void
httpd_response_header(struct httpd_response *res, const char *name, const char *value)
{
    if (res->nheaders >= HTTPD_HEADERS_MAX)
        return;
    res->headers[res->nheaders].name = name;
    res->headers[res->nheaders].value = value;
    res->nheaders++;
}

static enum MHD_Result
queue(struct MHD_Connection *conn, int status, const char *content_type, const char *body,
      size_t len, const struct httpd_response *res)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    if (content_type != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (size_t i = 0; res != NULL && i < res->nheaders; i++)
        if (res->headers[i].name != NULL && res->headers[i].value != NULL)
            MHD_add_response_header(r, res->headers[i].name, res->headers[i].value);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result
too_large(struct MHD_Connection *conn, struct request_state *st)
{
    static const char msg[] = "request body too large\n";
    st->answered = true;
    /* answered before the body is read: the library closes the connection afterwards */
    return queue(conn, MHD_HTTP_CONTENT_TOO_LARGE, "text/plain; charset=utf-8", msg, sizeof msg - 1,
                 NULL);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    struct httpd *d = cls;
    struct request_state *st = *con_cls;
    if (st == NULL) {
        /* headers are in; the body (if any) comes in the following calls */
        st = calloc(1, sizeof *st);
        if (st == NULL)
            return MHD_NO;
        buf_init(&st->body, d->max_body);
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        st->seen += *upload_size;
        if (!st->too_large && !buf_append(&st->body, upload, *upload_size))
            st->too_large = true;
        *upload_size = 0;
        if (st->too_large && !st->answered && st->seen / DISCARD_FACTOR > d->max_body)
            return too_large(conn, st);
        return MHD_YES;
    }
    if (st->answered)
        return MHD_YES;
    if (st->too_large)
        return too_large(conn, st);

    struct httpd_request req = {
        .method = method,
        .path = url,
        .body = buf_str(&st->body),
        .body_len = st->body.len,
        .impl = conn,
    };
    struct httpd_response res;
    memset(&res, 0, sizeof res);
    buf_init(&res.body, RESPONSE_MAX);
    d->handler(d->arg, &req, &res);
    st->answered = true;
    enum MHD_Result ok;
    if (res.body.failed || res.status < 100 || res.status > 599) {
        static const char msg[] = "internal error\n";
        ok = queue(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", msg,
                   sizeof msg - 1, NULL);
    } else {
        ok = queue(conn, res.status, res.content_type, buf_str(&res.body), res.body.len, &res);
    }
    buf_free(&res.body);
    return ok;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct request_state *st = *con_cls;
    if (st == NULL)
        return;
    buf_free(&st->body);
    free(st);
    *con_cls = NULL;
}

/* The library's own messages name the failure, not the request; they can still quote a
 * client's address, so they stay at debug. */
static void
on_library_message(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\r\n")] = '\0';
    log_debug("http library", json_pack("{s:s}", "detail", line));
}

bool
httpd_parse_listen(const char *listen, char *host, size_t hostsz, int *port)
{
    if (listen == NULL || hostsz == 0)
        return false;
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen)
        return false;
    const char *h = listen;
    size_t hlen = (size_t)(colon - listen);
    if (h[0] == '[') {
        if (hlen < 3 || h[hlen - 1] != ']')
            return false;
        h++;
        hlen -= 2;
    } else if (memchr(h, ':', hlen) != NULL) {
        return false; /* an IPv6 literal needs its brackets */
    }
    if (hlen == 0 || hlen >= hostsz)
        return false;
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5)
        return false;
    long v = 0;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535)
        return false;
    for (size_t i = 0; i < hlen; i++)
        if ((unsigned char)h[i] <= ' ' || h[i] == '[' || h[i] == ']' || h[i] == '/')
            return false;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)v;
    return true;
}

struct httpd *
httpd_start(const struct httpd_options *o, httpd_handler handler, void *arg, struct err *e)
{
    char host[256];
    int port = 0;
    if (!httpd_parse_listen(o->listen, host, sizeof host, &port)) {
        err_set(e, ERR_CONFIG, "http.listen: expected host:port, got \"%s\"",
                o->listen != NULL ? o->listen : "");
        return NULL;
    }
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, service, &hints, &ai);
    if (gai != 0 || ai == NULL) {
        err_set(e, ERR_CONFIG, "http.listen: cannot resolve \"%s\": %s", host, gai_strerror(gai));
        return NULL;
    }
    struct httpd *d = calloc(1, sizeof *d);
    if (d == NULL) {
        freeaddrinfo(ai);
        err_set(e, ERR_INTERNAL, "out of memory");
        return NULL;
    }
    d->handler = handler;
    d->arg = arg;
    d->max_body = o->max_body_bytes > 0 ? o->max_body_bytes : 4096;

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The threads the library starts inherit this mask: signals go to the caller's. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    d->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, d, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(o->threads > 0 ? o->threads : 2),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(o->max_connections > 0 ? o->max_connections : 64),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(o->idle_timeout_s > 0 ? o->idle_timeout_s : 10),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(o->max_header_bytes >= 4096 ? o->max_header_bytes : 4096),
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        (void *)NULL, MHD_OPTION_EXTERNAL_LOGGER, on_library_message, (void *)NULL, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    freeaddrinfo(ai);
    if (d->daemon == NULL) {
        free(d);
        err_set(e, ERR_UNAVAILABLE,
                "http.listen: cannot listen on %s (address in use or not "
                "local?)",
                o->listen);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d->daemon, MHD_DAEMON_INFO_BIND_PORT);
    d->port = info != NULL ? (int)info->port : port;
    return d;
}

int
httpd_port(const struct httpd *d)
{
    return d->port;
}

void
httpd_stop(struct httpd *d)
{
    if (d == NULL)
        return;
    MHD_stop_daemon(d->daemon);
    free(d);
}
