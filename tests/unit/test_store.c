/* test_store: the contract of worker/store.h against a real PostgreSQL (label pg): claims
 * lease rows to one run, the ledger re-checks claim and consent before a send and follows
 * the run's own rows only, finalise is fenced by the claim, release gives rows back. Rows
 * are seeded with SQL in the storefront's shape (migrations/); what store.c writes is read
 * back from the same tables. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "support.h"

#include "db.h"
#include "policy.h"
#include "store.h"

#define RUN_A "aaaaaaaaaaaaaaaa"
#define RUN_B "bbbbbbbbbbbbbbbb"
#define LEASE_MS 60000LL
#define HOUR_MS 3600000LL

static const char SQL_CLEAN[] =
    "TRUNCATE users, orders, notification_preferences, loyalty_members,"
    " loyalty_checkout_intents, checkout_orchestrations, checkout_orchestration_events,"
    " recovery_claims, recovery_deliveries CASCADE";

/* A member with one pending checkout intent; order_updates "t", "f" or NULL (no preference
 * row: the defaults apply), marketing "t" or "f". */
static const char SQL_SEED_USER[] =
    "WITH u AS (INSERT INTO users (id, email, display_name)"
    "           VALUES (gen_random_uuid(), $1, 'Member') RETURNING id),"
    " p AS (INSERT INTO notification_preferences (id, user_id, order_updates, marketing_messages)"
    "       SELECT gen_random_uuid(), id, $2::boolean, $3::boolean FROM u"
    "        WHERE $2::boolean IS NOT NULL),"
    " m AS (INSERT INTO loyalty_members (id, user_id) SELECT gen_random_uuid(), id FROM u"
    "       RETURNING id),"
    " i AS (INSERT INTO loyalty_checkout_intents (id, member_id, external_id, kind)"
    "       SELECT gen_random_uuid(), id, 'intent-1', 'redemption' FROM m)"
    " SELECT id::text FROM u";

/* An order of user $1 and its orchestration, waiting at the payment stage, due at
 * now() + $2. */
static const char SQL_SEED_ORCH[] =
    "WITH o AS (INSERT INTO orders (id, order_number, user_id, total)"
    "           VALUES (gen_random_uuid(), 'SO-' || substr(md5(random()::text), 1, 12),"
    "                   $1::uuid, 129.00) RETURNING id, user_id)"
    " INSERT INTO checkout_orchestrations (id, order_id, user_id, current_stage, stage_status,"
    "                                      metadata, next_action_at)"
    " SELECT gen_random_uuid(), id, user_id, 'payment', 'waiting', '{\"k\":\"v\"}',"
    "        now() + $2::interval FROM o RETURNING id::text";

struct fixture {
    struct db *db;
    int users;
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    db_close(f->db);
    free(f);
    return 0;
}

/* Connects (or skips the test without the fixture) and empties the tables. */
static struct fixture *
fresh(void **state)
{
    struct fixture *f = *state;
    f->db = support_pg_connect("store");
    support_pg_script(f->db, SQL_CLEAN);
    return f;
}

static char *
seed_user(struct fixture *f, const char *order_updates, const char *marketing)
{
    char *email = support_printf("member%d@example.test", ++f->users);
    const char *params[] = {email, order_updates, marketing != NULL ? marketing : "false"};
    char *id = support_pg_value(f->db, SQL_SEED_USER, 3, params);
    assert_non_null(id);
    free(email);
    return id;
}

/* An orchestration of user (new user when NULL) due at now() + due ("-5 minutes"). */
static char *
seed_orch(struct fixture *f, const char *user, const char *due)
{
    char *own = user == NULL ? seed_user(f, NULL, NULL) : NULL;
    const char *params[] = {user != NULL ? user : own, due};
    char *id = support_pg_value(f->db, SQL_SEED_ORCH, 2, params);
    assert_non_null(id);
    free(own);
    return id;
}

/* One column of the orchestration's row (or the ledger's, or ...) as text. */
static char *
value_of(struct fixture *f, const char *sql, const char *id)
{
    const char *params[] = {id};
    return support_pg_value(f->db, sql, 1, params);
}

