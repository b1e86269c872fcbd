/* db: libpq behind a small interface: connect with bounded jittered retries, parameterised
 * statements, and failures classified as "database unavailable" or "statement failed". */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "buf.h"
#include "log.h"

struct db {
    PGconn *conn;
    char sqlstate[6];
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

/* libpq's parse errors quote the connection string back, password included: 'missing "="
 * after ""postgresql://user:secret@db/shop""' (a URI in quotes, as a container engine
 * passes it on from an env file), or 'invalid URI query parameter: "..."' with the whole URI.
 * Where the string may hold a password (a URI's user:password@, or a password key), what
 * follows a quote in the message and is also in the string, two characters or more, becomes
 * "..."; libpq's own words stay. */
static void
scrub_conninfo(char *msg, const char *conninfo)
{
    if (strchr(conninfo, '@') == NULL && strstr(conninfo, "password") == NULL)
        return;
    char *out = msg;
    for (const char *p = msg; *p != '\0';) {
        size_t best = 0;
        if (p > msg && p[-1] == '"') {
            for (const char *c = conninfo; *c != '\0'; c++) {
                size_t n = 0;
                while (p[n] != '\0' && p[n] == c[n])
                    n++;
                if (n > best)
                    best = n;
            }
        }
        if (best >= 2) {
            /* in place, so never longer than what it replaces: two characters, two dots */
            size_t dots = best < 3 ? best : 3;
            memset(out, '.', dots);
            out += dots;
            p += best;
        } else {
            *out++ = *p++;
        }
    }
    *out = '\0';
}

/* Where text says 'NOUN"name" does not exist' ('database "shop" does not exist'), or NULL. */
static const char *
names_missing(const char *text, const char *noun)
{
    size_t n = strlen(noun);
    for (const char *p = strstr(text, noun); p != NULL; p = strstr(p + 1, noun)) {
        const char *close = p[n] == '"' ? strchr(p + n + 1, '"') : NULL;
        if (close != NULL && strncmp(close, "\" does not exist", 16) == 0)
            return p;
    }
    return NULL;
}

/* libpq reports every failure to connect as text, with no code: a server that is down,
 * starting up or out of connection slots reads the same to the program as a missing
 * certificate or a wrong password. Retrying helps only the first kind, and a batch job that
 * retries the second kind (CronJob backoff, systemd Restart=) does so until someone reads
 * the log, so it is told apart here, once, on the messages of libpq 15 (client side, never
 * translated: the worker does not call setlocale) and of the server (English unless the
 * server's lc_messages says otherwise: a translated one stays "unavailable", as before).
 * PQconnectionNeedsPassword needs no text. A host name that does not resolve stays
 * "unavailable": it is as often DNS being down as a typo. */
enum err_code
db_connect_failure(const char *msg, bool needs_password, const char **line, size_t *len)
{
    static const char *const config_phrases[] = {
        /* connection options libpq refuses before any network traffic */
        "invalid sslmode value",
        "invalid gssencmode value",
        "invalid target_session_attrs value",
        "invalid channel_binding value",
        "invalid sslcertmode value",
        "invalid load_balance_hosts value",
        "invalid port number",
        "invalid integer value",
        "SSL protocol version",
        "invalid when SSL support is not compiled in",
        "hostaddr values",
        "port numbers to",
        "could not parse network address",
        /* certificate and key files named (or defaulted) by the connection string */
        "root certificate file",
        "certificate file \"",
        "private key file",
        /* the server's certificate does not prove the host named in the string */
        "certificate verify failed",
        "does not match host name",
        "server certificate for",
        "server does not support SSL, but SSL was required",
        "channel binding",
        /* the server refuses who we say we are, or where we want to go */
        "fe_sendauth: no password supplied",
        "authentication failed for user",
        "no pg_hba.conf entry",
        "pg_hba.conf rejects connection",
        "connection requires a valid client certificate",
        "is not permitted to log in",
        "permission denied for database",
        NULL,
    };
    const char *text = msg != NULL ? msg : "";
    const char *hit = NULL;
    for (const char *const *ph = config_phrases; *ph != NULL && hit == NULL; ph++)
        hit = strstr(text, *ph);
    if (hit == NULL)
        hit = names_missing(text, "database ");
    if (hit == NULL)
        hit = names_missing(text, "role ");
    if (hit == NULL && needs_password)
        hit = text;
    const char *start = hit != NULL ? hit : text;
    while (start > text && start[-1] != '\n')
        start--;
    *line = start;
    *len = strcspn(start, "\r\n");
    return hit != NULL ? ERR_CONFIG : ERR_UNAVAILABLE;
}

/* libpq's default notice processor prints server notices ("relation ... already exists,
 * skipping" from an idempotent migration) as raw text on stderr, where only JSON lines
 * belong. They become log lines: warnings at warn, the rest at debug. */
static void
on_notice(void *arg, const PGresult *res)
{
    (void)arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    enum log_level level =
        severity != NULL && strcmp(severity, "WARNING") == 0 ? LOG_WARN : LOG_DEBUG;
    if (!log_enabled(level))
        return;
    log_event(level, "database notice",
              json_pack("{s:s?,s:s?,s:s?}", "severity", severity, "sqlstate",
                        PQresultErrorField(res, PG_DIAG_SQLSTATE), "notice",
                        PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)));
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
        scrub_conninfo(line, opt->conninfo);
        /* the mistake of an env file written for a shell and read by podman or docker */
        bool quoted = strchr("\"'", opt->conninfo[0]) != NULL;
        err_set(e, ERR_CONFIG, "database.url: %s%s", line,
                quoted ? " (the value starts with a quote: an env file line is KEY=value, "
                         "without quotes)"
                       : "");
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
            PQsetNoticeReceiver(conn, on_notice, NULL);
            db->conn = conn;
            return db;
        }
        const char *why = NULL;
        size_t why_len = 0;
        enum err_code code =
            db_connect_failure(conn != NULL ? PQerrorMessage(conn) : NULL,
                               conn != NULL && PQconnectionNeedsPassword(conn), &why, &why_len);
        char line[256];
        snprintf(line, sizeof line, "%.*s", (int)why_len, why);
        if (conn == NULL)
            snprintf(line, sizeof line, "out of memory");
        PQfinish(conn);
        if (code == ERR_CONFIG) {
            err_set(e, ERR_CONFIG,
                    "cannot connect to the database: %s (a configuration problem: check "
                    "DATABASE_URL, the files it names and the server's pg_hba.conf; not retried)",
                    line);
            return NULL;
        }
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

int
db_exec(struct db *db, const char *sql, int nparams, const char *const *params,
        struct db_res **out, struct err *e)
{
    if (out != NULL)
        *out = NULL;
    PGresult *res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
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
