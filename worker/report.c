/* report: last-sweep gauges to the Pushgateway and heartbeat pings, never failing the sweep. */
#include "report.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "settings.h"
#include "sweep.h"

/* Gauges, not counters: a batch job's pushed values replace the previous push, so each one
 * describes the last sweep rather than accumulating. The one table of names. */
enum {
    F_ORCHESTRATIONS,
    F_PROCESSED,
    F_DURATION,
    F_SUCCESS,
    F_TIMESTAMP,
    F_LAST_SUCCESS,
    F_DUE,
    F_OLDEST_DUE_AGE,
    F_THROTTLE_REPLIES,
    F_REFUSED_SESSIONS,
    F_SEND_RATE,
    F_QUOTA_EXHAUSTED,
    F_COUNT
};

/* Only on /metrics of a long-lived process. */
enum { L_DATABASE_UP, L_START_TIME, L_UNSUBSCRIBES, L_COUNT };

static const struct metrics_family live_families[L_COUNT] = {
    [L_DATABASE_UP] = {"recovery_worker_database_up", METRICS_GAUGE,
                       "1 if the database answered SELECT 1 at scrape time, else 0."},
    [L_START_TIME] = {"process_start_time_seconds", METRICS_GAUGE,
                      "Start time of the process since unix epoch in seconds."},
    [L_UNSUBSCRIBES] = {"recovery_worker_unsubscribe_requests_total", METRICS_COUNTER,
                        "One-click unsubscribe requests (POST) since the process started, by "
                        "result."},
};

static const char *const unsubscribe_results[REPORT_UNSUB_COUNT] = {
    [REPORT_UNSUB_DONE] = "unsubscribed",   [REPORT_UNSUB_ALREADY] = "already_unsubscribed",
    [REPORT_UNSUB_NO_MEMBER] = "no_member", [REPORT_UNSUB_INVALID] = "invalid",
    [REPORT_UNSUB_EXPIRED] = "expired",     [REPORT_UNSUB_ERROR] = "error",
};

static const struct metrics_family families[F_COUNT] = {
    [F_ORCHESTRATIONS] = {"recovery_worker_last_sweep_orchestrations", METRICS_GAUGE,
                          "Orchestrations the last sweep handled, by outcome."},
    [F_PROCESSED] = {"recovery_worker_last_sweep_processed", METRICS_GAUGE,
                     "Orchestrations the last sweep claimed and processed."},
    [F_DURATION] = {"recovery_worker_last_sweep_duration_seconds", METRICS_GAUGE,
                    "How long the last sweep took."},
    [F_SUCCESS] = {"recovery_worker_last_sweep_success", METRICS_GAUGE,
                   "1 if the last sweep completed, 0 if it was cut short."},
    [F_TIMESTAMP] = {"recovery_worker_last_sweep_timestamp_seconds", METRICS_GAUGE,
                     "When the last sweep ended, in seconds since the epoch."},
    [F_LAST_SUCCESS] = {"recovery_worker_last_success_timestamp_seconds", METRICS_GAUGE,
                        "When the last completed sweep ended, in seconds since the epoch."},
    [F_DUE] = {"recovery_worker_due_orchestrations", METRICS_GAUGE,
               "Orchestrations due for a recovery action after the last sweep."},
    [F_OLDEST_DUE_AGE] = {"recovery_worker_oldest_due_age_seconds", METRICS_GAUGE,
                          "How long the oldest due orchestration has been due, after the last "
                          "sweep."},
    [F_THROTTLE_REPLIES] = {"recovery_worker_last_sweep_throttle_replies", METRICS_GAUGE,
                            "Throttling replies (421, 454, 4.7.x rate) the relay sent during the "
                            "last sweep."},
    [F_REFUSED_SESSIONS] = {"recovery_worker_last_sweep_refused_sessions", METRICS_GAUGE,
                            "SMTP sessions the relay refused (connection cap, 4xx greeting) "
                            "during the last sweep."},
    [F_SEND_RATE] = {"recovery_worker_last_sweep_send_rate", METRICS_GAUGE,
                     "Messages per second the last sweep was allowed to send at its end "
                     "(smtp.max_rate, or less after throttling); 0 when unlimited."},
    [F_QUOTA_EXHAUSTED] = {"recovery_worker_last_sweep_quota_exhausted", METRICS_GAUGE,
                           "1 if the relay's daily quota ran out during the last sweep."},
};

