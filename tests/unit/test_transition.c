/* Unit tests of the storefront's state machine (worker/transition.c). */

#include "support.h"

#include <stdio.h>
#include <string.h>

#include "migrations.h"
#include "transition.h"

static void
test_transition_completed_advances_from_the_current_stage_to_not_started(void **state)
{
    struct transition_result r = transition_apply(
        TRANSITION_STAGE_VERIFICATION, TRANSITION_STAGE_PAYMENT, TRANSITION_STATUS_COMPLETED);
    assert_int_equal(r.stage, TRANSITION_STAGE_LOYALTY_HOLD);
    assert_int_equal(r.status, TRANSITION_STATUS_NOT_STARTED);
    assert_int_equal(r.next_action_at, TRANSITION_SET_NULL);
    assert_int_equal(r.locked_until, TRANSITION_SET_NULL);
    assert_int_equal(r.event_stage, TRANSITION_STAGE_PAYMENT); /* the event names the stage given */
    assert_int_equal(r.event_status, TRANSITION_STATUS_COMPLETED);
}

static void
test_transition_completed_at_fulfillment_completes_the_orchestration(void **state)
{
    struct transition_result r = transition_apply(
        TRANSITION_STAGE_FULFILLMENT, TRANSITION_STAGE_FULFILLMENT, TRANSITION_STATUS_COMPLETED);
    assert_int_equal(r.stage, TRANSITION_STAGE_COMPLETED);
    assert_int_equal(r.status, TRANSITION_STATUS_COMPLETED);
    assert_int_equal(r.completed_at, TRANSITION_SET_NOW);
    r = transition_apply(TRANSITION_STAGE_COMPLETED, TRANSITION_STAGE_COMPLETED,
                         TRANSITION_STATUS_COMPLETED);
    assert_int_equal(r.stage, TRANSITION_STAGE_COMPLETED);
    assert_int_equal(r.completed_at, TRANSITION_SET_NOW_IF_NULL);
}

static void
test_transition_waiting_sets_next_action_and_lease_to_the_given_time(void **state)
{
    struct transition_result r = transition_apply(
        TRANSITION_STAGE_PAYMENT, TRANSITION_STAGE_VERIFICATION, TRANSITION_STATUS_WAITING);
    assert_int_equal(r.stage, TRANSITION_STAGE_VERIFICATION);
    assert_int_equal(r.status, TRANSITION_STATUS_WAITING);
    assert_int_equal(r.next_action_at, TRANSITION_SET_GIVEN);
    assert_int_equal(r.locked_until, TRANSITION_SET_GIVEN);
}

static void
test_transition_in_progress_sets_started_at_once(void **state)
{
    struct transition_result r = transition_apply(
        TRANSITION_STAGE_PAYMENT, TRANSITION_STAGE_PAYMENT, TRANSITION_STATUS_IN_PROGRESS);
    assert_int_equal(r.started_at, TRANSITION_SET_NOW_IF_NULL);
    assert_int_equal(r.next_action_at, TRANSITION_SET_NULL);
    assert_int_equal(r.locked_until, TRANSITION_SET_NULL);
}

static void
test_transition_failed_keeps_stage_and_next_action(void **state)
{
    struct transition_result r = transition_apply(
        TRANSITION_STAGE_LOYALTY_HOLD, TRANSITION_STAGE_PAYMENT, TRANSITION_STATUS_FAILED);
    assert_int_equal(r.stage, TRANSITION_STAGE_LOYALTY_HOLD);
    assert_int_equal(r.status, TRANSITION_STATUS_FAILED);
    assert_int_equal(r.failed_at, TRANSITION_SET_NOW);
    assert_int_equal(r.next_action_at, TRANSITION_SET_KEEP);
    assert_int_equal(r.locked_until, TRANSITION_SET_NULL);
}

static void
test_transition_names_round_trip_and_reject_unknown(void **state)
{
    assert_int_equal(transition_stage_parse("loyalty_hold"), TRANSITION_STAGE_LOYALTY_HOLD);
    assert_string_equal(transition_stage_name(TRANSITION_STAGE_FULFILLMENT), "fulfillment");
    assert_int_equal(transition_status_parse("WAITING"), TRANSITION_STATUS_INVALID);
    assert_int_equal(transition_stage_parse(NULL), TRANSITION_STAGE_INVALID);
    assert_string_equal(transition_status_name(TRANSITION_STATUS_NOT_STARTED), "not_started");
}

/* The labels of `CREATE TYPE type AS ENUM (...)` in the migrations, as one comma-separated
 * line without quotes or spaces, into out. */
static void
enum_labels(const char *type, char *out, size_t size)
{
    char head[128];
    snprintf(head, sizeof head, "CREATE TYPE %s AS ENUM", type);
    const char *p = NULL;
    for (unsigned i = 0; p == NULL && i < migrations_embedded_count; i++)
        p = strstr(migrations_embedded[i].sql, head);
    assert_non_null(p);
    p = strchr(p, '(');
    assert_non_null(p);
    size_t n = 0;
    for (p++; *p != '\0' && *p != ')' && n + 1 < size; p++)
        if (*p != '\'' && *p != ' ' && *p != '\n')
            out[n++] = *p;
    out[n] = '\0';
}

/* The C lists against the storefront's enums: same labels, same order (the order is what
 * makes `completed` advance to the next stage). */
static void
test_transition_labels_match_the_storefront_enums(void **state)
{
    char want[256], got[256] = "";
    enum_labels("checkout_orchestration_stage_enum", want, sizeof want);
    for (int i = 0; i < TRANSITION_STAGE_COUNT; i++) {
        strcat(got, i > 0 ? "," : "");
        strcat(got, transition_stage_name((enum transition_stage)i));
    }
    assert_string_equal(got, want);
    got[0] = '\0';
    enum_labels("checkout_orchestration_status_enum", want, sizeof want);
    for (int i = 0; i < TRANSITION_STATUS_COUNT; i++) {
        strcat(got, i > 0 ? "," : "");
        strcat(got, transition_status_name((enum transition_status)i));
    }
    assert_string_equal(got, want);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transition_completed_advances_from_the_current_stage_to_not_started),
        cmocka_unit_test(test_transition_completed_at_fulfillment_completes_the_orchestration),
        cmocka_unit_test(test_transition_waiting_sets_next_action_and_lease_to_the_given_time),
        cmocka_unit_test(test_transition_in_progress_sets_started_at_once),
        cmocka_unit_test(test_transition_failed_keeps_stage_and_next_action),
        cmocka_unit_test(test_transition_names_round_trip_and_reject_unknown),
        cmocka_unit_test(test_transition_labels_match_the_storefront_enums),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
