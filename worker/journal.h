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

#include "db.h"
#include "err.h"

struct journal;

/* Starts the writer thread on db (owned by the caller, used only by the journal until
 * journal_stop). NULL on failure. */
struct journal *journal_start(struct db *db, const char *run_id, struct err *e);

/* Marks the delivery (orchestration id, due occurrence) 'sending' and waits until that is
 * committed. false when it was not: the database failed, or the row is no longer queued by
 * this run (its lease was lost). The message must then not be sent. */
bool journal_sending(struct journal *j, const char *id, const char *due_at);

/* Queues the outcome of a delivery marked 'sending'; does not wait. *recorded becomes true
 * once it is committed (read it after journal_flush). Strings are copied. */
void journal_outcome(struct journal *j, const char *id, const char *due_at, const char *status,
                     int code, const char *enhanced, const char *text, bool *recorded);

/* Waits until everything queued so far is committed. ERR_OK, or the database error that
 * stopped the journal (it then accepts nothing more). */
int journal_flush(struct journal *j, struct err *e);

/* Flushes, stops the writer and frees the journal (NULL is fine). */
void journal_stop(struct journal *j);

#endif