static void
assert_value(struct fixture *f, const char *sql, const char *id, const char *want)
{
    char *v = value_of(f, sql, id);
    if (want == NULL ? v != NULL : v == NULL || strcmp(v, want) != 0)
        fail_msg("%s [%s]: got %s, want %s", sql, id, v != NULL ? v : "NULL",
                 want != NULL ? want : "NULL");
    free(v);
}

#define LEDGER_STATUS "SELECT status FROM recovery_deliveries WHERE orchestration_id = $1"
#define EVENTS                                                                                     \
    "SELECT count(*)::text FROM checkout_orchestration_events WHERE orchestration_id = $1"

static struct store_batch
claim(struct fixture *f, const char *run, int limit, long long lease_ms, const char *order_id)
{
    struct store_batch b;
    struct err e;
    err_clear(&e);
    if (store_claim(f->db, run, limit, lease_ms, order_id, &b, &e) != ERR_OK)
        fail_msg("store_claim: %s", e.msg);
    return b;
}

static size_t
row_of(const struct store_batch *b, const char *id)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->rows[i].id, id) == 0)
            return i;
    fail_msg("%s not in the batch", id);
    return 0;
}

/* store_ledger_begin for rows idx[0..n) of b; ok[i] says which may be sent. */
static void
begin(struct fixture *f, const char *run, const struct store_batch *b, const size_t *idx, size_t n,
      enum policy_consent consent, long long window_ms, bool *ok)
{
    struct policy_consent_terms terms = policy_consent_terms(consent);
    char *mids[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++)
        mids[i] = support_printf("rw.%s.%s@shop.test", b->rows[idx[i]].id, b->rows[idx[i]].due_us);
    struct err e;
    err_clear(&e);
    if (store_ledger_begin(f->db, run, b, idx, mids, n, 3, 2, &terms, window_ms, ok, &e) != ERR_OK)
        fail_msg("store_ledger_begin: %s", e.msg);
    for (size_t i = 0; i < n; i++)
        free(mids[i]);
}

static bool
begin_one(struct fixture *f, const char *run, const struct store_batch *b, size_t row,
          enum policy_consent consent, long long window_ms)
{
    bool ok = false;
    begin(f, run, b, &row, 1, consent, window_ms, &ok);
    return ok;
}

static bool
progress(struct fixture *f, const char *run, const struct store_row *row, const char *status,
         int code)
{
    struct store_progress p = {row->id, row->due_at,           status,
                               code,    code ? "2.0.0" : NULL, code ? "queued as 1A2B" : NULL};
    bool applied = true;
    struct err e;
    err_clear(&e);
    if (store_ledger_progress(f->db, run, &p, 1, &applied, &e) != ERR_OK)
        fail_msg("store_ledger_progress: %s", e.msg);
    return applied;
}

static void
finish(struct fixture *f, const char *run, const struct store_batch *b, size_t row,
       const char *status, int code)
{
    struct store_delivery d = {row, status, code, "4.7.1", "try again later"};
    struct err e;
    err_clear(&e);
    if (store_ledger_finish(f->db, run, b, &d, 1, &e) != ERR_OK)
        fail_msg("store_ledger_finish: %s", e.msg);
}

/* store_finalise of one row with a small patch and payload; returns finalised, sets *lost. */
static bool
finalise(struct fixture *f, const char *run, const struct store_batch *b, size_t row,
         long long next_ms, bool *lost)
{
    json_t *patch = json_pack("{s:s}", "recoveryNote", "unit");
    json_t *payload = json_pack("{s:s}", "outcome", "sent");
    struct store_final fin = {row, patch, payload, next_ms};
    bool finalised = true;
    struct err e;
    err_clear(&e);
    int rc = store_finalise(f->db, run, b, &fin, 1, &finalised, lost, &e);
    json_decref(patch);
    json_decref(payload);
    if (rc != ERR_OK)
        fail_msg("store_finalise: %s", e.msg);
    return finalised;
}

static void
release(struct fixture *f, const char *run, const struct store_batch *b, size_t row, bool clear)
{
    struct err e;
    err_clear(&e);
    if (store_release(f->db, run, b, &row, 1, clear, &e) != ERR_OK)
        fail_msg("store_release: %s", e.msg);
}

/* ---- claim ------------------------------------------------------------------------------ */

