/* server: the worker's HTTP endpoints, on common/httpd:
 *   <path of UNSUBSCRIBE_URL>  POST with List-Unsubscribe=One-Click (RFC 8058) turns the
 *                              member's preference off; GET/HEAD show a page whose button
 *                              does that POST, and change nothing
 *   /healthz                   200 when the database answers SELECT 1 in time, else 503
 *   /metrics                   Prometheus text: the last sweep of this process (run), the
 *                              backlog, database_up, unsubscribe counters
 * The signed token is the only authority: nothing is written for a token that is forged,
 * expired or made for another purpose. */
#ifndef WORKER_SERVER_H
#define WORKER_SERVER_H

#include "err.h"
#include "settings.h"

struct server;
struct sweep_summary;

/* Starts serving on s->http_listen, or SETTINGS_HTTP_LISTEN_DEFAULT when it is NULL (new;
 * stop with server_stop). s is borrowed until then. Logs "http server listening" with the
 * address and the port bound. Errors as httpd_start's. */
struct server *server_start(const struct settings *s, struct err *e);

/* The port bound. */
int server_port(const struct server *srv);

/* Records a sweep of this process for /metrics (thread-safe). rc is its enum err_code. */
void server_record_sweep(struct server *srv, const struct sweep_summary *sum, int rc);

/* Stops serving (requests in hand finish) and frees. NULL-safe. */
void server_stop(struct server *srv);

#endif
