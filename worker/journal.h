/* journal: the delivery ledger written while the sessions run, on a database connection of
 * its own. A message becomes 'sending' just before its data goes on the wire, and its reply
 * is recorded as soon as it comes; the sessions' steps are grouped into one statement per
 * round trip (group commit), so the cost is one write per round trip, not per message.
 *
 * The rule it keeps: a session's message k goes on the wire only once the mark of k, and with
 * it the reply of k - 1 that came before, is committed. After any crash the rows left
 * 'sending' are then the messages that were on the wire (at most one per session) and nothing
 * the relay accepted is unrecorded, except a reply of the last instant. */
#ifndef WORKER_JOURNAL_H
#define WORKER_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "err.h"

struct journal;

/* Starts the writer thread on db (owned by the caller, used only by the journal until
 * journal_stop). NULL on failure. */
struct journal *journal_start(struct db *db, const char *run_id, struct err *e);

/* A 'sending' mark, posted ahead of need. */
struct journal_mark {
    uint64_t seq; /* 0: it could not be posted */
    bool applied; /* set by the writer */
};

/* Posts that the delivery (orchestration id, due occurrence) is about to go on the wire;
 * does not wait. Post it as early as is known (while the session's MAIL and RCPT are on their
 * way), then journal_wait just before the data goes out. m must stay put until then. */
void journal_mark(struct journal *j, const char *id, const char *due_at, struct journal_mark *m);

/* Waits until the mark is committed. false when it was not: the database failed, or the row
 * is no longer queued by this run (its lease was lost). The message must then not be sent. */
bool journal_wait(struct journal *j, const struct journal_mark *m);

/* Queues the outcome of a delivery marked 'sending'; does not wait. *recorded becomes true
 * once it is committed (read it after journal_flush). Strings are copied. */
void journal_outcome(struct journal *j, const char *id, const char *due_at, const char *status,
                     int code, const char *enhanced, const char *text, bool *recorded);

/* Whether a write failed: the journal then writes nothing more. */
bool journal_failed(struct journal *j);

/* Waits until everything queued so far is committed. ERR_OK, or the database error that
 * stopped the journal (it then accepts nothing more). */
int journal_flush(struct journal *j, struct err *e);

/* Flushes, stops the writer and frees the journal (NULL is fine). */
void journal_stop(struct journal *j);

#endif
