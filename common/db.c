/* db: libpq behind a small interface: connect with bounded jittered retries, parameterised
 * statements each under a deadline, and failures classified as "database unavailable" or
 * "statement failed".
 *
 * Every round trip is sent asynchronously and waited for with poll() up to the reply
 * deadline: a server or network that goes silent (a failover, a dead NAT entry) never
 * holds the caller longer. On expiry the connection is dropped, not cancelled: a cancel
 * request would travel the same silent path. Settings are made per transaction, so the
 * connection can be a pooler's (PgBouncer, Supavisor, RDS Proxy in transaction mode). */
#include "db.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libpq-fe.h>

#include "buf.h"
#include "clock.h"
#include "enc.h"
#include "log.h"

/* Shared by the connections of one job (db_share_fate). */
struct db_fate {
    atomic_int silent;
    atomic_int refs;
};

#define DB_MAX_LOCAL 16 /* parameters of the per-transaction settings: 8 name/value pairs */

struct db {
    PGconn *conn; /* NULL once dropped */
    char sqlstate[6];
    long long reply_timeout_ms;
    const volatile sig_atomic_t *stop;
    long long stop_reply_timeout_ms;
    /* SELECT set_config($1, $2, true), ...: the per-transaction settings */
    char *prelude_sql;
    char *prelude_params[DB_MAX_LOCAL];
    int prelude_nparams;
    struct db_fate *fate;
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

/* Adds one set_config(name, value, true) to the per-transaction statement. */
static bool
prelude_add(struct db *db, struct buf *sql, const char *name, const char *value)
{
    if (db->prelude_nparams + 2 > DB_MAX_LOCAL)
        return false;
    int n = db->prelude_nparams;
    db->prelude_params[n] = strdup(name);
    db->prelude_params[n + 1] = strdup(value);
    db->prelude_nparams = n + 2;
    buf_printf(sql, "%sset_config($%d, $%d, true)", n > 0 ? ", " : "SELECT ", n + 1, n + 2);
    return db->prelude_params[n] != NULL && db->prelude_params[n + 1] != NULL;
}

/* The statement that opens every transaction: the caller's settings, plus the server-side
 * timeouts. SET LOCAL would do the same but takes no parameters. */
static int
prelude_init(struct db *db, const struct db_options *opt)
{
    struct buf sql;
    buf_init(&sql, 0);
    bool ok = true;
    for (const char *const *kv = opt->local_settings;
         ok && kv != NULL && kv[0] != NULL && kv[1] != NULL; kv += 2)
        ok = prelude_add(db, &sql, kv[0], kv[1]);
    if (ok && opt->statement_timeout_ms > 0) {
        char ms[24];
        snprintf(ms, sizeof ms, "%lld", opt->statement_timeout_ms);
        ok = prelude_add(db, &sql, "statement_timeout", ms) &&
             prelude_add(db, &sql, "idle_in_transaction_session_timeout", ms);
    }
    if (ok && db->prelude_nparams > 0 && !sql.failed)
        db->prelude_sql = strdup(buf_str(&sql));
    ok = ok && !sql.failed && (db->prelude_nparams == 0 || db->prelude_sql != NULL);
    buf_free(&sql);
    return ok ? ERR_OK : ERR_INTERNAL;
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
        severity != NULL && strcmp(severity, "WARNING") == 0 ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG;
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
    const char *key = opt->conninfo_key != NULL ? opt->conninfo_key : "the connection string";
    const char *env = opt->conninfo_env;
    if (opt->conninfo == NULL || opt->conninfo[0] == '\0') {
        if (env != NULL)
            err_set(e, ERR_CONFIG, "%s (%s) is not set", key, env);
        else
            err_set(e, ERR_CONFIG, "%s is not set", key);
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
        err_set(e, ERR_CONFIG, "%s: %s%s", key, line,
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
    char user_timeout[24] = "";
    if (opt->reply_timeout_ms > 0)
        snprintf(user_timeout, sizeof user_timeout, "%lld", opt->reply_timeout_ms);
    /* Entries before dbname are defaults the connection string may override (an operator's
     * keepalives_idle wins); entries after it override the string; empty values are
     * ignored. Keepalives find a dead peer of an idle connection; tcp_user_timeout drops
     * one whose sent data goes unacknowledged. */
    const char *keys[] = {"keepalives",          "keepalives_idle",
                          "keepalives_interval", "keepalives_count",
                          "tcp_user_timeout",    "dbname",
                          "application_name",    "fallback_application_name",
                          "connect_timeout",     NULL};
    const char *vals[] = {"1",
                          "30",
                          "10",
                          "3",
                          user_timeout,
                          opt->conninfo,
                          opt->application_name,
                          opt->application_name,
                          timeout,
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
            db->reply_timeout_ms = opt->reply_timeout_ms;
            db->stop = opt->stop;
            db->stop_reply_timeout_ms = opt->stop_reply_timeout_ms;
            /* so a send never blocks on a full socket: wait_ready does the waiting */
            PQsetnonblocking(conn, 1);
            if (prelude_init(db, opt) != ERR_OK) {
                db_close(db);
                err_set(e, ERR_INTERNAL, "per-transaction settings: too many, or out of memory");
                return NULL;
            }
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
                    "%s, the files it names and the server's pg_hba.conf; not retried)",
                    line, env != NULL ? env : key);
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
                 json_pack("{s:i,s:I,s:s}", "attempt", attempt + 1, "retry_in_ms", (json_int_t)wait,
                           "error", line));
        sleep_ms(wait);
    }
}

static void
fate_release(struct db_fate *f)
{
    if (f != NULL && atomic_fetch_sub(&f->refs, 1) == 1)
        free(f);
}

void
db_close(struct db *db)
{
    if (db == NULL)
        return;
    PQfinish(db->conn);
    for (int i = 0; i < db->prelude_nparams; i++)
        free(db->prelude_params[i]);
    free(db->prelude_sql);
    fate_release(db->fate);
    free(db);
}

void
db_share_fate(struct db *a, struct db *b)
{
    if (a == NULL || b == NULL || a == b || b->fate != NULL)
        return;
    if (a->fate == NULL) {
        struct db_fate *f = malloc(sizeof *f);
        if (f == NULL)
            return; /* each connection keeps its own deadline: slower, still bounded */
        atomic_init(&f->silent, 0);
        atomic_init(&f->refs, 1);
        a->fate = f;
    }
    atomic_fetch_add(&a->fate->refs, 1);
    b->fate = a->fate;
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
    /* 57014: statement_timeout (or a cancel): the database is too busy to answer now */
    if (PQstatus(db->conn) != CONNECTION_OK || strncmp(db->sqlstate, "08", 2) == 0 ||
        strncmp(db->sqlstate, "57P0", 4) == 0 || strcmp(db->sqlstate, "57014") == 0 ||
        db->sqlstate[0] == '\0')
        code = ERR_UNAVAILABLE;
    else if (strcmp(db->sqlstate, "40001") == 0 || strcmp(db->sqlstate, "40P01") == 0 ||
             strcmp(db->sqlstate, "55P03") == 0)
        code = ERR_TEMPORARY;
    else if (strncmp(db->sqlstate, "22", 2) == 0)
        code = ERR_DATA; /* data exception: the input, not the database, is at fault */
    return err_set(e, code, "%s: %s%s%s%s", what, line, db->sqlstate[0] ? " (SQLSTATE " : "",
                   db->sqlstate, db->sqlstate[0] ? ")" : "");
}

/* Drops the connection without a cancel request: that would take the same silent path. */
static void
drop(struct db *db)
{
    PQfinish(db->conn);
    db->conn = NULL;
}

static bool
fate_silent(const struct db *db)
{
    return db->fate != NULL && atomic_load(&db->fate->silent) != 0;
}

static int
lost(struct db *db, struct err *e)
{
    char line[256];
    first_line(line, sizeof line, PQerrorMessage(db->conn));
    drop(db);
    db->sqlstate[0] = '\0';
    return err_set(e, ERR_UNAVAILABLE, "database: connection lost: %s",
                   line[0] ? line : "no reason given");
}

/* Fails at once when the connection was dropped, or its partner went silent. */
static int
usable(struct db *db, struct err *e)
{
    if (db->conn != NULL && fate_silent(db))
        drop(db);
    if (db->conn != NULL)
        return ERR_OK;
    db->sqlstate[0] = '\0';
    return err_set(e, ERR_UNAVAILABLE,
                   "database: connection dropped after the database stopped answering");
}

/* Sends what is queued and waits until a result can be read without blocking, up to
 * *deadline (0: none), which a stop request brings forward (db_options.stop). Wakes every
 * quarter second to see whether a connection sharing this one's fate gave up, or a stop
 * was asked for. */
static int
wait_ready(struct db *db, long long *deadline, struct err *e)
{
    for (;;) {
        int pending = PQflush(db->conn);
        if (pending < 0)
            return lost(db, e);
        if (pending == 0 && !PQisBusy(db->conn))
            return ERR_OK;
        long long slice = 250;
        bool stopping = db->stop != NULL && *db->stop && db->stop_reply_timeout_ms > 0;
        if (stopping) {
            long long cap = clock_mono_ms() + db->stop_reply_timeout_ms;
            if (*deadline == 0 || cap < *deadline)
                *deadline = cap;
        }
        if (*deadline > 0) {
            long long left = *deadline - clock_mono_ms();
            if (left <= 0) {
                if (db->fate != NULL)
                    atomic_store(&db->fate->silent, 1);
                drop(db);
                db->sqlstate[0] = '\0';
                if (stopping)
                    return err_set(e, ERR_UNAVAILABLE,
                                   "database: no reply within %lld ms of the stop request; "
                                   "connection dropped",
                                   db->stop_reply_timeout_ms);
                return err_set(e, ERR_UNAVAILABLE,
                               "database: no reply within %lld ms; connection dropped",
                               db->reply_timeout_ms);
            }
            if (left < slice)
                slice = left;
        }
        if (fate_silent(db)) {
            drop(db);
            db->sqlstate[0] = '\0';
            return err_set(e, ERR_UNAVAILABLE,
                           "database: another connection got no reply in time; connection "
                           "dropped");
        }
        struct pollfd p = {.fd = PQsocket(db->conn),
                           .events = (short)(POLLIN | (pending ? POLLOUT : 0))};
        int n = poll(&p, 1, (int)slice);
        if (n < 0 && errno != EINTR)
            return lost(db, e);
        if (n > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP)) != 0 && !PQconsumeInput(db->conn))
            return lost(db, e);
    }
}

