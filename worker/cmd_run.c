/* cmd_run: `run`, the long-lived loop: a sweep every schedule.interval (plus jitter);
 * SIGTERM/SIGINT stop claiming, let the batch in hand finish, and exit 0; SIGUSR1 sweeps
 * now. One sweep at a time. A sweep cut short by the database or the relay is retried with
 * backoff, as the storefront's scheduler retries this job. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "cmd.h"
#include "failpoint.h"
#include "log.h"
#include "server.h"
#include "sweep.h"

static volatile sig_atomic_t sweep_requested;

static void
on_wake(int sig)
{
    (void)sig;
    sweep_requested = 1;
}

/* Sleeps until ms have passed or a signal asked for a stop or a sweep. The slices bound
 * the delay when the signal lands on another thread. */
static void
wait_ms(long long ms)
{
    long long until = clock_mono_ms() + ms;
    while (!cmd_stop_requested && !sweep_requested) {
        long long left = until - clock_mono_ms();
        if (left <= 0)
            return;
        long long slice = left < 500 ? left : 500;
        struct timespec ts = {slice / 1000, (slice % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static long long
rand_upto(unsigned int *seed, long long max)
{
    if (max <= 0)
        return 0;
    double r = (double)rand_r(seed) / ((double)RAND_MAX + 1.0);
    return (long long)(r * (double)max);
}

/* One scheduled sweep with its retries. Returns ERR_OK, or the last error after the last
 * attempt (the loop goes on; the next interval tries again). */
static int
sweep_with_retries(const struct settings *s, const struct prompt_templates *t,
                   const struct sweep_options *opt, unsigned int *seed, struct server *srv)
{
    long long delay = s->schedule_retry_base_ms;
    for (int attempt = 1;; attempt++) {
        struct err e;
        err_clear(&e);
        struct sweep_summary sum;
        int rc = cmd_sweep_once(s, t, opt, &sum, &e);
        server_record_sweep(srv, &sum, rc);
        if (rc == ERR_OK)
            return ERR_OK;
        bool transient = rc == ERR_UNAVAILABLE || rc == ERR_TEMPORARY;
        if (!transient || attempt >= s->schedule_retry_attempts || cmd_stop_requested) {
            log_error("sweep failed", json_pack("{s:s,s:s,s:i}", "error", e.msg, "kind",
                                                err_str(e.code), "attempt", attempt));
            return rc;
        }
        long long wait = delay + rand_upto(seed, s->schedule_retry_jitter_ms);
        log_warn("sweep failed; retrying", json_pack("{s:s,s:i,s:I}", "error", e.msg, "attempt",
                                                     attempt, "retry_in_ms", (json_int_t)wait));
        sweep_requested = 0;
        wait_ms(wait);
        if (cmd_stop_requested)
            return rc;
        delay *= 2;
        if (delay > s->schedule_retry_max_ms)
            delay = s->schedule_retry_max_ms;
    }
}

int
cmd_run(const struct settings *s, int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0) {
            puts("usage: recovery-worker run\n\n"
                 "Sweeps every schedule.interval (plus up to schedule.jitter) until stopped.\n"
                 "SIGTERM or SIGINT: stop claiming, finish the batch in hand, exit 0.\n"
                 "SIGUSR1: sweep now. A sweep that fails on the database or the relay is\n"
                 "retried (schedule.retry_attempts, retry_base, retry_max, retry_jitter).\n"
                 "With http.listen (HTTP_LISTEN) set, also serves what `serve` does:\n"
                 "one-click unsubscribe, /healthz and /metrics (the last sweep's gauges).");
            return 0;
        }
        fprintf(stderr, "usage: recovery-worker run\n");
        return err_exit_status(ERR_USAGE);
    }
    failpoint_init(CMD_FAILPOINTS_ENV);
    log_set_context("command", "run");
    cmd_catch_stop_signals();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_wake;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL); /* no SA_RESTART: the signal cuts the wait short */

    struct err e;
    err_clear(&e);
    struct prompt_templates *t = NULL;
    if (cmd_sweep_setup(s, true, &t, &e) != ERR_OK)
        return cmd_fail("run cannot start", &e);

    /* The HTTP endpoints run on threads of their own beside the sweeps. */
    struct server *srv = NULL;
    if (s->http_listen != NULL) {
        srv = server_start(s, &e);
        if (srv == NULL) {
            cmd_sweep_teardown(true, t);
            return cmd_fail("run cannot start", &e);
        }
    }

    struct sweep_options opt = {.dry_run_out = stdout, .stop = &cmd_stop_requested};
    unsigned int seed = (unsigned int)(time(NULL) ^ ((unsigned int)getpid() << 16));
    log_info("run started",
             json_pack("{s:I,s:I}", "interval_ms", (json_int_t)s->schedule_interval_ms, "jitter_ms",
                       (json_int_t)s->schedule_jitter_ms));
    int last = ERR_OK;
    while (!cmd_stop_requested) {
        sweep_requested = 0;
        last = sweep_with_retries(s, t, &opt, &seed, srv);
        if (cmd_stop_requested)
            break;
        long long wait = s->schedule_interval_ms + rand_upto(&seed, s->schedule_jitter_ms);
        log_debug("next sweep scheduled", json_pack("{s:I}", "in_ms", (json_int_t)wait));
        wait_ms(wait);
    }
    log_info("run stopped", json_pack("{s:s}", "last_sweep", err_str((enum err_code)last)));
    server_stop(srv);
    cmd_sweep_teardown(true, t);
    return 0;
}
