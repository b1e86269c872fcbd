/* db: libpq behind a small interface: connect with bounded jittered retries, parameterised
 * statements, and failures classified as "database unavailable" or "statement failed". */
#include "db.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "buf.h"
#include "clock.h"
#include "log.h"

struct db {
    PGconn *conn;
    char sqlstate[6];
    long timeout_ms; /* 0: block in libpq */
    bool broken;     /* a bounded statement timed out; the connection is mid-statement */
};

struct db_res {
    PGresult *res;
};

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* libpq's messages end in a newline and may span lines; keep the first line. */
static void
first_line(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src != NULL ? src : "");
    dst[strcspn(dst, "\r\n")] = '\0';
}

struct db *
db_connect(const struct db_options *opt, struct err *e)
{
    if (opt->conninfo == NULL || opt->conninfo[0] == '\0') {
        err_set(e, ERR_CONFIG, "database.url (DATABASE_URL) is not set");
        return NULL;
    }
    char *errmsg = NULL;
    PQconninfoOption *parsed = PQconninfoParse(opt->conninfo, &errmsg);
    if (parsed == NULL) {
        char line[256];
        first_line(line, sizeof line, errmsg);
        err_set(e, ERR_CONFIG, "database.url: %s", line);
        PQfreemem(errmsg);
        return NULL;
    }
    PQconninfoFree(parsed);

    char timeout[16] = "";
    if (opt->connect_timeout_s > 0)
        snprintf(timeout, sizeof timeout, "%d", opt->connect_timeout_s);
    /* Later entries override what the connection string says; empty values are ignored. */
    const char *keys[] = {"dbname", "application_name", "fallback_application_name",
                          "connect_timeout", NULL};
    const char *vals[] = {opt->conninfo, opt->application_name, "recovery-worker", timeout,
                          NULL};
    int base = opt->retry_base_ms > 0 ? opt->retry_base_ms : 250;
    for (int attempt = 0;; attempt++) {
        PGconn *conn = PQconnectdbParams(keys, vals, 1);
        if (conn != NULL && PQstatus(conn) == CONNECTION_OK) {
            struct db *db = calloc(1, sizeof *db);
            if (db == NULL) {
                PQfinish(conn);
                err_set(e, ERR_INTERNAL, "out of memory");
                return NULL;
            }
            db->conn = conn;
            return db;
        }
        char line[256];
        first_line(line, sizeof line, conn != NULL ? PQerrorMessage(conn) : "out of memory");
        PQfinish(conn);
        if (attempt >= opt->connect_retries) {
            err_set(e, ERR_UNAVAILABLE, "cannot connect to the database after %d attempt%s: %s",
                    attempt + 1, attempt ? "s" : "", line);
            return NULL;
        }
        /* Exponential backoff with full jitter, so replicas restarted together spread out. */
        long cap = (long)base << (attempt < 10 ? attempt : 10);
        long wait = cap / 2 + (long)(rand() % (int)(cap / 2 + 1));
        log_warn("database connect failed; retrying",
                 json_pack("{s:i,s:I,s:s}", "attempt", attempt + 1, "retry_in_ms",
                           (json_int_t)wait, "error", line));
        sleep_ms(wait);
    }
}

void
db_close(struct db *db)
{
    if (db == NULL)
        return;
    PQfinish(db->conn);
    free(db);
}

static int
classify(struct db *db, PGresult *res, const char *what, struct err *e)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state != NULL ? state : "");
    char line[384];
    first_line(line, sizeof line,
               res != NULL && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
                                                           : PQerrorMessage(db->conn));
    enum err_code code = ERR_INTERNAL;
    if (PQstatus(db->conn) != CONNECTION_OK || strncmp(db->sqlstate, "08", 2) == 0 ||
        strncmp(db->sqlstate, "57P0", 4) == 0 || db->sqlstate[0] == '\0')
        code = ERR_UNAVAILABLE;
    else if (strcmp(db->sqlstate, "40001") == 0 || strcmp(db->sqlstate, "40P01") == 0 ||
             strcmp(db->sqlstate, "55P03") == 0)
        code = ERR_TEMPORARY;
    else if (strncmp(db->sqlstate, "22", 2) == 0)
        code = ERR_DATA; /* data exception: the input, not the database, is at fault */
    return err_set(e, code, "%s: %s%s%s%s", what, line, db->sqlstate[0] ? " (SQLSTATE " : "",
                   db->sqlstate, db->sqlstate[0] ? ")" : "");
}

void
db_set_timeout(struct db *db, long timeout_ms)
{
    db->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    /* so that sending a statement cannot block either (PQexec still does) */
    PQsetnonblocking(db->conn, db->timeout_ms > 0);
}

/* Waits until the socket is ready for events or the deadline passes. */
static bool
wait_socket(PGconn *conn, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - clock_mono_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = PQsocket(conn), .events = events};
        int n = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

/* PQexecParams with a deadline: send, flush, read until the result is complete. NULL with
 * db->broken set when the deadline passed. */
