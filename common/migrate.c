/* migrate: numbered SQL migrations, each applied once, in order, in its own transaction,
 * under an advisory lock so two deployments migrating at once serialise. */
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

/* One migration in its own transaction; the record of it commits with it. */
static int
apply_one(struct db *db, const char *table, const struct migration *m, struct err *e)
{
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO %s (version) VALUES ($1)", table);
    const char *params[] = {m->name};
    int rc = db_begin(db, e);
    if (rc == ERR_OK)
        rc = db_exec_script(db, m->sql, e);
    if (rc == ERR_OK)
        rc = db_exec(db, sql, 1, params, NULL, e);
    if (rc == ERR_OK)
        rc = db_commit(db, e);
    if (rc != ERR_OK) {
        db_rollback(db);
        err_prefix(e, "migration %s", m->name);
    }
    return rc;
}

int
migrate_apply(struct db *db, const char *table, long long lock_key,
              const struct migration *list, unsigned n, unsigned *applied, struct err *e)
{
    char key[32];
    snprintf(key, sizeof key, "%lld", lock_key);
    const char *params[] = {key};
    *applied = 0;
    int rc = db_exec(db, "SELECT pg_advisory_lock($1::bigint)", 1, params, NULL, e);
    if (rc != ERR_OK)
        return rc;
    rc = ensure_table(db, table, e);
    for (unsigned i = 0; rc == ERR_OK && i < n; i++) {
        bool done = false;
        rc = is_applied(db, table, list[i].name, &done, e);
        if (rc != ERR_OK || done)
            continue;
        rc = apply_one(db, table, &list[i], e);
        if (rc == ERR_OK) {
            (*applied)++;
            log_info("migration applied", json_pack("{s:s}", "migration", list[i].name));
        }
    }
    struct err ignore;
    db_exec(db, "SELECT pg_advisory_unlock($1::bigint)", 1, params, NULL, &ignore);
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