struct query {
    const char *sql;
    int nparams;
    const char *const *params;
};

/* Sends the queries as one pipeline, in one round trip bounded by the reply deadline.
 * Outside an explicit transaction they form one implicit transaction that the closing
 * Sync commits (or rolls back on error), so settings made by set_config(..., true) in the
 * first hold for the rest and end with them. *kept (when keep >= 0) gets the result of
 * queries[keep]. The first failure is classified. */
static int
roundtrip(struct db *db, const struct query *q, int nq, int keep, PGresult **kept, struct err *e)
{
    if (kept != NULL)
        *kept = NULL;
    int rc = usable(db, e);
    if (rc != ERR_OK)
        return rc;
    long long deadline = db->reply_timeout_ms > 0 ? clock_mono_ms() + db->reply_timeout_ms : 0;
    if (!PQenterPipelineMode(db->conn))
        return lost(db, e);
    for (int i = 0; i < nq; i++)
        if (!PQsendQueryParams(db->conn, q[i].sql, q[i].nparams, NULL, q[i].params, NULL, NULL, 0))
            return lost(db, e);
    if (!PQpipelineSync(db->conn))
        return lost(db, e);
    PGresult *failed = NULL;
    PGresult *mine = NULL;
    int idx = 0;
    for (;;) {
        rc = wait_ready(db, &deadline, e);
        if (rc != ERR_OK)
            break;
        PGresult *r = PQgetResult(db->conn);
        if (r == NULL) {
            /* the end of one query's results; past the last, only a broken connection */
            if (PQstatus(db->conn) == CONNECTION_BAD || ++idx > nq) {
                rc = failed != NULL ? ERR_OK : lost(db, e);
                break;
            }
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        if (st == PGRES_FATAL_ERROR && failed == NULL)
            failed = r;
        else if (idx == keep && mine == NULL && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK))
            mine = r;
        else
            PQclear(r);
    }
    if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
        PQexitPipelineMode(db->conn);
    if (rc == ERR_OK && failed != NULL)
        rc = classify(db, failed, "database", e);
    PQclear(failed);
    if (rc != ERR_OK) {
        PQclear(mine);
        return rc;
    }
    db->sqlstate[0] = '\0';
    if (kept != NULL)
        *kept = mine;
    else
        PQclear(mine);
    return ERR_OK;
}

