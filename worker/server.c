/* server: routes, the one-click unsubscribe (RFC 8058), health and metrics. One database
 * connection per request that needs one, bounded by http.database_timeout, with no session
 * state, so the endpoints work through a transaction pooler like the sweep. */
#include "server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "db.h"
#include "enc.h"
#include "httpd.h"
#include "links.h"
#include "log.h"
#include "metrics.h"
#include "page.h"
#include "report.h"
#include "store.h"
#include "store_member.h"
#include "sweep.h"
#include "token.h"

#define ONE_CLICK_FIELD "List-Unsubscribe"
#define ONE_CLICK_VALUE "One-Click"
#define BODY_MAX 4096
#define HEADER_MAX (16 * 1024)

struct server {
    const struct settings *s;
    struct links *links;
    struct httpd *httpd;
    enum policy_consent basis;
    char unsubscribe_path[512]; /* "" when no unsubscribe URL is configured */
    double start_time_s;

    pthread_mutex_t lock; /* guards everything below */
    bool have_sweep;
    struct sweep_summary last;
    bool last_success;
    double last_ended_s;
    double last_success_s;
    long unsubscribes[REPORT_UNSUB_COUNT];
};

/* The path of url (scheme://authority/path?query#fragment), %XX decoded as the server
 * decodes request paths; "/" when it has none. */
static void
url_path(const char *url, char *out, size_t outsz)
{
    const char *p = strstr(url, "://");
    p = p != NULL ? p + 3 : url;
    p += strcspn(p, "/?#");
    if (*p != '/') {
        snprintf(out, outsz, "/");
        return;
    }
    size_t n = enc_percent_decode(p, strcspn(p, "?#"), out, outsz - 1);
    out[n < outsz - 1 ? n : outsz - 1] = '\0';
}

/* A connection for one request: no retries; connecting and the statements share one
 * budget of http.database_timeout (libpq counts its connect timeout in whole seconds, at
 * least 2, so a budget under 2 s can be exceeded by the connect alone). */
static struct db *
connect_bounded(const struct server *srv, struct err *e)
{
    long long t = srv->s->http_database_timeout_ms;
    long long started = clock_mono_ms();
    struct db_options opt = {
        .conninfo = srv->s->database_url,
        .conninfo_key = SETTINGS_DATABASE_URL_KEY,
        .conninfo_env = SETTINGS_DATABASE_URL_ENV,
        .connect_retries = 0,
        .application_name = "recovery-worker-http",
        .connect_timeout_s = (int)((t + 999) / 1000),
    };
    struct db *db = db_connect(&opt, e);
    if (db != NULL) {
        long long left = t - (clock_mono_ms() - started);
        db_set_timeout(db, (long)(left > 100 ? left : 100));
    }
    return db;
}

static void
count_unsubscribe(struct server *srv, enum report_unsubscribe r)
{
    pthread_mutex_lock(&srv->lock);
    srv->unsubscribes[r]++;
    pthread_mutex_unlock(&srv->lock);
}

/* ---- responses ------------------------------------------------------------------------ */

static void
plain(struct httpd_response *res, int status, const char *text)
{
    res->status = status;
    res->content_type = "text/plain; charset=utf-8";
    buf_puts(&res->body, text);
    httpd_response_header(res, "Cache-Control", "no-store");
    httpd_response_header(res, "X-Content-Type-Options", "nosniff");
}

/* The pages carry the token in their URL and form: no caching, no referrer, no framing, no
 * script, nothing loaded from anywhere. */