static PGresult *
exec_bounded(struct db *db, const char *sql, int nparams, const char *const *params)
{
    long long deadline = clock_mono_ms() + db->timeout_ms;
    if (!PQsendQueryParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0))
        return NULL;
    int f;
    while ((f = PQflush(db->conn)) == 1) {
        if (!wait_socket(db->conn, POLLOUT | POLLIN, deadline)) {
            db->broken = true;
            return NULL;
        }
        if (!PQconsumeInput(db->conn))
            return NULL;
    }
    if (f < 0)
        return NULL;
    while (PQisBusy(db->conn)) {
        if (!wait_socket(db->conn, POLLIN, deadline)) {
            db->broken = true;
            return NULL;
        }
        if (!PQconsumeInput(db->conn))
            return NULL;
    }
    /* One statement: keep its result, drain the terminating NULL. */
    PGresult *res = PQgetResult(db->conn);
    PGresult *extra;
    while ((extra = PQgetResult(db->conn)) != NULL)
        PQclear(extra);
    return res;
}

int
db_exec(struct db *db, const char *sql, int nparams, const char *const *params,
        struct db_res **out, struct err *e)
{
    if (out != NULL)
        *out = NULL;
    if (db->broken)
        return err_set(e, ERR_UNAVAILABLE, "database: connection unusable after a timeout");
    PGresult *res = db->timeout_ms > 0 ? exec_bounded(db, sql, nparams, params)
                                       : PQexecParams(db->conn, sql, nparams, NULL, params, NULL,
                                                      NULL, 0);
    if (res == NULL && db->broken)
        return err_set(e, ERR_UNAVAILABLE, "database: no answer within %ld ms", db->timeout_ms);
    ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = classify(db, res, "database", e);
        PQclear(res);
        return rc;
    }
    db->sqlstate[0] = '\0';
    if (out == NULL) {
        PQclear(res);
        return ERR_OK;
    }
    struct db_res *r = malloc(sizeof *r);
    if (r == NULL) {
        PQclear(res);
        return err_set(e, ERR_INTERNAL, "out of memory");
    }
    r->res = res;
    *out = r;
    return ERR_OK;
}

int
db_exec_script(struct db *db, const char *sql, struct err *e)
{
    PGresult *res = PQexec(db->conn, sql);
    ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int rc = ERR_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)
        rc = classify(db, res, "database", e);
    PQclear(res);
    return rc;
}

int
db_ping(struct db *db, struct err *e)
{
    struct db_res *r = NULL;
    int rc = db_exec(db, "SELECT 1", 0, NULL, &r, e);
    if (rc == ERR_OK && (db_res_rows(r) != 1 || db_res_get(r, 0, 0) == NULL ||
                         strcmp(db_res_get(r, 0, 0), "1") != 0))
        rc = err_set(e, ERR_UNAVAILABLE, "database: unexpected answer to SELECT 1");
    db_res_free(r);
    return rc;
}

int
db_begin(struct db *db, struct err *e)
{
    return db_exec_script(db, "BEGIN", e);
}

int
db_commit(struct db *db, struct err *e)
{
    return db_exec_script(db, "COMMIT", e);
}

void
db_rollback(struct db *db)
{
    if (PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
        PGresult *res = PQexec(db->conn, "ROLLBACK");
        PQclear(res);
    }
}

size_t
db_res_rows(const struct db_res *r)
{
    return r != NULL ? (size_t)PQntuples(r->res) : 0;
}

int
db_res_cols(const struct db_res *r)
{
    return r != NULL ? PQnfields(r->res) : 0;
}

const char *
db_res_get(const struct db_res *r, size_t row, int col)
{
    if (PQgetisnull(r->res, (int)row, col))
        return NULL;
    return PQgetvalue(r->res, (int)row, col);
}

bool
db_res_isnull(const struct db_res *r, size_t row, int col)
{
    return PQgetisnull(r->res, (int)row, col) != 0;
}

long
db_res_affected(const struct db_res *r)
{
    const char *n = PQcmdTuples(r->res);
    return n[0] != '\0' ? strtol(n, NULL, 10) : 0;
}

void
db_res_free(struct db_res *r)
{
    if (r == NULL)
        return;
    PQclear(r->res);
    free(r);
}

const char *
db_last_sqlstate(const struct db *db)
{
    return db->sqlstate;
}

void
db_array_begin(struct buf *b)
{
    buf_putc(b, '{');
}

void
db_array_add(struct buf *b, const char *value)
{
    if (b->len > 0 && buf_str(b)[b->len - 1] != '{')
        buf_putc(b, ',');
    if (value == NULL) {
        buf_puts(b, "NULL");
        return;
    }
    buf_putc(b, '"');
    /* whole runs between the characters to escape: batches hold thousands of values */
    for (const char *p = value; *p != '\0';) {
        size_t run = strcspn(p, "\"\\");
        buf_append(b, p, run);
        p += run;
        if (*p != '\0') {
            buf_putc(b, '\\');
            buf_putc(b, *p++);
        }
    }
    buf_putc(b, '"');
}

void
db_array_end(struct buf *b)
{
    buf_putc(b, '}');
}
