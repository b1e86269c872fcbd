/* db: the libpq wrapper. Connect with bounded, jittered retries; run parameterised
 * statements only, each with a deadline; classify failures as "database unavailable" or
 * "statement failed". No session state, so it works through transaction-pooling poolers.
 * libpq's types stay inside db.c. */
#ifndef COMMON_DB_H
#define COMMON_DB_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct db;
struct db_res;

struct db_options {
    const char *conninfo; /* libpq key/value string or URI; borrowed */
    /* How messages name conninfo to the operator: the configuration key and the environment
     * variable it comes from ("database.url", "DATABASE_URL"). Borrowed; either may be NULL
     * ("the connection string" stands in for a missing key). */
    const char *conninfo_key;
    const char *conninfo_env;
    int connect_retries; /* extra attempts after the first on a connection failure */
    int retry_base_ms;   /* first backoff, doubled each attempt, with jitter */
    const char *application_name;
    int connect_timeout_s; /* per attempt; 0 = libpq's default (none) */
    /* Server-side statement_timeout and idle_in_transaction_session_timeout of every
     * transaction; 0 = the server's own. */
    long long statement_timeout_ms;
    /* The longest wait for any reply of the server (one round trip). On expiry the
     * connection is dropped and the call fails with ERR_UNAVAILABLE. Also the kernel's
     * tcp_user_timeout. 0 = no deadline. */
    long long reply_timeout_ms;
    /* Once *stop is set (a stop was asked for), no reply is waited for longer than
     * stop_reply_timeout_ms from the moment the wait saw it: a database that went silent
     * cannot hold a stopping program beyond that. NULL or 0: reply_timeout_ms only. */
    const volatile sig_atomic_t *stop;
    long long stop_reply_timeout_ms;
    /* Settings made per transaction (set_config(name, value, true)), never for the session:
     * name, value, name, value, ..., NULL. Borrowed; copied at connect. */
    const char *const *local_settings;
};

/* Connects (new: free with db_close). On failure returns NULL and sets e to ERR_UNAVAILABLE
 * (server unreachable after the retries) or ERR_CONFIG, at once and without retrying, for a
 * failure no retry can mend (see db_connect_failure). The password never appears in the
 * message. Server notices on the connection are logged (warnings at warn, others at debug),
 * never printed raw. */
struct db *db_connect(const struct db_options *opt, struct err *e);

/* Classifies a failed connection attempt from libpq's message (msg, may be NULL; one line
 * per host tried) and PQconnectionNeedsPassword: ERR_CONFIG for a mistake in the
 * configuration (malformed options, missing or unreadable certificate and key files, a
 * server certificate that does not verify, authentication refused, no pg_hba.conf entry, no
 * such database or role), ERR_UNAVAILABLE otherwise. *line and *len give the line of msg
 * that says why (borrowed from msg; "" when msg is NULL). */
enum err_code db_connect_failure(const char *msg, bool needs_password, const char **line,
                                 size_t *len);
void db_close(struct db *db);

/* Ties the fate of the connections of one job: b joins a's group (a new one if a has
 * none). Once a reply deadline expires on one (the network or the server went silent), the
 * others give up too, at once if idle and within a fraction of a second if waiting, instead
 * of each waiting out a deadline of its own. Either may be NULL (then nothing happens).
 * Holds until all are closed. */
void db_share_fate(struct db *a, struct db *b);

/* Runs one statement with text parameters ($1..$n; NULL elements are SQL NULL). Outside an
 * explicit transaction it runs in a transaction of its own that also applies the per-
 * transaction settings, all in one round trip. On success
 * returns ERR_OK and, when res is non-NULL, the result (new: free with db_res_free). On
 * failure sets e: ERR_UNAVAILABLE when the connection is gone, the server is shutting down
 * (SQLSTATE class 08, 57P0x), a statement timed out (57014) or no reply came in time, ERR_TEMPORARY
 * for serialization failures and deadlocks (40001, 40P01), ERR_DATA for data exceptions (class 22:
 * a value that is not a timestamp, not JSON, ...), ERR_INTERNAL otherwise. */
int db_exec(struct db *db, const char *sql, int nparams, const char *const *params,
            struct db_res **res, struct err *e);

/* Bounds every later db_exec on this connection: a statement without an answer after
 * timeout_ms fails with ERR_UNAVAILABLE, and the connection is then unusable (close it).
 * 0 (the default) waits as long as the server takes. */
void db_set_timeout(struct db *db, long timeout_ms);

/* "select 1": whether the database answers (within the timeout, when one is set). */
int db_ping(struct db *db, struct err *e);

/* Statements without parameters (DDL scripts); several separated by ';' are allowed. Runs
 * inside the current transaction, or in one of its own. */
int db_exec_script(struct db *db, const char *sql, struct err *e);

/* Opens a transaction and applies the per-transaction settings, in one round trip. */
int db_begin(struct db *db, struct err *e);
int db_commit(struct db *db, struct err *e);
/* Rolls back if a transaction is open; never fails loudly (errors are ignored). */
void db_rollback(struct db *db);

size_t db_res_rows(const struct db_res *r);
int db_res_cols(const struct db_res *r);
/* Column value as text (borrowed, valid until db_res_free); NULL for SQL NULL. */
const char *db_res_get(const struct db_res *r, size_t row, int col);
bool db_res_isnull(const struct db_res *r, size_t row, int col);
/* Command tag row count for UPDATE/DELETE/INSERT ("UPDATE 3" gives 3). */
long db_res_affected(const struct db_res *r);
void db_res_free(struct db_res *r);

/* Array parameters in PostgreSQL's text form ({"a","b",NULL}), for statements that take a
 * whole batch through unnest(). Values are quoted and escaped; NULL is SQL NULL. */
struct buf;
void db_array_begin(struct buf *b);
void db_array_add(struct buf *b, const char *value);
void db_array_end(struct buf *b);

/* Returns a copy of a libpq connection string (key=value or URI) with every password
 * masked as "****" (new; free with free()). NULL only when out of memory. */
char *db_mask_conninfo(const char *conninfo);

/* The SQLSTATE of the last failed statement ("" if none). */
const char *db_last_sqlstate(const struct db *db);

#endif
