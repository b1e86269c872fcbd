/* sweep: claim due orchestrations batch by batch, decide, send, finalise. The protocol:
 *   1. claim: one short statement leases a batch (FOR UPDATE SKIP LOCKED) and reads the
 *      context; no lock is held afterwards;
 *   2. decide each row (policy), render the prompts;
 *   3. write 'sending' ledger rows (re-checking the row is still waiting and still ours);
 *   4. send over SMTP, sessions in parallel, many messages per session;
 *   5. record each reply in the ledger;
 *   6. finalise each row (event + metadata + next_action_at) in one statement, guarded by
 *      the claim; rows never offered to SMTP are released. */
#ifndef WORKER_SWEEP_H
#define WORKER_SWEEP_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "db.h"
#include "err.h"
#include "prompt.h"
#include "settings.h"

struct sweep_options {
    long limit;                  /* at most this many orchestrations; 0 = drain everything due */
    const char *order_id;        /* only this order's orchestration, due or not */
    bool dry_run;                /* claim, send and write nothing; describe each decision */
    FILE *dry_run_out;           /* where dry-run decisions go, one JSON line each */
    const char *dry_run_dir;     /* optional: write each message that would be sent here */
    volatile sig_atomic_t *stop; /* when it becomes non-zero, stop claiming new batches */
    bool progress;               /* draw done/due, rate and ETA on stderr (a terminal) */
};

/* The outcome counters of a sweep, listed once for the struct, the summary line and the
 * metrics: X(field, key in the JSON summary line, `outcome` label of the metrics). */
#define SWEEP_OUTCOMES(X)                                                                          \
    X(nudges_sent, "nudges_sent", "sent")                                                          \
    X(skipped_opt_out, "skipped_opt_out", "skipped_opt_out")                                       \
    X(no_intents, "no_intents", "no_intents")                                                      \
    X(escalations, "escalations", "escalated")                                                     \
    X(deferred, "deferred", "deferred")                                                            \
    X(failed, "failed", "failed")                                                                  \
    X(unknown, "unknown", "unknown")                                                               \
    X(already_sent, "already_sent", "already_sent")                                                \
    X(max_prompts, "max_prompts", "max_prompts")                                                   \
    X(invalid_address, "invalid_address", "invalid_address")                                       \
    X(released, "released", "released")                                                            \
    X(lost_leases, "lost_leases", "lost_lease")                                                    \
    X(superseded, "superseded", "superseded")                                                      \
    X(quiet_hours, "quiet_hours", "quiet_hours")                                                   \
    X(member_capped, "member_capped", "member_capped")                                             \
    X(gave_up, "gave_up", "gave_up")                                                               \
    X(resent_in_doubt, "resent_in_doubt", "resent_in_doubt")

struct sweep_summary {
    long processed;
#define SWEEP_FIELD(field, key, label) long field;
    SWEEP_OUTCOMES(SWEEP_FIELD)
#undef SWEEP_FIELD
    long batches;
    long long duration_ms;
    /* The relay's pace over the sweep (common/pace.h's pace_stats): throttling replies,
     * sessions the relay refused, the send rate in force at the end (messages per second,
     * 0: no limit), and whether the relay's daily quota ran out. */
    long throttle_replies;
    long refused_sessions;
    double send_rate;
    bool quota_exhausted;
};

/* Adds from's outcome counters to to's. */
void sweep_summary_add(struct sweep_summary *to, const struct sweep_summary *from);

/* Runs one sweep. db claims and prepares batches; journal (required unless dry-run) records
 * each message's progress while the sessions run (worker/journal.h); db2 (optional, may be
 * NULL) records and finalises batches at the same time. Returns ERR_OK when it completed,
 * ERR_UNAVAILABLE when the database or the relay failed and the sweep was cut short (what was done
 * is finalised, the rest is released or left to lease expiry), other codes for internal errors. */
int sweep_run(struct db *db, struct db *journal, struct db *db2, const struct settings *s,
              const struct prompt_templates *t, const char *run_id, const struct sweep_options *opt,
              struct sweep_summary *sum, struct err *e);

/* The SPEC's summary line (processed, nudges_sent, ...), new JSON object. */
json_t *sweep_summary_json(const struct sweep_summary *sum);

/* A fresh run id: 16 hex characters from the kernel's random source. */
void sweep_new_run_id(char out[17]);

#endif
