/* migrate: numbered SQL migrations, each applied once, in order, in its own transaction,
 * under a transaction-level advisory lock so two deployments migrating at once serialise,
 * directly or through a transaction-pooling pooler. */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static int
ensure_table(struct db *db, const char *table, struct err *e)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS %s ("
             " version text PRIMARY KEY,"
             " applied_at timestamptz NOT NULL DEFAULT now())",
             table);
    return db_exec_script(db, sql, e);
}

static int
is_applied(struct db *db, const char *table, const char *name, bool *applied, struct err *e)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT 1 FROM %s WHERE version = $1", table);
    struct db_res *r = NULL;
    const char *params[] = {name};
    int rc = db_exec(db, sql, 1, params, &r, e);
    if (rc == ERR_OK)
        *applied = db_res_rows(r) > 0;
    db_res_free(r);
    return rc;
}

/* One migration in its own transaction, which first takes the transaction-level advisory
 * lock: concurrent runs serialise there, before any DDL, so two never race to create the
 * same object (CREATE ... IF NOT EXISTS is no guard against a concurrent creator), and the
 * lock ends with the transaction on whichever server connection a pooler gave it. The
 * record of the migration commits with it. */
static int
apply_one(struct db *db, const char *table, const char *lock_key, const struct migration *m,
          bool *applied, struct err *e)
{
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO %s (version) VALUES ($1)", table);
    const char *key[] = {lock_key};
    const char *params[] = {m->name};
    bool done = false;
    *applied = false;
    int rc = db_begin(db, e);
    if (rc == ERR_OK)
        rc = db_exec(db, "SELECT pg_advisory_xact_lock($1::bigint)", 1, key, NULL, e);
    if (rc == ERR_OK)
        rc = ensure_table(db, table, e);
    if (rc == ERR_OK)
        rc = is_applied(db, table, m->name, &done, e);
    if (rc == ERR_OK && !done) {
        rc = db_exec_script(db, m->sql, e);
        if (rc == ERR_OK)
            rc = db_exec(db, sql, 1, params, NULL, e);
    }
    if (rc == ERR_OK)
        rc = db_commit(db, e);
    if (rc != ERR_OK) {
        db_rollback(db);
        err_prefix(e, "migration %s", m->name);
        return rc;
    }
    *applied = !done;
    return ERR_OK;
}

int
migrate_apply(struct db *db, const char *table, long long lock_key, const struct migration *list,
              unsigned n, unsigned *applied, struct err *e)
{
    char key[32];
    snprintf(key, sizeof key, "%lld", lock_key);
    *applied = 0;
    int rc = ERR_OK;
    for (unsigned i = 0; rc == ERR_OK && i < n; i++) {
        bool now = false;
        rc = apply_one(db, table, key, &list[i], &now, e);
        if (rc == ERR_OK && now) {
            (*applied)++;
            log_info("migration applied", json_pack("{s:s}", "migration", list[i].name));
        }
    }
    return rc;
}

int
migrate_pending(struct db *db, const char *table, const struct migration *list, unsigned n,
                unsigned *pending, struct err *e)
{
    *pending = n;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT to_regclass($1) IS NOT NULL");
    const char *params[] = {table};
    struct db_res *r = NULL;
    int rc = db_exec(db, sql, 1, params, &r, e);
    bool exists = rc == ERR_OK && strcmp(db_res_get(r, 0, 0), "t") == 0;
    db_res_free(r);
    if (rc != ERR_OK || !exists)
        return rc;
    for (unsigned i = 0; i < n; i++) {
        bool done = false;
        rc = is_applied(db, table, list[i].name, &done, e);
        if (rc != ERR_OK)
            return rc;
        if (done)
            (*pending)--;
    }
    return ERR_OK;
}