static void
test_store_claim_leases_due_rows_to_the_run_and_reads_their_context(void **state)
{
    struct fixture *f = fresh(state);
    char *older = seed_orch(f, NULL, "-10 minutes");
    char *newer = seed_orch(f, NULL, "-5 minutes");
    char *later = seed_orch(f, NULL, "1 hour");

    struct store_batch b = claim(f, RUN_A, 10, LEASE_MS, NULL);
    assert_int_equal(b.n, 2);
    assert_string_equal(b.rows[0].id, older); /* oldest due first */
    assert_string_equal(b.rows[1].id, newer);
    const struct store_row *r = &b.rows[0];
    assert_string_equal(r->stage, "payment");
    assert_string_equal(r->email, "member1@example.test");
    assert_string_equal(r->display_name, "Member");
    assert_true(strncmp(r->order_number, "SO-", 3) == 0);
    assert_string_equal(r->total, "129.00");
    assert_string_equal(r->currency, "EUR");
    assert_non_null(r->order_id);
    assert_non_null(r->user_id);
    assert_true(r->has_member);
    assert_int_equal(r->pending_intents, 1);
    /* no preference row: read as unset (policy_consents says what that counts as) */
    assert_int_equal(r->order_updates, POLICY_PREF_UNSET);
    assert_int_equal(r->marketing_messages, POLICY_PREF_UNSET);
    assert_int_equal(r->prompts_sent, 0);
    assert_int_equal(r->deferrals, 0);
    assert_null(r->ledger_status);
    assert_int_equal(r->since_last_prompt_ms, -1);
    assert_true(r->age_ms >= 0);
    assert_non_null(r->due_at);
    assert_true(strlen(r->due_us) > 10);
    /* leased: the row is locked past now, and another run finds nothing to claim */
    assert_value(f, "SELECT locked_until > now() FROM checkout_orchestrations WHERE id = $1", older,
                 "t");
    struct store_batch other = claim(f, RUN_B, 10, LEASE_MS, NULL);
    assert_int_equal(other.n, 0);
    store_batch_free(&other);
    store_batch_free(&b);
    free(older);
    free(newer);
    free(later);
}

static void
test_store_claim_takes_at_most_the_limit_oldest_first(void **state)
{
    struct fixture *f = fresh(state);
    char *ids[3] = {seed_orch(f, NULL, "-3 minutes"), seed_orch(f, NULL, "-2 minutes"),
                    seed_orch(f, NULL, "-1 minutes")};
    struct store_batch b = claim(f, RUN_A, 2, LEASE_MS, NULL);
    assert_int_equal(b.n, 2);
    assert_string_equal(b.rows[0].id, ids[0]);
    assert_string_equal(b.rows[1].id, ids[1]);
    struct store_batch rest = claim(f, RUN_B, 2, LEASE_MS, NULL);
    assert_int_equal(rest.n, 1);
    assert_string_equal(rest.rows[0].id, ids[2]);
    store_batch_free(&b);
    store_batch_free(&rest);
    for (int i = 0; i < 3; i++)
        free(ids[i]);
}

static void
test_store_claim_of_one_order_takes_it_before_it_is_due_but_not_from_a_live_claim(void **state)
{
    struct fixture *f = fresh(state);
    char *later = seed_orch(f, NULL, "1 hour");
    char *order =
        value_of(f, "SELECT order_id::text FROM checkout_orchestrations WHERE id = $1", later);
    struct store_batch none = claim(f, RUN_A, 10, LEASE_MS, NULL);
    assert_int_equal(none.n, 0);
    struct store_batch b = claim(f, RUN_A, 1, LEASE_MS, order);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.rows[0].id, later);
    struct store_batch again = claim(f, RUN_B, 1, LEASE_MS, order);
    assert_int_equal(again.n, 0);
    store_batch_free(&none);
    store_batch_free(&b);
    store_batch_free(&again);
    free(order);
    free(later);
}