static void
html(struct httpd_response *res, int status)
{
    res->status = status;
    res->content_type = "text/html; charset=utf-8";
    httpd_response_header(res, "Cache-Control", "no-store");
    httpd_response_header(res, "Referrer-Policy", "no-referrer");
    httpd_response_header(res, "X-Content-Type-Options", "nosniff");
    httpd_response_header(res, "X-Robots-Tag", "noindex, nofollow");
    httpd_response_header(res, "Content-Security-Policy",
                          "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                          "frame-ancestors 'none'; base-uri 'none'");
}

static void
not_allowed(struct httpd_response *res, const char *allow)
{
    plain(res, 405, "method not allowed\n");
    httpd_response_header(res, "Allow", allow);
}

/* ---- one-click unsubscribe ---------------------------------------------------------- */

/* Whether the client asked for a page (a browser submitting the form) rather than being a
 * mail provider's one-click POST. */
static bool
wants_html(const struct httpd_request *req)
{
    const char *accept = httpd_header(req, "Accept");
    return accept != NULL && strstr(accept, "text/html") != NULL;
}

/* The token of the request, verified. Answers the request and returns false when there is
 * no usable one. */
static bool
check_token(struct server *srv, const struct httpd_request *req, struct httpd_response *res,
            bool page, struct links_claims *c)
{
    const char *token = httpd_query(req, "token");
    enum links_status st = LINKS_MALFORMED;
    struct err e;
    err_clear(&e);
    if (token != NULL && token[0] != '\0' && strlen(token) <= TOKEN_MAX)
        st = links_verify_unsubscribe(srv->links, token, time(NULL), c, &e);
    if (st == LINKS_OK)
        return true;
    /* the reason, never the token: a valid-looking one is still someone's link */
    log_info("unsubscribe link refused",
             json_pack("{s:s,s:s}", "method", req->method, "reason", links_status_str(st)));
    int status = st == LINKS_EXPIRED ? 410 : 400;
    if (strcmp(req->method, "POST") == 0)
        count_unsubscribe(srv, st == LINKS_EXPIRED ? REPORT_UNSUB_EXPIRED : REPORT_UNSUB_INVALID);
    if (!page) {
        plain(res, status,
              st == LINKS_EXPIRED ? "unsubscribe link expired\n" : "invalid unsubscribe link\n");
        return false;
    }
    html(res, status);
    if (st == LINKS_EXPIRED)
        page_problem(&res->body, "This unsubscribe link has expired",
                     "Links in our emails stop working after a while. Use the link in a more "
                     "recent email, or change which emails you receive in your account's "
                     "notification settings.");
    else
        page_problem(&res->body, "This unsubscribe link does not work",
                     "The link may have been cut short or changed. Open it again from the "
                     "email, or change which emails you receive in your account's "
                     "notification settings.");
    return false;
}

/* RFC 8058: the body is List-Unsubscribe=One-Click, form-encoded (urlencoded or
 * multipart). Without a form Content-Type, the bare text is accepted too. */
static bool
is_one_click(const struct httpd_request *req)
{
    char v[32];
    if (httpd_form_field(req, ONE_CLICK_FIELD, v, sizeof v))
        return strcmp(v, ONE_CLICK_VALUE) == 0;
    const char *type = httpd_header(req, "Content-Type");
    if (type != NULL && type[0] != '\0')
        return false;
    size_t n = req->body_len;
    while (n > 0 && (req->body[n - 1] == '\n' || req->body[n - 1] == '\r'))
        n--;
    static const char want[] = ONE_CLICK_FIELD "=" ONE_CLICK_VALUE;
    return n == sizeof want - 1 && memcmp(req->body, want, n) == 0;
}

static void
unsubscribe_get(struct server *srv, const struct httpd_request *req, struct httpd_response *res)
{
    struct links_claims c;
    if (!check_token(srv, req, res, true, &c))
        return;
    html(res, 200);
    page_unsubscribe_form(&res->body, httpd_query(req, "token"), srv->basis);
}

static void
unsubscribe_post(struct server *srv, const struct httpd_request *req, struct httpd_response *res)
{
    bool page = wants_html(req);
    struct links_claims c;
    if (!check_token(srv, req, res, page, &c))
        return;
    if (!is_one_click(req)) {
        count_unsubscribe(srv, REPORT_UNSUB_INVALID);
        if (page) {
            html(res, 400);
            page_problem(&res->body, "Nothing was changed",
                         "The request was incomplete. Open the link from the email again and "
                         "press the button.");
        } else {
            plain(res, 400, "the body must be List-Unsubscribe=One-Click (RFC 8058)\n");
        }
        return;
    }

    struct policy_opt_out off = policy_unsubscribe(srv->basis);
    json_t *prefs = json_array();
    if (off.order_updates)
        json_array_append_new(prefs, json_string("order_updates"));
    if (off.marketing_messages)
        json_array_append_new(prefs, json_string("marketing_messages"));
    json_t *payload =
        json_pack("{s:s,s:s,s:o,s:s,s:s,s:I}", "action", "unsubscribe", "via",
                  page ? "confirmation_page" : "one_click", "preferences", prefs, "linkStage",
                  c.stage, "keyId", c.kid, "linkIssuedAt", (json_int_t)c.issued_at);
    char *text = payload != NULL ? json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(payload);

    struct err e;
    err_clear(&e);
    enum store_opt_out_result result = STORE_OPT_OUT_NO_MEMBER;
    int rc = text != NULL ? ERR_OK : err_set(&e, ERR_INTERNAL, "out of memory");
    struct db *db = rc == ERR_OK ? connect_bounded(srv, &e) : NULL;
    if (rc == ERR_OK && db == NULL)
        rc = (int)e.code;
    if (rc == ERR_OK) {
        struct store_opt_out o = {
            .order_id = c.order_id,
            .orchestration_id = c.orchestration_id,
            .order_updates = off.order_updates,
            .marketing_messages = off.marketing_messages,
            .payload = text,
        };
        rc = store_member_opt_out(db, &o, &result, &e);
    }
    db_close(db);
    free(text);

    if (rc != ERR_OK && rc != ERR_DATA) {
        count_unsubscribe(srv, REPORT_UNSUB_ERROR);
        log_error("unsubscribe failed",
                  json_pack("{s:s,s:s,s:s}", "orchestration_id", c.orchestration_id, "error", e.msg,
                            "kind", err_str(e.code)));
        if (page) {
            html(res, 503);
            page_problem(&res->body, "Please try again in a minute",
                         "We could not save your choice just now. Nothing was changed.");
        } else {
            plain(res, 503, "temporarily unavailable; nothing was changed\n");
        }
        httpd_response_header(res, "Retry-After", "60");
        return;
    }
    if (rc == ERR_DATA)
        result = STORE_OPT_OUT_NO_MEMBER; /* ids that are not ours to act on */
    static const enum report_unsubscribe counted[] = {
        [STORE_OPT_OUT_DONE] = REPORT_UNSUB_DONE,
        [STORE_OPT_OUT_ALREADY] = REPORT_UNSUB_ALREADY,
        [STORE_OPT_OUT_NO_MEMBER] = REPORT_UNSUB_NO_MEMBER,
    };
    static const char *const names[] = {
        [STORE_OPT_OUT_DONE] = "unsubscribed",
        [STORE_OPT_OUT_ALREADY] = "already_unsubscribed",
        [STORE_OPT_OUT_NO_MEMBER] = "no_member",
    };
    count_unsubscribe(srv, counted[result]);
    log_info("unsubscribe",
             json_pack("{s:s,s:s,s:s,s:s}", "order_id", c.order_id, "orchestration_id",
                       c.orchestration_id, "result", names[result], "via",
                       page ? "confirmation_page" : "one_click"));
    if (result == STORE_OPT_OUT_NO_MEMBER) {
        if (page) {
            html(res, 404);
            page_problem(&res->body, "Nothing to unsubscribe",
                         "This link no longer belongs to an account. No emails will be sent "
                         "for it.");
        } else {
            plain(res, 404, "no member for this link\n");
        }
        return;
    }
    if (page) {
        html(res, 200);
        page_unsubscribed(&res->body, srv->basis, result == STORE_OPT_OUT_ALREADY);
    } else {
        plain(res, 200, "unsubscribed\n");
    }
}

/* ---- health and metrics ----------------------------------------------------------- */

static void
healthz(struct server *srv, struct httpd_response *res)
{
    struct err e;
    err_clear(&e);
    struct db *db = connect_bounded(srv, &e);
    int rc = db != NULL ? db_ping(db, &e) : (int)e.code;
    db_close(db);
    if (rc == ERR_OK) {
        plain(res, 200, "ok\n");
        return;
    }
    log_warn("health check failed", json_pack("{s:s}", "error", e.msg));
    plain(res, 503, "database unavailable\n");
}

static void
metrics(struct server *srv, struct httpd_response *res)
{
    struct report_live live;
    memset(&live, 0, sizeof live);
    live.due = -1;
    live.oldest_due_age_s = -1;
    struct err e;
    err_clear(&e);
    struct db *db = connect_bounded(srv, &e);
    if (db != NULL && db_ping(db, &e) == ERR_OK) {
        live.database_up = true;
        if (store_due_stats(db, &live.due, &live.oldest_due_age_s, &e) != ERR_OK) {
            live.due = -1;
            live.oldest_due_age_s = -1;
        }
    }
    db_close(db);

    struct sweep_summary last;
    long unsub[REPORT_UNSUB_COUNT];
    pthread_mutex_lock(&srv->lock);
    last = srv->last;
    live.last = srv->have_sweep ? &last : NULL;
    live.last_success = srv->last_success;
    live.last_ended_s = srv->last_ended_s;
    live.last_success_s = srv->last_success_s;
    memcpy(unsub, srv->unsubscribes, sizeof unsub);
    pthread_mutex_unlock(&srv->lock);
    live.unsubscribes = unsub;
    live.start_time_s = srv->start_time_s;

    struct metrics m;
    metrics_init(&m);
    if (!report_live_metrics(&m, &live)) {
        log_error("metrics cannot be built", json_pack("{s:s}", "error", metrics_error(&m)));
        plain(res, 500, "metrics unavailable\n");
    } else {
        res->status = 200;
        res->content_type = METRICS_CONTENT_TYPE;
        buf_puts(&res->body, metrics_text(&m));
        httpd_response_header(res, "Cache-Control", "no-store");
    }
    metrics_free(&m);
}

/* ---- routing ------------------------------------------------------------------------ */

static bool
is(const char *method, const char *want)
{
    return strcmp(method, want) == 0;
}

static void
handle(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
    struct server *srv = arg;
    bool get = is(req->method, "GET") || is(req->method, "HEAD");
    if (strcmp(req->path, "/healthz") == 0) {
        if (get)
            healthz(srv, res);
        else
            not_allowed(res, "GET, HEAD");
    } else if (strcmp(req->path, "/metrics") == 0) {
        if (get)
            metrics(srv, res);
        else
            not_allowed(res, "GET, HEAD");
    } else if (srv->unsubscribe_path[0] != '\0' && strcmp(req->path, srv->unsubscribe_path) == 0) {
        if (get)
            unsubscribe_get(srv, req, res);
        else if (is(req->method, "POST"))
            unsubscribe_post(srv, req, res);
        else
            not_allowed(res, "GET, HEAD, POST");
    } else {
        plain(res, 404, "not found\n");
    }
    log_debug("http request", json_pack("{s:s,s:i}", "method", req->method, "status", res->status));
}

struct server *
server_start(const struct settings *s, struct err *e)
{
    struct server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        err_set(e, ERR_INTERNAL, "out of memory");
        return NULL;
    }
    srv->s = s;
    srv->basis = s->consent;
    srv->start_time_s = clock_wall_s();
    srv->last_success_s = -1;
    pthread_mutex_init(&srv->lock, NULL);
    if (s->unsubscribe_url != NULL)
        url_path(s->unsubscribe_url, srv->unsubscribe_path, sizeof srv->unsubscribe_path);
    srv->links = links_new(s, e);
    if (srv->links == NULL) {
        server_stop(srv);
        return NULL;
    }
    const char *listen = s->http_listen != NULL ? s->http_listen : SETTINGS_HTTP_LISTEN_DEFAULT;
    struct httpd_options o = {
        .listen = listen,
        .max_connections = (unsigned)s->http_max_connections,
        .idle_timeout_s = (unsigned)((s->http_idle_timeout_ms + 999) / 1000),
        .max_header_bytes = HEADER_MAX,
        .max_body_bytes = BODY_MAX,
        .threads = 4,
    };
    srv->httpd = httpd_start(&o, handle, srv, e);
    if (srv->httpd == NULL) {
        server_stop(srv);
        return NULL;
    }
    log_info("http server listening",
             json_pack("{s:s,s:i,s:s?}", "listen", listen, "port", httpd_port(srv->httpd),
                       "unsubscribe_path",
                       srv->unsubscribe_path[0] != '\0' ? srv->unsubscribe_path : NULL));
    return srv;
}

int
server_port(const struct server *srv)
{
    return httpd_port(srv->httpd);
}

void
server_record_sweep(struct server *srv, const struct sweep_summary *sum, int rc)
{
    if (srv == NULL)
        return;
    double now = clock_wall_s();
    pthread_mutex_lock(&srv->lock);
    srv->have_sweep = true;
    srv->last = *sum;
    srv->last_success = rc == ERR_OK;
    srv->last_ended_s = now;
    if (rc == ERR_OK)
        srv->last_success_s = now;
    pthread_mutex_unlock(&srv->lock);
}

void
server_stop(struct server *srv)
{
    if (srv == NULL)
        return;
    httpd_stop(srv->httpd);
    links_free(srv->links);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
