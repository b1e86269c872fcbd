/* test_migrate: common/migrate.c against a real, empty PostgreSQL database (label pg): each
 * migration applied once and recorded, the pending count, and a failing migration rolled
 * back whole, stopping the run. Each test keeps its record in a table of its own. */
#include <stdlib.h>
#include <string.h>

#include "support.h"

#include "db.h"
#include "migrate.h"
#include "migrations.h"

#define LOCK_KEY 4242

/* The empty database, closed by teardown (connecting may skip the test: no fixture). */
static struct db *
open_empty_db(void **state)
{
    *state = support_pg_connect("migrate");
    return *state;
}

static int
teardown(void **state)
{
    db_close(*state);
    *state = NULL;
    return 0;
}

/* Whether relation name exists. */
static bool
exists(struct db *db, const char *name)
{
    const char *params[] = {name};
    char *v = support_pg_value(db, "SELECT to_regclass($1) IS NOT NULL", 1, params);
    bool yes = v != NULL && strcmp(v, "t") == 0;
    free(v);
    return yes;
}

static void
test_migrate_applies_each_migration_once_in_order(void **state)
{
    struct db *db = open_empty_db(state);
    support_pg_script(db, "DROP TABLE IF EXISTS m1_items, m1_orders, m1_record");
    /* the second needs the first: order matters */
    static const struct migration list[] = {
        {"0001_orders", "CREATE TABLE m1_orders (id int PRIMARY KEY)"},
        {"0002_items", "CREATE TABLE m1_items (order_id int REFERENCES m1_orders (id));"
                       "CREATE INDEX ON m1_items (order_id)"},
    };
    unsigned applied = 99, pending = 99;
    struct err e;
    err_clear(&e);
    assert_int_equal(migrate_pending(db, "m1_record", list, 2, &pending, &e), ERR_OK);
    assert_int_equal(pending, 2); /* no record table yet: all pending, none created */
    assert_false(exists(db, "m1_record"));

    assert_int_equal(migrate_apply(db, "m1_record", LOCK_KEY, list, 2, &applied, &e), ERR_OK);
    assert_int_equal(applied, 2);
    assert_true(exists(db, "m1_items"));
    assert_int_equal(migrate_pending(db, "m1_record", list, 2, &pending, &e), ERR_OK);
    assert_int_equal(pending, 0);
    char *v = support_pg_value(
        db, "SELECT string_agg(version, ',' ORDER BY version) FROM m1_record", 0, NULL);
    assert_string_equal(v, "0001_orders,0002_items");
    free(v);

    /* a second run applies nothing, and its CREATE TABLE (no IF NOT EXISTS) never runs */
    assert_int_equal(migrate_apply(db, "m1_record", LOCK_KEY, list, 2, &applied, &e), ERR_OK);
    assert_int_equal(applied, 0);
}

static void
test_migrate_a_new_migration_is_the_only_one_applied(void **state)
{
    struct db *db = open_empty_db(state);
    support_pg_script(db, "DROP TABLE IF EXISTS m2_a, m2_b, m2_record");
    static const struct migration list[] = {
        {"0001_a", "CREATE TABLE m2_a (x int)"},
        {"0002_b", "CREATE TABLE m2_b (x int)"},
    };
    unsigned applied = 0, pending = 0;
    struct err e;
    err_clear(&e);
    assert_int_equal(migrate_apply(db, "m2_record", LOCK_KEY, list, 1, &applied, &e), ERR_OK);
    assert_int_equal(applied, 1);
    assert_int_equal(migrate_pending(db, "m2_record", list, 2, &pending, &e), ERR_OK);
    assert_int_equal(pending, 1);
    assert_int_equal(migrate_apply(db, "m2_record", LOCK_KEY, list, 2, &applied, &e), ERR_OK);
    assert_int_equal(applied, 1);
    assert_true(exists(db, "m2_b"));
}

static void
test_migrate_failing_migration_is_rolled_back_and_stops_the_run(void **state)
{
    struct db *db = open_empty_db(state);
    support_pg_script(db, "DROP TABLE IF EXISTS m3_first, m3_half, m3_after, m3_record");
    static const struct migration list[] = {
        {"0001_first", "CREATE TABLE m3_first (x int)"},
        {"0002_broken", "CREATE TABLE m3_half (x int); SELECT 1 / 0"},
        {"0003_after", "CREATE TABLE m3_after (x int)"},
    };
    unsigned applied = 0, pending = 0;
    struct err e;
    err_clear(&e);
    int rc = migrate_apply(db, "m3_record", LOCK_KEY, list, 3, &applied, &e);
    assert_int_not_equal(rc, ERR_OK);
    assert_int_equal(e.code, rc);
    assert_string_contains(e.msg, "migration 0002_broken");
    assert_int_equal(applied, 1);
    assert_true(exists(db, "m3_first"));
    assert_false(exists(db, "m3_half"));  /* its own DDL went with it */
    assert_false(exists(db, "m3_after")); /* and nothing after it ran */
    assert_int_equal(migrate_pending(db, "m3_record", list, 3, &pending, &e), ERR_OK);
    assert_int_equal(pending, 2);
    /* the connection is usable afterwards */
    char *v = support_pg_value(db, "SELECT 1", 0, NULL);
    assert_string_equal(v, "1");
    free(v);
}

static void
test_migrate_the_worker_migrate_command_left_nothing_pending(void **state)
{
    (void)state;
    /* the fixture ran `recovery-worker migrate` on the store database */
    struct db *store = support_pg_connect("store");
    unsigned pending = 99;
    struct err e;
    err_clear(&e);
    assert_true(migrations_embedded_count > 0);
    assert_int_equal(migrate_pending(store, "recovery_worker_migrations", migrations_embedded,
                                     migrations_embedded_count, &pending, &e),
                     ERR_OK);
    assert_int_equal(pending, 0);
    /* the embedded list sorts in application order */
    for (unsigned i = 1; i < migrations_embedded_count; i++)
        assert_true(strcmp(migrations_embedded[i - 1].name, migrations_embedded[i].name) < 0);
    db_close(store);
}

int
main(void)
{
#define T(name) cmocka_unit_test_teardown(name, teardown)
    const struct CMUnitTest tests[] = {
        T(test_migrate_applies_each_migration_once_in_order),
        T(test_migrate_a_new_migration_is_the_only_one_applied),
        T(test_migrate_failing_migration_is_rolled_back_and_stops_the_run),
        T(test_migrate_the_worker_migrate_command_left_nothing_pending),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