static bool
in_transaction(const struct db *db)
{
    return db->conn != NULL && PQtransactionStatus(db->conn) != PQTRANS_IDLE;
}

int
db_exec(struct db *db, const char *sql, int nparams, const char *const *params, struct db_res **out,
        struct err *e)
{
    if (out != NULL)
        *out = NULL;
    struct query q[2];
    int nq = 0;
    if (!in_transaction(db) && db->prelude_sql != NULL)
        q[nq++] = (struct query){db->prelude_sql, db->prelude_nparams,
                                 (const char *const *)db->prelude_params};
    q[nq++] = (struct query){sql, nparams, params};
    PGresult *res = NULL;
    int rc = roundtrip(db, q, nq, nq - 1, out != NULL ? &res : NULL, e);
    if (rc != ERR_OK || out == NULL)
        return rc;
    struct db_res *r = malloc(sizeof *r);
    if (r == NULL) {
        PQclear(res);
        return err_set(e, ERR_INTERNAL, "out of memory");
    }
    r->res = res;
    *out = r;
    return ERR_OK;
}

/* A script of several statements goes by the simple query protocol, which pipelines
 * cannot carry. */
static int
exec_simple(struct db *db, const char *sql, struct err *e)
{
    int rc = usable(db, e);
    if (rc != ERR_OK)
        return rc;
    long long deadline = db->reply_timeout_ms > 0 ? clock_mono_ms() + db->reply_timeout_ms : 0;
    if (!PQsendQuery(db->conn, sql))
        return lost(db, e);
    PGresult *failed = NULL;
    for (;;) {
        rc = wait_ready(db, &deadline, e);
        if (rc != ERR_OK)
            break;
        PGresult *r = PQgetResult(db->conn);
        if (r == NULL)
            break;
        if (PQresultStatus(r) == PGRES_FATAL_ERROR && failed == NULL)
            failed = r;
        else
            PQclear(r);
    }
    if (rc == ERR_OK && failed != NULL)
        rc = classify(db, failed, "database", e);
    PQclear(failed);
    if (rc == ERR_OK)
        db->sqlstate[0] = '\0';
    return rc;
}

