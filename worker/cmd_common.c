/* cmd_common: what every command needs: a database connection and error reporting. */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "log.h"
#include "migrations.h"

#define MIGRATIONS_TABLE "recovery_worker_migrations"

volatile sig_atomic_t cmd_stop_requested;

static void
on_stop(int sig)
{
    (void)sig;
    cmd_stop_requested = 1;
}

void
cmd_catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    /* no SA_RESTART: a signal cuts a wait short. A second signal is handled the same way:
     * the batch in hand is bounded by the SMTP timeouts, and the lease covers a SIGKILL. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* The delivery journal's connection: its one statement is an update by primary key, many
 * times a second, which needs neither the planner settings nor the time zone (its
 * timestamps carry their offset), so it goes without the per-transaction settings; its
 * replies are still bounded by database.reply_timeout. */
static struct db_options
connect_options(const struct settings *s)
{
    struct db_options opt = {
        .conninfo = s->database_url,
        .conninfo_key = SETTINGS_DATABASE_URL_KEY,
        .conninfo_env = SETTINGS_DATABASE_URL_ENV,
        .connect_retries = s->database_connect_retries,
        .retry_base_ms = 500,
        .application_name = "recovery-worker",
        .connect_timeout_s = (int)((s->database_connect_timeout_ms + 999) / 1000),
        .reply_timeout_ms = s->database_reply_timeout_ms,
        /* after SIGTERM, a silent database holds nobody past the shutdown grace */
        .stop = &cmd_stop_requested,
        .stop_reply_timeout_ms = s->shutdown_grace_ms,
    };
    return opt;
}

struct db *
cmd_connect_journal(const struct settings *s, struct err *e)
{
    struct db_options opt = connect_options(s);
    return db_connect(&opt, e);
}

struct db *
cmd_connect(const struct settings *s, bool require_schema, struct err *e)
{
    /* Bitmap scans off: with statistics that lag behind a growing backlog (right after an
     * outage, or a bulk load), the planner reads the due set through a bitmap scan and sorts
     * all of it for every batch of 500, which makes draining N rows cost N^2/500. An index
     * scan in next_action_at order stops after the batch. Every other statement of the
     * worker is an index lookup by key, where bitmaps gain nothing. JIT off: the batch
     * statements are short, and compiling them (its cost threshold is met by the estimates
     * of the ledger look-ups) took longer than running them. Per transaction, never for
     * the session: through a transaction pooler a session SET would reach other clients
     * and miss the worker's own next statement. */
    static const char *const local_settings[] = {
        "TimeZone", "UTC", "enable_bitmapscan", "off", "jit", "off", NULL,
    };
    struct db_options opt = connect_options(s);
    opt.statement_timeout_ms = s->database_statement_timeout_ms;
    opt.local_settings = local_settings;
    struct db *db = db_connect(&opt, e);
    if (db == NULL)
        return NULL;
    if (require_schema) {
        unsigned pending = 0;
        if (migrate_pending(db, MIGRATIONS_TABLE, migrations_embedded, migrations_embedded_count,
                            &pending, e) != ERR_OK) {
            db_close(db);
            return NULL;
        }
        if (pending > 0) {
            err_set(e, ERR_CONFIG,
                    "the database schema is not current (%u migration%s pending): run "
                    "`recovery-worker migrate` first",
                    pending, pending == 1 ? "" : "s");
            db_close(db);
            return NULL;
        }
    }
    return db;
}

int
cmd_fail(const char *what, const struct err *e)
{
    log_error(what, json_pack("{s:s,s:s}", "error", e->msg, "kind", err_str(e->code)));
    return err_exit_status(e->code);
}

bool
cmd_is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

int
cmd_migrate(const struct settings *s, int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0) {
            puts("usage: recovery-worker migrate\n\n"
                 "Applies the pending database migrations, each once, in order, in its own\n"
                 "transaction, under an advisory lock; prints {\"applied\":N,\"total\":M}.\n"
                 "Safe on an existing storefront database and safe to run twice.");
            return 0;
        }
        fprintf(stderr, "usage: recovery-worker migrate\n");
        return err_exit_status(ERR_USAGE);
    }
    log_set_context("command", "migrate");
    struct err e;
    err_clear(&e);
    struct db *db = cmd_connect(s, false, &e);
    if (db == NULL)
        return cmd_fail("migrate failed", &e);
    unsigned applied = 0;
    /* An arbitrary constant shared by every deployment: "recovery" in ASCII. */
    int rc = migrate_apply(db, MIGRATIONS_TABLE, 0x7265636f76657279LL, migrations_embedded,
                           migrations_embedded_count, &applied, &e);
    db_close(db);
    if (rc != ERR_OK)
        return cmd_fail("migrate failed", &e);
    printf("{\"applied\":%u,\"total\":%u}\n", applied, migrations_embedded_count);
    return 0;
}