#define OUTCOME(field, key, label) {label, offsetof(struct sweep_summary, field)},
static const struct report_outcome outcomes[] = {SWEEP_OUTCOMES(OUTCOME)};
#undef OUTCOME

const struct metrics_family *
report_families(size_t *n)
{
    *n = F_COUNT;
    return families;
}

const struct report_outcome *
report_outcomes(size_t *n)
{
    *n = sizeof outcomes / sizeof outcomes[0];
    return outcomes;
}

static long
counter(const struct sweep_summary *sum, size_t offset)
{
    long v;
    memcpy(&v, (const char *)sum + offset, sizeof v);
    return v;
}

/* The gauges of one sweep; last_success_s < 0 leaves that family out. */
static void
add_sweep(struct metrics *m, const struct sweep_summary *sum, bool success, double ended_s,
          double last_success_s)
{
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) {
        struct metrics_label l = {"outcome", outcomes[i].outcome};
        metrics_add(m, &families[F_ORCHESTRATIONS], &l, 1,
                    (double)counter(sum, outcomes[i].offset));
    }
    metrics_add(m, &families[F_PROCESSED], NULL, 0, (double)sum->processed);
    metrics_add(m, &families[F_DURATION], NULL, 0, (double)sum->duration_ms / 1000.0);
    metrics_add(m, &families[F_SUCCESS], NULL, 0, success ? 1.0 : 0.0);
    metrics_add(m, &families[F_TIMESTAMP], NULL, 0, ended_s);
    if (last_success_s >= 0)
        metrics_add(m, &families[F_LAST_SUCCESS], NULL, 0, last_success_s);
}

/* How the sweep was paced to the relay. */
static void
add_pace(struct metrics *m, const struct sweep_summary *sum)
{
    metrics_add(m, &families[F_THROTTLE_REPLIES], NULL, 0, (double)sum->throttle_replies);
    metrics_add(m, &families[F_REFUSED_SESSIONS], NULL, 0, (double)sum->refused_sessions);
    metrics_add(m, &families[F_SEND_RATE], NULL, 0, sum->send_rate);
    metrics_add(m, &families[F_QUOTA_EXHAUSTED], NULL, 0, sum->quota_exhausted ? 1.0 : 0.0);
}

static void
add_backlog(struct metrics *m, long due, double oldest_due_age_s)
{
    if (due >= 0)
        metrics_add(m, &families[F_DUE], NULL, 0, (double)due);
    if (oldest_due_age_s >= 0)
        metrics_add(m, &families[F_OLDEST_DUE_AGE], NULL, 0, oldest_due_age_s);
}

bool
report_sweep_metrics(struct metrics *m, const struct sweep_summary *sum, bool success, double now_s,
                     long due_after, double oldest_due_age_s)
{
    struct sweep_summary zero;
    if (sum == NULL) {
        memset(&zero, 0, sizeof zero);
        sum = &zero;
    }
    add_sweep(m, sum, success, now_s, success ? now_s : -1.0);
    add_backlog(m, due_after, oldest_due_age_s);
    add_pace(m, sum);
    return metrics_text(m) != NULL;
}

bool
report_live_metrics(struct metrics *m, const struct report_live *l)
{
    if (l->last != NULL)
        add_sweep(m, l->last, l->last_success, l->last_ended_s, l->last_success_s);
    add_backlog(m, l->due, l->oldest_due_age_s);
    if (l->last != NULL)
        add_pace(m, l->last);
    metrics_add(m, &live_families[L_DATABASE_UP], NULL, 0, l->database_up ? 1.0 : 0.0);
    metrics_add(m, &live_families[L_START_TIME], NULL, 0, l->start_time_s);
    for (size_t i = 0; i < REPORT_UNSUB_COUNT; i++) {
        struct metrics_label lb = {"result", unsubscribe_results[i]};
        metrics_add(m, &live_families[L_UNSUBSCRIBES], &lb, 1,
                    l->unsubscribes != NULL ? (double)l->unsubscribes[i] : 0.0);
    }
    return metrics_text(m) != NULL;
}