static void
test_store_peek_reads_due_rows_page_by_page_without_claiming(void **state)
{
    struct fixture *f = fresh(state);
    char *ids[3] = {seed_orch(f, NULL, "-3 minutes"), seed_orch(f, NULL, "-2 minutes"),
                    seed_orch(f, NULL, "-1 minutes")};
    struct store_batch page;
    struct err e;
    err_clear(&e);
    assert_int_equal(store_peek(f->db, 2, NULL, NULL, &page, &e), ERR_OK);
    assert_int_equal(page.n, 2);
    assert_string_equal(page.rows[0].id, ids[0]);
    struct store_batch next;
    assert_int_equal(store_peek(f->db, 2, NULL, &page.rows[1], &next, &e), ERR_OK);
    assert_int_equal(next.n, 1);
    assert_string_equal(next.rows[0].id, ids[2]);
    long due = 0;
    double oldest = 0;
    assert_int_equal(store_due_stats(f->db, &due, &oldest, &e), ERR_OK);
    assert_int_equal(due, 3);
    assert_true(oldest >= 170 && oldest < 3600);
    /* nothing was leased */
    struct store_batch b = claim(f, RUN_A, 10, LEASE_MS, NULL);
    assert_int_equal(b.n, 3);
    store_batch_free(&page);
    store_batch_free(&next);
    store_batch_free(&b);
    for (int i = 0; i < 3; i++)
        free(ids[i]);
}

/* ---- finalise and release --------------------------------------------------------------- */

static void
test_store_finalise_records_the_sweep_and_moves_the_next_action(void **state)
{
    struct fixture *f = fresh(state);
    char *id = seed_orch(f, NULL, "-5 minutes");
    struct store_batch b = claim(f, RUN_A, 10, LEASE_MS, NULL);
    assert_int_equal(b.n, 1);
    bool lost = true;
    assert_true(finalise(f, RUN_A, &b, 0, HOUR_MS, &lost));
    assert_false(lost);
    assert_value(f, EVENTS, id, "1");
    assert_value(f,
                 "SELECT transition_note || ' ' || (payload::json->>'outcome') || ' ' ||"
                 "       status::text FROM checkout_orchestration_events"
                 " WHERE orchestration_id = $1",
                 id, "Recovery sweep executed sent waiting");
    /* metadata merged: the storefront's keys stay, the patch and the sweep's stamp join */
    assert_value(f,
                 "SELECT (metadata::json->>'k') || (metadata::json->>'recoveryNote') ||"
                 "       (metadata::json->>'lastRecoveryStage')"
                 "  FROM checkout_orchestrations WHERE id = $1",
                 id, "vunitpayment");
    assert_value(f,
                 "SELECT next_action_at > now() + interval '59 minutes'"
                 "   AND next_action_at < now() + interval '61 minutes'"
                 "   AND stage_status = 'waiting' FROM checkout_orchestrations WHERE id = $1",
                 id, "t");
    /* the claim is spent: finalising again does nothing */
    assert_false(finalise(f, RUN_A, &b, 0, HOUR_MS, &lost));
    assert_true(lost);
    assert_value(f, EVENTS, id, "1");
    store_batch_free(&b);
    free(id);
}

static void
test_store_finalise_with_a_negative_delay_stops_the_nudges(void **state)
{
    struct fixture *f = fresh(state);
    char *id = seed_orch(f, NULL, "-5 minutes");
    struct store_batch b = claim(f, RUN_A, 10, LEASE_MS, NULL);
    bool lost = true;
    assert_true(finalise(f, RUN_A, &b, 0, -1, &lost));
    assert_value(f,
                 "SELECT coalesce(next_action_at::text, 'none') || ' ' ||"
                 "       coalesce(locked_until::text, 'none')"
                 "  FROM checkout_orchestrations WHERE id = $1",
                 id, "none none");
    store_batch_free(&b);
    free(id);
}

static void
test_store_row_claimed_by_another_run_is_not_finalised(void **state)
{
    struct fixture *f = fresh(state);
    char *id = seed_orch(f, NULL, "-5 minutes");
    /* run A's lease runs out while it is slow; run B claims the row */
    struct store_batch a = claim(f, RUN_A, 10, 1, NULL);
    assert_int_equal(a.n, 1);
    usleep(50 * 1000);
    struct store_batch b = claim(f, RUN_B, 10, LEASE_MS, NULL);
    assert_int_equal(b.n, 1);

    /* A may neither queue a delivery nor finalise */
    assert_false(begin_one(f, RUN_A, &a, 0, POLICY_CONSENT_ORDER_UPDATES, 0));
    assert_value(f, LEDGER_STATUS, id, NULL);
    bool lost = false;
    assert_false(finalise(f, RUN_A, &a, 0, HOUR_MS, &lost));
    assert_true(lost);
    assert_value(f, EVENTS, id, "0");
    assert_value(f, "SELECT next_action_at < now() FROM checkout_orchestrations WHERE id = $1", id,
                 "t");
    /* B, which holds the claim, does */
    assert_true(finalise(f, RUN_B, &b, 0, HOUR_MS, &lost));
    assert_false(lost);
    assert_value(f, EVENTS, id, "1");
    store_batch_free(&a);
    store_batch_free(&b);
    free(id);
}

