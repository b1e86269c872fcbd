/* report: what a sweep tells the outside world: gauges about the last sweep pushed to a
 * Pushgateway, and heartbeat pings on start, success and failure. Reporting never fails a
 * sweep: a push or ping that does not go through is logged at warn and forgotten. */
#ifndef WORKER_REPORT_H
#define WORKER_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"

struct settings;
struct sweep_summary;

/* Total time allowed for one push or one ping. A sweep reports at most three times (start
 * ping, push, end ping), so reporting adds at most 15 s to a run whose targets hang. */
#define REPORT_TIMEOUT_MS 5000L

/* Pings s->heartbeat_url + "/start" (POST, body {"run_id": ...}). Does nothing when no
 * heartbeat URL is configured. */
void report_sweep_start(const struct settings *s, const char *run_id);

/* After a sweep (not a dry run): pushes the last-sweep gauges to s->pushgateway_url (POST,
 * so families not pushed this time keep their value: last_success_timestamp survives a failed
 * sweep) and pings s->heartbeat_url (success when rc is ERR_OK, "/fail" otherwise; the body
 * is the summary line with run_id and status). rc is the sweep's enum err_code. due_after and
 * oldest_due_age_s describe the backlog after the sweep (store_due_stats); a negative value
 * leaves that gauge out, e.g. when the database could not be asked. Either target is skipped
 * when its URL is not configured. sum may be NULL when the sweep never started (all
 * counters 0). */
void report_sweep_end(const struct settings *s, const char *run_id, const struct sweep_summary *sum,
                      int rc, long due_after, double oldest_due_age_s);

/* Every family report_sweep_end may push, in push order (static). */
const struct metrics_family *report_families(size_t *n);

/* One row per outcome label of recovery_worker_last_sweep_orchestrations. */
struct report_outcome {
    const char *outcome; /* label value */
    size_t offset;       /* of its long counter in struct sweep_summary */
};

/* The outcome rows, in push order (static). */
const struct report_outcome *report_outcomes(size_t *n);

/* Builds the exposition text report_sweep_end pushes (pure: no clock, no I/O). now_s is the
 * wall-clock time in seconds since the epoch. Returns false when the builder failed
 * (metrics_error says why). */
bool report_sweep_metrics(struct metrics *m, const struct sweep_summary *sum, bool success,
                          double now_s, long due_after, double oldest_due_age_s);

/* What a long-lived process (`run` or `serve`) exposes on /metrics at scrape time. */
struct report_live {
    const struct sweep_summary *last; /* the last sweep of this process, or NULL (serve) */
    bool last_success;                /* it completed */
    double last_ended_s;              /* when it ended, seconds since the epoch */
    double last_success_s;            /* when the last completed one ended; < 0 never */
    bool database_up;                 /* the database answered just now */
    long due;                         /* backlog now; < 0 unknown (database down) */
    double oldest_due_age_s;          /* < 0 unknown */
    double start_time_s;              /* when this process started */
    const long *unsubscribes;         /* REPORT_UNSUB_COUNT counters, by result */
};

/* The results of one-click unsubscribe requests, the label values of their counter. */
enum report_unsubscribe {
    REPORT_UNSUB_DONE = 0,  /* a preference was turned off */
    REPORT_UNSUB_ALREADY,   /* nothing to change */
    REPORT_UNSUB_NO_MEMBER, /* the order is gone or has no member */
    REPORT_UNSUB_INVALID,   /* forged, malformed or wrong-purpose token, or a bad body */
    REPORT_UNSUB_EXPIRED,   /* an authentic token past its expiry */
    REPORT_UNSUB_ERROR,     /* the database failed */
    REPORT_UNSUB_COUNT
};

/* Builds the scrape text (pure): the last sweep's gauges when there was one (the same
 * families report_sweep_end pushes, last_success_timestamp kept across failed sweeps), the
 * backlog, database_up, the process start time and the unsubscribe counters. */
bool report_live_metrics(struct metrics *m, const struct report_live *l);

#endif
