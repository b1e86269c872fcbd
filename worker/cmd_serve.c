/* cmd_serve: `serve`: the HTTP endpoints alone (one-click unsubscribe, /healthz, /metrics)
 * until SIGTERM or SIGINT. `run` serves the same beside its sweeps when http.listen is set. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "log.h"
#include "server.h"

int
cmd_serve(const struct settings *s, int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0) {
            puts("usage: recovery-worker serve\n\n"
                 "Serves HTTP on http.listen (HTTP_LISTEN, default " SETTINGS_HTTP_LISTEN_DEFAULT
                 ") until SIGTERM or SIGINT:\n"
                 "  <path of UNSUBSCRIBE_URL>  POST List-Unsubscribe=One-Click (RFC 8058) with\n"
                 "                             ?token=... turns the member's preference off;\n"
                 "                             GET shows a page with a button that does so\n"
                 "  /healthz                   200 when the database answers, else 503\n"
                 "  /metrics                   Prometheus text exposition");
            return 0;
        }
        fprintf(stderr, "usage: recovery-worker serve\n");
        return err_exit_status(ERR_USAGE);
    }
    log_set_context("command", "serve");
    cmd_catch_stop_signals();
    struct err e;
    err_clear(&e);
    struct server *srv = server_start(s, &e);
    if (srv == NULL)
        return cmd_fail("serve cannot start", &e);
    while (!cmd_stop_requested) {
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    log_info("http server stopping", NULL);
    server_stop(srv);
    return 0;
}