static void
test_store_release_with_clear_lease_makes_the_row_due_again(void **state)
{
    struct fixture *f = fresh(state);
    char *id = seed_orch(f, NULL, "-5 minutes");
    struct store_batch a = claim(f, RUN_A, 10, LEASE_MS, NULL);
    release(f, RUN_A, &a, 0, true);
    struct store_batch b = claim(f, RUN_B, 10, LEASE_MS, NULL);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.rows[0].id, id);
    /* the released claim fences A out */
    bool lost = false;
    assert_false(finalise(f, RUN_A, &a, 0, HOUR_MS, &lost));
    assert_true(lost);
    store_batch_free(&a);
    store_batch_free(&b);
    free(id);
}

static void
test_store_release_keeping_the_lease_holds_the_row_until_it_runs_out(void **state)
{
    struct fixture *f = fresh(state);
    char *id = seed_orch(f, NULL, "-5 minutes");
    struct store_batch a = claim(f, RUN_A, 10, 400, NULL);
    release(f, RUN_A, &a, 0, false);
    struct store_batch none = claim(f, RUN_B, 10, LEASE_MS, NULL);
    assert_int_equal(none.n, 0);
    usleep(600 * 1000);
    struct store_batch b = claim(f, RUN_B, 10, LEASE_MS, NULL);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.rows[0].id, id);
    store_batch_free(&a);
    store_batch_free(&none);
    store_batch_free(&b);
    free(id);
}

/* ---- the ledger ------------------------------------------------------------------------- */

static void
test_store_ledger_begin_refuses_a_member_who_opted_out_after_the_claim(void **state)
{
    struct fixture *f = fresh(state);
    char *stays = seed_orch(f, NULL, "-5 minutes");
    char *user = seed_user(f, "true", "false");
    char *leaves = seed_orch(f, user, "-4 minutes");
    struct store_batch b = claim(f, RUN_A, 10, LEASE_MS, NULL);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.rows[1].order_updates, POLICY_PREF_ON); /* consenting when claimed */
    /* the member unsubscribes between the claim and the send */
    const char *params[] = {user};
    free(support_pg_value(f->db,
                          "UPDATE notification_preferences SET order_updates = false"
                          " WHERE user_id = $1::uuid",
                          1, params));
    size_t idx[2] = {row_of(&b, stays), row_of(&b, leaves)};
    bool ok[2] = {false, true};
    begin(f, RUN_A, &b, idx, 2, POLICY_CONSENT_ORDER_UPDATES, 0, ok);
    assert_true(ok[0]);
    assert_false(ok[1]);
    assert_value(f, LEDGER_STATUS, stays, "queued");
    assert_value(f,
                 "SELECT run_id || ' ' || attempts FROM recovery_deliveries"
                 " WHERE orchestration_id = $1",
                 stays, RUN_A " 1");
    assert_value(f, LEDGER_STATUS, leaves, NULL);
    store_batch_free(&b);
    free(stays);
    free(leaves);
    free(user);
}

