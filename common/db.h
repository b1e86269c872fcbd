/* db: the libpq wrapper. Connect with bounded, jittered retries; run parameterised
 * statements only; classify failures as "database unavailable" or "statement failed".
 * libpq's types stay inside db.c. */
#ifndef COMMON_DB_H
#define COMMON_DB_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct db;
struct db_res;

struct db_options {
    const char *conninfo;     /* libpq key/value string or URI; borrowed */
    int connect_retries;      /* extra attempts after the first on a connection failure */
    int retry_base_ms;        /* first backoff, doubled each attempt, with jitter */
    const char *application_name;
    int connect_timeout_s;    /* per attempt; 0 = libpq's default (none) */
};

/* Connects (new: free with db_close). On failure returns NULL and sets e to ERR_UNAVAILABLE
 * (server unreachable after the retries) or ERR_CONFIG (malformed connection string). The
 * password never appears in the message. */
struct db *db_connect(const struct db_options *opt, struct err *e);
void db_close(struct db *db);

/* Runs one statement with text parameters ($1..$n; NULL elements are SQL NULL). On success
 * returns ERR_OK and, when res is non-NULL, the result (new: free with db_res_free). On
 * failure sets e: ERR_UNAVAILABLE when the connection is gone or the server is shutting down
 * (SQLSTATE class 08, 57P0x), ERR_TEMPORARY for serialization failures and deadlocks
 * (40001, 40P01), ERR_DATA for data exceptions (class 22: a value that is not a timestamp,
 * not JSON, ...), ERR_INTERNAL otherwise. */
int db_exec(struct db *db, const char *sql, int nparams, const char *const *params,
            struct db_res **res, struct err *e);

/* Bounds every later db_exec on this connection: a statement without an answer after
 * timeout_ms fails with ERR_UNAVAILABLE, and the connection is then unusable (close it).
 * 0 (the default) waits as long as the server takes. */
void db_set_timeout(struct db *db, long timeout_ms);

/* "select 1": whether the database answers (within the timeout, when one is set). */
int db_ping(struct db *db, struct err *e);

/* Convenience for statements without parameters (BEGIN, COMMIT, DDL scripts). Multiple
 * statements separated by ';' are allowed here. */
int db_exec_script(struct db *db, const char *sql, struct err *e);

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

/* The SQLSTATE of the last failed statement ("" if none). */
const char *db_last_sqlstate(const struct db *db);

#endif
