/* send: the SMTP side of a sweep. The one smtp_config built from the settings, the pool of
 * sessions that carries a batch's messages, and the per-message hooks that keep the journal
 * (worker/journal.h) in step with the wire: a message is marked 'sending' just before its
 * data goes out, and its reply is recorded as soon as it comes. A requested stop lets the
 * messages on the wire finish and sends nothing more; past sweep.shutdown_grace the sessions
 * are cut short. */
#ifndef WORKER_SEND_H
#define WORKER_SEND_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "journal.h"
#include "policy.h"
#include "settings.h"
#include "smtp.h"

/* The relay settings as common/smtp takes them (strings borrowed from s). */
void send_smtp_config(const struct settings *s, struct smtp_config *out);

/* The ledger status a message's outcome is recorded as; one never offered is handed back,
 * POLICY_LEDGER_RELEASED. */
enum policy_ledger send_ledger_status(enum smtp_outcome o);

/* Which ledger row a message is (strings borrowed from the batch). */
struct send_key {
    const char *id;
    const char *due_at;
};

struct send_pool;

/* stop: when it becomes non-zero, no further message goes out (may be NULL). */
struct send_pool *send_pool_new(const struct settings *s, struct journal *j,
                                volatile sig_atomic_t *stop, struct err *e);
void send_pool_free(struct send_pool *p);

/* The sweep stops sending (the relay's daily quota ran out, the relay kept throttling for
 * smtp.throttle_budget, or a stop was asked for): claim nothing more. */
bool send_pool_halted(const struct send_pool *p);

/* How the sweep was paced to the relay, for the summary's metrics. */
struct send_stats {
    long throttle_replies;
    long refused_sessions;
    double rate; /* messages per second allowed at the end; 0: unlimited */
    bool quota_exhausted;
};
void send_pool_stats(const struct send_pool *p, struct send_stats *out);

struct send_job;

/* Starts sending msgs[0..n) over up to sweep.concurrency sessions in the background, as
 * many at once and as fast as the relay allows (smtp.max_rate, and less while it throttles
 * or refuses sessions); messages the relay's limits kept back are offered again, by the
 * same or another session, for up to smtp.throttle_budget. keys[i]
 * names msgs[i]'s ledger row; recorded[i] becomes true once the journal holds its outcome
 * (read it after journal_flush). Everything passed must outlive send_finish. NULL only when
 * out of memory, with every message left SMTP_NOT_ATTEMPTED. */
struct send_job *send_start(struct send_pool *p, struct smtp_message *msgs,
                            const struct send_key *keys, bool *recorded, size_t n);

/* Waits for the job's sessions (and frees the job). ERR_OK, or the first session failure
 * (ERR_UNAVAILABLE: the relay is down; the messages never offered stay NOT_ATTEMPTED). */
int send_finish(struct send_job *job, struct err *e);

#endif