static void
test_store_ledger_begin_checks_the_preference_the_consent_basis_names(void **state)
{
    struct fixture *f = fresh(state);
    char *orders_only = seed_user(f, "true", "false");
    char *marketing_only = seed_user(f, "false", "true");
    char *x = seed_orch(f, orders_only, "-5 minutes");
    char *y = seed_orch(f, marketing_only, "-4 minutes");
    struct store_batch b = claim(f, RUN_A, 10, LEASE_MS, NULL);
    size_t ix = row_of(&b, x), iy = row_of(&b, y);
    assert_false(begin_one(f, RUN_A, &b, ix, POLICY_CONSENT_MARKETING, 0));
    assert_false(begin_one(f, RUN_A, &b, ix, POLICY_CONSENT_BOTH, 0));
    assert_false(begin_one(f, RUN_A, &b, iy, POLICY_CONSENT_ORDER_UPDATES, 0));
    assert_false(begin_one(f, RUN_A, &b, iy, POLICY_CONSENT_BOTH, 0));
    assert_true(begin_one(f, RUN_A, &b, ix, POLICY_CONSENT_ORDER_UPDATES, 0));
    assert_true(begin_one(f, RUN_A, &b, iy, POLICY_CONSENT_MARKETING, 0));
    store_batch_free(&b);
    free(x);
    free(y);
    free(orders_only);
    free(marketing_only);
}

static void
test_store_ledger_begin_counts_an_unset_preference_as_policy_does(void **state)
{
    struct fixture *f = fresh(state);
    /* no preference row: order updates count as on, marketing as off (policy_consents) */
    char *id = seed_orch(f, NULL, "-5 minutes");
    struct store_batch b = claim(f, RUN_A, 10, LEASE_MS, NULL);
    size_t i = row_of(&b, id);
    assert_int_equal(b.rows[i].order_updates, POLICY_PREF_UNSET);
    assert_int_equal(b.rows[i].marketing_messages, POLICY_PREF_UNSET);
    assert_false(begin_one(f, RUN_A, &b, i, POLICY_CONSENT_MARKETING, 0));
    assert_false(begin_one(f, RUN_A, &b, i, POLICY_CONSENT_BOTH, 0));
    assert_true(begin_one(f, RUN_A, &b, i, POLICY_CONSENT_ORDER_UPDATES, 0));
    store_batch_free(&b);
    free(id);
}

static void
test_store_ledger_begin_holds_back_a_second_prompt_to_the_same_member(void **state)
{
    struct fixture *f = fresh(state);
    char *user = seed_user(f, NULL, NULL);
    char *first = seed_orch(f, user, "-5 minutes");
    char *second = seed_orch(f, user, "-4 minutes");
    struct store_batch b = claim(f, RUN_A, 10, LEASE_MS, NULL);
    assert_int_equal(b.n, 2);
    assert_true(begin_one(f, RUN_A, &b, row_of(&b, first), POLICY_CONSENT_ORDER_UPDATES, HOUR_MS));
    /* another orchestration, same member, inside the window: not now */
    assert_false(
        begin_one(f, RUN_A, &b, row_of(&b, second), POLICY_CONSENT_ORDER_UPDATES, HOUR_MS));
    /* without a window it may go */
    assert_true(begin_one(f, RUN_A, &b, row_of(&b, second), POLICY_CONSENT_ORDER_UPDATES, 0));
    store_batch_free(&b);
    free(first);
    free(second);
    free(user);
}

static void
test_store_ledger_progress_marks_sending_then_the_reply_for_the_run_only(void **state)
{
    struct fixture *f = fresh(state);
    char *id = seed_orch(f, NULL, "-5 minutes");
    struct store_batch b = claim(f, RUN_A, 10, LEASE_MS, NULL);
    assert_true(begin_one(f, RUN_A, &b, 0, POLICY_CONSENT_ORDER_UPDATES, 0));
    const struct store_row *r = &b.rows[0];

    assert_false(progress(f, RUN_B, r, "sending", 0)); /* not B's row */
    assert_false(progress(f, RUN_A, r, "sent", 250));  /* a reply needs a 'sending' mark */
    assert_value(f, LEDGER_STATUS, id, "queued");
    assert_true(progress(f, RUN_A, r, "sending", 0));
    assert_value(f, LEDGER_STATUS, id, "sending");
    assert_false(progress(f, RUN_B, r, "sent", 250));
    assert_true(progress(f, RUN_A, r, "sent", 250));
    assert_value(f,
                 "SELECT status || ' ' || smtp_code || ' ' || smtp_enhanced || ' ' ||"
                 "       (sent_at IS NOT NULL) FROM recovery_deliveries"
                 " WHERE orchestration_id = $1",
                 id, "sent 250 2.0.0 true");
    /* delivered is final */
    assert_false(progress(f, RUN_A, r, "sending", 0));
    assert_value(f, LEDGER_STATUS, id, "sent");
    store_batch_free(&b);
    free(id);
}