int
db_exec_script(struct db *db, const char *sql, struct err *e)
{
    if (in_transaction(db))
        return exec_simple(db, sql, e);
    int rc = db_begin(db, e);
    if (rc == ERR_OK)
        rc = exec_simple(db, sql, e);
    if (rc == ERR_OK)
        rc = db_commit(db, e);
    if (rc != ERR_OK)
        db_rollback(db);
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

void
db_set_timeout(struct db *db, long timeout_ms)
{
    db->reply_timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

int
db_begin(struct db *db, struct err *e)
{
    struct query q[2] = {{"BEGIN", 0, NULL}};
    int nq = 1;
    if (db->prelude_sql != NULL)
        q[nq++] = (struct query){db->prelude_sql, db->prelude_nparams,
                                 (const char *const *)db->prelude_params};
    int rc = roundtrip(db, q, nq, -1, NULL, e);
    if (rc != ERR_OK)
        db_rollback(db); /* BEGIN went through, the settings did not */
    return rc;
}

int
db_commit(struct db *db, struct err *e)
{
    const struct query q = {"COMMIT", 0, NULL};
    return roundtrip(db, &q, 1, -1, NULL, e);
}

void
db_rollback(struct db *db)
{
    if (!in_transaction(db))
        return;
    const struct query q = {"ROLLBACK", 0, NULL};
    struct err ignore;
    roundtrip(db, &q, 1, -1, NULL, &ignore);
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

/* ---- masking --------------------------------------------------------------------------- */

/* The keys whose values are secrets: the password, and the passphrase of the client key. */
static bool
is_secret_key(const char *k, size_t n)
{
    return (n == 8 && strncasecmp(k, "password", 8) == 0) ||
           (n == 11 && strncasecmp(k, "sslpassword", 11) == 0);
}

/* Appends the rest of a URI with the value of every secret parameter masked. Any '?' or
 * '&' may start a parameter: libpq reads the userinfo up to the first '@' and the host
 * after it, so a raw '@' or '?' moves where libpq's query begins; masking after each one
 * hides a secret under every reading. Keys are compared percent-decoded, as libpq reads
 * them ("pass%77ord" is the password too); a value runs to the next '&'. */
static void
mask_params(struct buf *b, const char *p)
{
    while (*p != '\0') {
        bool boundary = *p == '?' || *p == '&';
        buf_putc(b, *p++);
        if (!boundary)
            continue;
        size_t klen = strcspn(p, "=&");
        if (p[klen] != '=')
            continue;
        char key[32];
        size_t n = enc_percent_decode(p, klen, key, sizeof key);
        if (n > sizeof key || !is_secret_key(key, n))
            continue;
        buf_append(b, p, klen + 1);
        buf_puts(b, "****");
        p += klen + 1;
        p += strcspn(p, "&");
    }
}

static bool
is_space(char c)
{
    return isspace((unsigned char)c) != 0;
}

/* Appends a keyword/value string with every secret value masked, reading it as libpq does:
 * keys and values separated by white space, a value either single-quoted or running to the
 * next white space, a backslash escaping the character after it in both. */
static void
mask_keywords(struct buf *b, const char *p)
{
    while (*p != '\0') {
        if (is_space(*p)) {
            buf_putc(b, *p++);
            continue;
        }
        const char *key = p;
        while (*p != '\0' && *p != '=' && !is_space(*p))
            p++;
        size_t klen = (size_t)(p - key);
        buf_append(b, key, klen);
        while (is_space(*p))
            buf_putc(b, *p++);
        if (*p != '=')
            continue; /* not key=value: libpq refuses the string; copy on */
        buf_putc(b, *p++);
        const char *value = p;
        while (is_space(*p))
            p++;
        bool quoted = *p == '\'';
        if (quoted)
            p++;
        while (*p != '\0' && (quoted ? *p != '\'' : !is_space(*p))) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            p++;
        }
        if (quoted && *p == '\'')
            p++;
        if (is_secret_key(key, klen))
            buf_puts(b, "****");
        else
            buf_append(b, value, (size_t)(p - value));
    }
}

/* A postgres URI masks its userinfo's password through log_mask_url (the userinfo read to
 * the last '@' before the first '/', which covers libpq's reading and a raw '@' in the
 * password) and then every secret parameter; a keyword/value string masks every secret
 * value. */
char *
db_mask_conninfo(const char *conninfo)
{
    struct buf b;
    buf_init(&b, 0);
    if (conninfo == NULL)
        return buf_steal(&b);
    bool uri =
        strncmp(conninfo, "postgresql://", 13) == 0 || strncmp(conninfo, "postgres://", 11) == 0;
    if (!uri) {
        mask_keywords(&b, conninfo);
        return buf_steal(&b);
    }
    char *masked = log_mask_url(conninfo, LOG_MASK_SLASH_ONLY);
    if (masked == NULL) {
        buf_free(&b);
        return NULL;
    }
    const char *rest = strstr(masked, "://") + 3;
    buf_append(&b, masked, (size_t)(rest - masked));
    mask_params(&b, rest);
    free(masked);
    return buf_steal(&b);
}
