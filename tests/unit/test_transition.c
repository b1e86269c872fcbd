/* Unit tests of the storefront's state machine (worker/transition.c). */

#include "support.h"

#include "transition.h"

static void
test_transition_completed_advances_from_the_current_stage_to_not_started(void **state)
{
    struct transition_result r = transition_apply(STAGE_VERIFICATION, STAGE_PAYMENT,
                                                  STATUS_COMPLETED);
    assert_int_equal(r.stage, STAGE_LOYALTY_HOLD);
    assert_int_equal(r.status, STATUS_NOT_STARTED);
    assert_int_equal(r.next_action_at, SET_NULL);
    assert_int_equal(r.locked_until, SET_NULL);
    assert_int_equal(r.event_stage, STAGE_PAYMENT); /* the event names the stage given */
    assert_int_equal(r.event_status, STATUS_COMPLETED);
}

static void
test_transition_completed_at_fulfillment_completes_the_orchestration(void **state)
{
    struct transition_result r = transition_apply(STAGE_FULFILLMENT, STAGE_FULFILLMENT,
                                                  STATUS_COMPLETED);
    assert_int_equal(r.stage, STAGE_COMPLETED);
    assert_int_equal(r.status, STATUS_COMPLETED);
    assert_int_equal(r.completed_at, SET_NOW);
    r = transition_apply(STAGE_COMPLETED, STAGE_COMPLETED, STATUS_COMPLETED);
    assert_int_equal(r.stage, STAGE_COMPLETED);
    assert_int_equal(r.completed_at, SET_NOW_IF_NULL);
}

static void
test_transition_waiting_sets_next_action_and_lease_to_the_given_time(void **state)
{
    struct transition_result r = transition_apply(STAGE_PAYMENT, STAGE_VERIFICATION,
                                                  STATUS_WAITING);
    assert_int_equal(r.stage, STAGE_VERIFICATION);
    assert_int_equal(r.status, STATUS_WAITING);
    assert_int_equal(r.next_action_at, SET_GIVEN);
    assert_int_equal(r.locked_until, SET_GIVEN);
}

static void
test_transition_in_progress_sets_started_at_once(void **state)
{
    struct transition_result r = transition_apply(STAGE_PAYMENT, STAGE_PAYMENT,
                                                  STATUS_IN_PROGRESS);
    assert_int_equal(r.started_at, SET_NOW_IF_NULL);
    assert_int_equal(r.next_action_at, SET_NULL);
    assert_int_equal(r.locked_until, SET_NULL);
}

static void
test_transition_failed_keeps_stage_and_next_action(void **state)
{
    struct transition_result r = transition_apply(STAGE_LOYALTY_HOLD, STAGE_PAYMENT,
                                                  STATUS_FAILED);
    assert_int_equal(r.stage, STAGE_LOYALTY_HOLD);
    assert_int_equal(r.status, STATUS_FAILED);
    assert_int_equal(r.failed_at, SET_NOW);
    assert_int_equal(r.next_action_at, SET_KEEP);
    assert_int_equal(r.locked_until, SET_NULL);
}

static void
test_transition_names_round_trip_and_reject_unknown(void **state)
{
    assert_int_equal(transition_stage_parse("loyalty_hold"), STAGE_LOYALTY_HOLD);
    assert_string_equal(transition_stage_name(STAGE_FULFILLMENT), "fulfillment");
    assert_int_equal(transition_status_parse("WAITING"), STATUS_INVALID);
    assert_int_equal(transition_stage_parse(NULL), STAGE_INVALID);
    assert_string_equal(transition_status_name(STATUS_NOT_STARTED), "not_started");
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