static void
test_store_ledger_finish_records_the_run_rows_and_the_orphans_of_any(void **state)
{
    struct fixture *f = fresh(state);
    char *mine = seed_orch(f, NULL, "-5 minutes");
    char *orphan = seed_orch(f, NULL, "-4 minutes");
    struct store_batch b = claim(f, RUN_A, 10, LEASE_MS, NULL);
    size_t im = row_of(&b, mine), io = row_of(&b, orphan);
    assert_true(begin_one(f, RUN_A, &b, im, POLICY_CONSENT_ORDER_UPDATES, 0));
    assert_true(begin_one(f, RUN_A, &b, io, POLICY_CONSENT_ORDER_UPDATES, 0));

    finish(f, RUN_B, &b, im, "deferred", 451); /* another run's rows stay as they are */
    assert_value(f, LEDGER_STATUS, mine, "queued");
    finish(f, RUN_A, &b, im, "deferred", 451);
    assert_value(f,
                 "SELECT status || ' ' || smtp_code || ' ' || smtp_enhanced || ' ' ||"
                 "       smtp_text FROM recovery_deliveries WHERE orchestration_id = $1",
                 mine, "deferred 451 4.7.1 try again later");
    /* an outcome already recorded is not written over */
    finish(f, RUN_A, &b, im, "sent", 250);
    assert_value(f, LEDGER_STATUS, mine, "deferred");
    /* without a run id: the rows a dead worker left, whoever's they are */
    finish(f, NULL, &b, io, "unknown", 0);
    assert_value(f, LEDGER_STATUS, orphan, "unknown");
    store_batch_free(&b);
    free(mine);
    free(orphan);
}

static void
test_store_claim_reads_what_the_ledger_says_about_the_occurrence(void **state)
{
    struct fixture *f = fresh(state);
    char *id = seed_orch(f, NULL, "-5 minutes");
    struct store_batch a = claim(f, RUN_A, 10, LEASE_MS, NULL);
    assert_true(begin_one(f, RUN_A, &a, 0, POLICY_CONSENT_ORDER_UPDATES, 0));
    assert_true(progress(f, RUN_A, &a.rows[0], "sending", 0));
    assert_true(progress(f, RUN_A, &a.rows[0], "sent", 250));
    /* the sweep stopped before finalising; the row comes back */
    release(f, RUN_A, &a, 0, true);
    struct store_batch b = claim(f, RUN_B, 10, LEASE_MS, NULL);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.rows[0].due_at, a.rows[0].due_at); /* the same occurrence */
    assert_string_equal(b.rows[0].ledger_status, "sent");
    assert_int_equal(b.rows[0].ledger_attempts, 1);
    assert_int_equal(b.rows[0].prompts_sent, 1);
    assert_true(b.rows[0].since_last_prompt_ms >= 0);
    store_batch_free(&a);
    store_batch_free(&b);
    free(id);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_store_claim_leases_due_rows_to_the_run_and_reads_their_context),
        T(test_store_claim_takes_at_most_the_limit_oldest_first),
        T(test_store_claim_of_one_order_takes_it_before_it_is_due_but_not_from_a_live_claim),
        T(test_store_peek_reads_due_rows_page_by_page_without_claiming),
        T(test_store_finalise_records_the_sweep_and_moves_the_next_action),
        T(test_store_finalise_with_a_negative_delay_stops_the_nudges),
        T(test_store_row_claimed_by_another_run_is_not_finalised),
        T(test_store_release_with_clear_lease_makes_the_row_due_again),
        T(test_store_release_keeping_the_lease_holds_the_row_until_it_runs_out),
        T(test_store_ledger_begin_refuses_a_member_who_opted_out_after_the_claim),
        T(test_store_ledger_begin_checks_the_preference_the_consent_basis_names),
        T(test_store_ledger_begin_counts_an_unset_preference_as_policy_does),
        T(test_store_ledger_begin_holds_back_a_second_prompt_to_the_same_member),
        T(test_store_ledger_progress_marks_sending_then_the_reply_for_the_run_only),
        T(test_store_ledger_finish_records_the_run_rows_and_the_orphans_of_any),
        T(test_store_claim_reads_what_the_ledger_says_about_the_occurrence),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