static bool
configured(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* settings.metrics_instance, else the host name (a pod's name under Kubernetes). */
static void
instance_name(const struct settings *s, char *out, size_t outsz)
{
    if (configured(s->metrics_instance)) {
        snprintf(out, outsz, "%s", s->metrics_instance);
        return;
    }
    char host[HOST_NAME_MAX + 1];
    if (gethostname(host, sizeof host) == 0 && memchr(host, '\0', sizeof host) != NULL &&
        host[0] != '\0')
        snprintf(out, outsz, "%s", host);
    else
        snprintf(out, outsz, "unknown");
}

static void
warn(const char *msg, const char *target, const struct err *e)
{
    log_warn(msg, json_pack("{s:s,s:s,s:s}", "target", target, "code", err_str(e->code), "error",
                            e->msg));
}

static void
ping(const struct settings *s, enum metrics_heartbeat_phase phase, json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    struct err e;
    err_clear(&e);
    if (metrics_heartbeat(s->heartbeat_url, phase, text, REPORT_TIMEOUT_MS, &e) != ERR_OK)
        warn("heartbeat ping failed", "heartbeat", &e);
    else
        log_debug("heartbeat pinged",
                  json_pack("{s:s}", "phase", metrics_heartbeat_phase_name(phase)));
    free(text);
}

void
report_sweep_start(const struct settings *s, const char *run_id)
{
    if (!configured(s->heartbeat_url))
        return;
    json_t *body = json_pack("{s:s}", "run_id", run_id != NULL ? run_id : "");
    ping(s, METRICS_HEARTBEAT_START, body);
    json_decref(body);
}

static void
push(const struct settings *s, const struct sweep_summary *sum, bool success, long due_after,
     double oldest_due_age_s)
{
    struct err e;
    err_clear(&e);
    struct metrics m;
    metrics_init(&m);
    if (!report_sweep_metrics(&m, sum, success, clock_wall_s(), due_after, oldest_due_age_s)) {
        err_set(&e, ERR_INTERNAL, "metrics: %s", metrics_error(&m));
        warn("metrics push failed", "pushgateway", &e);
        metrics_free(&m);
        return;
    }
    char instance[256];
    instance_name(s, instance, sizeof instance);
    const char *job = configured(s->metrics_job) ? s->metrics_job : "recovery-worker";
    struct metrics_label grouping[] = {{"instance", instance}};
    if (metrics_push(s->pushgateway_url, job, grouping, 1, metrics_text(&m), METRICS_POST,
                     REPORT_TIMEOUT_MS, &e) != ERR_OK)
        warn("metrics push failed", "pushgateway", &e);
    else
        log_debug("metrics pushed", json_pack("{s:s,s:s}", "job", job, "instance", instance));
    metrics_free(&m);
}

void
report_sweep_end(const struct settings *s, const char *run_id, const struct sweep_summary *sum,
                 int rc, long due_after, double oldest_due_age_s)
{
    bool success = rc == ERR_OK;
    if (configured(s->pushgateway_url))
        push(s, sum, success, due_after, oldest_due_age_s);
    if (!configured(s->heartbeat_url))
        return;
    json_t *body = sum != NULL ? sweep_summary_json(sum) : json_object();
    if (body != NULL) {
        json_object_set_new(body, "run_id", json_string(run_id != NULL ? run_id : ""));
        const char *status = "error";
        if (success)
            status = "ok";
        else if (rc > ERR_OK && rc <= ERR_INTERNAL)
            status = err_str((enum err_code)rc);
        json_object_set_new(body, "status", json_string(status));
    }
    ping(s, success ? METRICS_HEARTBEAT_SUCCESS : METRICS_HEARTBEAT_FAIL, body);
    json_decref(body);
}
