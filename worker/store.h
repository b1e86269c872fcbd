/* store: every SQL statement about orchestrations, their events, the claims and the
 * delivery ledger. Each function is one statement per batch (arrays via unnest), so the
 * cost of a sweep does not grow with round trips per row. */
#ifndef WORKER_STORE_H
#define WORKER_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "db.h"
#include "err.h"
#include "policy.h"

#define STORE_UUID_LEN 36

/* One claimed orchestration with the context read in the claim statement. Strings are
 * owned by the batch (store_batch_free). */
struct store_row {
    char *id;
    char *due_at; /* next_action_at that made it due, exact text round-trip */
    char *due_us; /* the same instant in microseconds since the epoch */
    char *stage;
    char *order_id; /* NULL when the order is missing */
    char *order_number;
    char *total;
    char *currency;
    char *user_id; /* the order's user, NULL when none */
    char *email;
    char *display_name;
    enum policy_pref order_updates;      /* the member's preference, as stored */
    enum policy_pref marketing_messages; /* the member's preference, as stored */
    long long since_last_prompt_ms;      /* since any prompt to this member was sent; -1 never */
    bool has_member;
    long pending_intents;
    long prompts_sent;
    long deferrals;
    char *ledger_status; /* NULL when this due occurrence has no ledger row */
    long ledger_attempts;
    long long age_ms; /* since the orchestration's created_at; -1 when unknown */
};

struct store_batch {
    struct store_row *rows;
    size_t n;
};

/* Claims up to limit due orchestrations (FOR UPDATE SKIP LOCKED), leases them for lease_ms
 * to run_id, and reads their context, all in one statement. When order_id is non-NULL,
 * claims that order's waiting orchestration whether due or not (still honouring leases). */
int store_claim(struct db *db, const char *run_id, int limit, long long lease_ms,
                const char *order_id, struct store_batch *out, struct err *e);

/* Reads what a claim would read, without claiming or writing anything (--dry-run). Pages
 * through the due set in (next_action_at, id) order: pass the last row of the previous page
 * as `after` (NULL for the first page). */
int store_peek(struct db *db, int limit, const char *order_id, const struct store_row *after,
               struct store_batch *out, struct err *e);

void store_batch_free(struct store_batch *b);

/* Writes 'queued' ledger rows for rows[idx[0..n)] before they are sent, re-checking that each
 * orchestration is still waiting on the same due occurrence, still claimed by run_id, and
 * that the member still consents (policy_consents, in the terms policy_consent_terms gives),
 * so an opt-out that lands between the claim and the send still wins; and, when
 * member_window_ms > 0, that no other prompt to the member is being sent or was sent
 * within it, whichever worker sends it.
 * ok[i] is set for the rows that may be sent now. message_ids[i] is the deterministic id. */
int store_ledger_begin(struct db *db, const char *run_id, const struct store_batch *b,
                       const size_t *idx, char *const *message_ids, size_t n, int limit_sending,
                       int limit_unknown, const struct policy_consent_terms *consent,
                       long long member_window_ms, bool *ok, struct err *e);

struct store_delivery {
    size_t row;         /* index into the batch */
    const char *status; /* sent | deferred | failed | unknown | released */
    int code;
    const char *enhanced;
    const char *text;
};

/* Records SMTP results that the journal did not (and 'unknown' for orphaned rows, 'released'
 * for rows never offered) on ledger rows still 'queued', 'sending' or 'unknown' and, unless
 * run_id is NULL (the orphans of a dead worker), still run_id's. */
int store_ledger_finish(struct db *db, const char *run_id, const struct store_batch *b,
                        const struct store_delivery *d, size_t n, struct err *e);

/* One step of a delivery as the journal records it while the sessions run. */
struct store_progress {
    const char *id;     /* orchestration id (borrowed) */
    const char *due_at; /* the due occurrence (borrowed) */
    const char *status; /* "sending" (its data is about to go out) or the outcome */
    int code;
    const char *enhanced;
    const char *text;
};

/* Writes a group of steps in one statement: a 'sending' mark applies to a row of run_id's
 * that is 'queued' (or 'sending' or 'released' from an earlier turn in the same sweep), an
 * outcome to a row 'sending' by run_id. applied[i] tells which did. */
int store_ledger_progress(struct db *db, const char *run_id, const struct store_progress *p,
                          size_t n, bool *applied, struct err *e);

struct store_final {
    size_t row;        /* index into the batch */
    json_t *patch;     /* metadata keys to merge (borrowed) */
    json_t *payload;   /* event payload (borrowed) */
    long long next_ms; /* next_action_at = now + next_ms; < 0 clears it */
};

/* Finalises in one statement (so one transaction): for each row still claimed by run_id
 * and still waiting on the same due occurrence, merges metadata, stamps
 * last_transition_at/updated_at, moves next_action_at and locked_until, records the
 * "Recovery sweep executed" event, and drops the claim. finalised[i] tells which were;
 * lost[i] which had lost their claim to another worker. */
int store_finalise(struct db *db, const char *run_id, const struct store_batch *b,
                   const struct store_final *f, size_t n, bool *finalised, bool *lost,
                   struct err *e);

/* Gives claimed rows back. clear_lease: the row is due again at once (the relay failed
 * before it was offered); otherwise the lease runs out first, so a row this sweep could
 * not handle is not claimed again by the same sweep. */
int store_release(struct db *db, const char *run_id, const struct store_batch *b, const size_t *idx,
                  size_t n, bool clear_lease, struct err *e);

/* The time of day in the IANA zone, in seconds since local midnight. ERR_DATA when
 * PostgreSQL does not know the zone. */
int store_local_time(struct db *db, const char *zone, int *seconds_of_day, struct err *e);

/* Count of due orchestrations and the age of the oldest, in seconds. */
int store_due_stats(struct db *db, long *due, double *oldest_age_s, struct err *e);

#endif
