/* Unit tests of the sweep's pure decisions (worker/policy.c). */

#include "support.h"

#include "policy.h"

static const struct policy_rules rules = {.max_prompts = 3, .on_unknown = POLICY_UNKNOWN_SKIP};
static const struct policy_timing timing = {
    .retry_interval_ms = 6LL * 3600 * 1000,
    .backoff_base_ms = 5LL * 60 * 1000,
    .backoff_max_ms = 2LL * 3600 * 1000,
};

static struct policy_facts
eligible(void)
{
    struct policy_facts f = {
        .order_found = true,
        .has_user = true,
        .email_valid = true,
        .opted_out = false,
        .has_member = true,
        .pending_intents = 1,
    };
    return f;
}

static void
test_policy_eligible_member_is_sent_a_prompt(void **state)
{
    struct policy_facts f = eligible();
    assert_int_equal(policy_decide(&f, &rules), POLICY_SEND);
}

static void
test_policy_missing_order_escalates_and_stops(void **state)
{
    struct policy_facts f = eligible();
    f.order_found = false;
    assert_int_equal(policy_decide(&f, &rules), POLICY_ESCALATE_NO_ORDER);
    struct policy_final r =
        policy_finalise(POLICY_ESCALATE_NO_ORDER, POLICY_DELIVERY_NONE, &f, &timing, 0);
    assert_true(r.escalate);
    assert_true(r.stop);
}

static void
test_policy_order_without_user_escalates_with_the_storefront_note(void **state)
{
    struct policy_facts f = eligible();
    f.has_user = false;
    assert_int_equal(policy_decide(&f, &rules), POLICY_ESCALATE_NO_USER);
    struct policy_final r =
        policy_finalise(POLICY_ESCALATE_NO_USER, POLICY_DELIVERY_NONE, &f, &timing, 0);
    assert_true(r.escalate);
    assert_false(r.stop);
    assert_string_equal(r.note, "Missing member for checkout recovery");
    assert_int_equal(r.next_ms, timing.retry_interval_ms);
}

static void
test_policy_no_member_or_no_intents_gives_the_note_and_no_email(void **state)
{
    struct policy_facts f = eligible();
    f.has_member = false;
    assert_int_equal(policy_decide(&f, &rules), POLICY_NO_INTENTS);
    f = eligible();
    f.pending_intents = 0;
    assert_int_equal(policy_decide(&f, &rules), POLICY_NO_INTENTS);
    struct policy_final r =
        policy_finalise(POLICY_NO_INTENTS, POLICY_DELIVERY_NONE, &f, &timing, 0);
    assert_string_equal(r.note, "No pending checkout intents");
    assert_false(r.escalate);
}

static void
test_policy_opt_out_wins_over_everything_that_would_send(void **state)
{
    struct policy_facts f = eligible();
    f.opted_out = true;
    assert_int_equal(policy_decide(&f, &rules), POLICY_OPT_OUT);
    struct policy_final r = policy_finalise(POLICY_OPT_OUT, POLICY_DELIVERY_NONE, &f, &timing, 0);
    assert_string_equal(r.outcome, "skipped_opt_out");
}

static void
test_policy_prompt_cap_stops_nudging(void **state)
{
    struct policy_facts f = eligible();
    f.prompts_sent = 3;
    assert_int_equal(policy_decide(&f, &rules), POLICY_MAX_PROMPTS);
    f.prompts_sent = 2;
    assert_int_equal(policy_decide(&f, &rules), POLICY_SEND);
    struct policy_final r =
        policy_finalise(POLICY_MAX_PROMPTS, POLICY_DELIVERY_NONE, &f, &timing, 0);
    assert_true(r.stop);
}

static void
test_policy_invalid_address_is_skipped_and_escalated(void **state)
{
    struct policy_facts f = eligible();
    f.email_valid = false;
    assert_int_equal(policy_decide(&f, &rules), POLICY_INVALID_ADDRESS);
    struct policy_final r =
        policy_finalise(POLICY_INVALID_ADDRESS, POLICY_DELIVERY_NONE, &f, &timing, 0);
    assert_true(r.escalate);
}

static void
test_policy_ledger_sent_is_never_sent_again(void **state)
{
    struct policy_facts f = eligible();
    f.ledger_status = POLICY_LEDGER_SENT;
    assert_int_equal(policy_decide(&f, &rules), POLICY_ALREADY_SENT);
    /* even with the resend policy */
    struct policy_rules resend = {.max_prompts = 3, .on_unknown = POLICY_UNKNOWN_RESEND};
    assert_int_equal(policy_decide(&f, &resend), POLICY_ALREADY_SENT);
}

static void
test_policy_ledger_failed_is_finalised_as_failed_without_sending(void **state)
{
    struct policy_facts f = eligible();
    f.ledger_status = POLICY_LEDGER_FAILED;
    assert_int_equal(policy_decide(&f, &rules), POLICY_ALREADY_FAILED);
    struct policy_final r =
        policy_finalise(POLICY_ALREADY_FAILED, POLICY_DELIVERY_NONE, &f, &timing, 0);
    assert_string_equal(r.outcome, "failed");
    assert_true(r.escalate);
    assert_true(r.stop);
}

static void
test_policy_orphaned_sending_row_is_not_resent_under_skip(void **state)
{
    struct policy_facts f = eligible();
    f.ledger_status = POLICY_LEDGER_SENDING;
    f.ledger_attempts = 1;
    assert_int_equal(policy_decide(&f, &rules), POLICY_ORPHANED);
    struct policy_final r = policy_finalise(POLICY_ORPHANED, POLICY_DELIVERY_NONE, &f, &timing, 0);
    assert_string_equal(r.outcome, "delivery_unknown");
}

static void
test_policy_in_doubt_rows_are_resent_up_to_their_limit(void **state)
{
    /* left 'sending' by a stopped worker: each stop is its own event, a few tries */
    struct policy_rules resend = {.max_prompts = 3, .on_unknown = POLICY_UNKNOWN_RESEND};
    struct policy_facts f = eligible();
    f.ledger_status = POLICY_LEDGER_SENDING;
    f.ledger_attempts = 2;
    assert_int_equal(policy_decide(&f, &resend), POLICY_SEND);
    f.ledger_attempts = 3;
    assert_int_equal(policy_decide(&f, &resend), POLICY_ORPHANED);
    /* 'unknown': the relay dropped after the data; resent once */
    f.ledger_status = POLICY_LEDGER_UNKNOWN;
    f.ledger_attempts = 1;
    assert_int_equal(policy_decide(&f, &resend), POLICY_SEND);
    f.ledger_attempts = 2;
    assert_int_equal(policy_decide(&f, &resend), POLICY_ORPHANED);
}

static void
test_policy_deferral_backs_off_exponentially_with_bounded_jitter(void **state)
{
    struct policy_facts f = eligible();
    f.deferrals = 0;
    struct policy_final r = policy_finalise(POLICY_SEND, POLICY_DELIVERY_DEFERRED, &f, &timing, 0);
    assert_int_equal(r.next_ms, timing.backoff_base_ms);
    f.deferrals = 2;
    r = policy_finalise(POLICY_SEND, POLICY_DELIVERY_DEFERRED, &f, &timing, 0);
    assert_int_equal(r.next_ms, 4 * timing.backoff_base_ms);
    r = policy_finalise(POLICY_SEND, POLICY_DELIVERY_DEFERRED, &f, &timing, 0.999);
    assert_true(r.next_ms > 4 * timing.backoff_base_ms);
    assert_true(r.next_ms <= 4 * timing.backoff_base_ms * 12 / 10);
    f.deferrals = 40; /* capped, and no overflow */
    r = policy_finalise(POLICY_SEND, POLICY_DELIVERY_DEFERRED, &f, &timing, 0);
    assert_int_equal(r.next_ms, timing.backoff_max_ms);
    assert_string_equal(r.outcome, "deferred");
    assert_false(r.stop);
}

static void
test_policy_permanent_refusal_escalates_and_stops(void **state)
{
    struct policy_facts f = eligible();
    struct policy_final r = policy_finalise(POLICY_SEND, POLICY_DELIVERY_FAILED, &f, &timing, 0);
    assert_string_equal(r.outcome, "failed");
    assert_true(r.escalate);
    assert_true(r.stop);
}

static void
test_policy_sent_moves_next_action_by_the_retry_interval(void **state)
{
    struct policy_facts f = eligible();
    struct policy_final r = policy_finalise(POLICY_SEND, POLICY_DELIVERY_SENT, &f, &timing, 0.5);
    assert_string_equal(r.outcome, "sent");
    assert_int_equal(r.next_ms, timing.retry_interval_ms);
    assert_null(r.note);
}

static void
test_policy_quiet_hours_defer_to_their_end(void **state)
{
    /* 22:00-08:00, wrapping midnight */
    assert_int_equal(policy_quiet_wait_ms(22 * 60, 8 * 60, 23 * 3600), 9LL * 3600 * 1000);
    assert_int_equal(policy_quiet_wait_ms(22 * 60, 8 * 60, 7 * 3600 + 59 * 60), 60 * 1000);
    assert_int_equal(policy_quiet_wait_ms(22 * 60, 8 * 60, 8 * 3600), 0);
    assert_int_equal(policy_quiet_wait_ms(22 * 60, 8 * 60, 12 * 3600), 0);
    /* 01:00-06:00, within one day */
    assert_int_equal(policy_quiet_wait_ms(60, 360, 0), 0);
    assert_int_equal(policy_quiet_wait_ms(60, 360, 3600), 5LL * 3600 * 1000);
    /* equal ends: no quiet hours */
    assert_int_equal(policy_quiet_wait_ms(0, 0, 100), 0);

    struct policy_facts f = eligible();
    f.quiet_wait_ms = 3600 * 1000;
    f.cap_wait_ms = 10;
    assert_int_equal(policy_decide(&f, &rules), POLICY_QUIET_HOURS);
    struct policy_final r =
        policy_finalise(POLICY_QUIET_HOURS, POLICY_DELIVERY_NONE, &f, &timing, 0.5);
    assert_true(r.next_ms >= f.quiet_wait_ms && r.next_ms <= f.quiet_wait_ms + 600000);
    assert_false(r.stop);
    assert_string_equal(r.outcome, "quiet_hours");
}

static void
test_policy_member_cap_defers_and_opt_out_still_wins(void **state)
{
    struct policy_facts f = eligible();
    f.cap_wait_ms = 5000;
    assert_int_equal(policy_decide(&f, &rules), POLICY_MEMBER_CAPPED);
    struct policy_final r =
        policy_finalise(POLICY_MEMBER_CAPPED, POLICY_DELIVERY_NONE, &f, &timing, 0);
    assert_int_equal(r.next_ms, 5000);
    assert_string_equal(r.outcome, "member_capped");
    f.opted_out = true;
    assert_int_equal(policy_decide(&f, &rules), POLICY_OPT_OUT);
}

#define DAY_MS (24LL * 3600 * 1000)

static void
test_policy_give_up_after_the_recovery_window_stops_nudging_once(void **state)
{
    struct policy_rules window = {
        .max_prompts = 3, .on_unknown = POLICY_UNKNOWN_SKIP, .give_up_after_ms = 30 * DAY_MS};
    struct policy_facts f = eligible();
    f.age_ms = 40 * DAY_MS;
    assert_int_equal(policy_decide(&f, &window), POLICY_GIVE_UP);
    struct policy_final r = policy_finalise(POLICY_GIVE_UP, POLICY_DELIVERY_NONE, &f, &timing, 0);
    assert_true(r.stop);
    assert_false(r.escalate);
    assert_string_equal(r.outcome, "gave_up");
    assert_string_equal(r.note, "Recovery window closed");

    /* any reason for staying waiting ends with the window, not only eligible ones */
    f.opted_out = true;
    assert_int_equal(policy_decide(&f, &window), POLICY_GIVE_UP);
    f = eligible();
    f.has_member = false;
    f.age_ms = 30 * DAY_MS;
    assert_int_equal(policy_decide(&f, &window), POLICY_GIVE_UP);
    f.order_found = false;
    assert_int_equal(policy_decide(&f, &window), POLICY_GIVE_UP);
}

static void
test_policy_give_up_spares_young_orchestrations_and_is_off_at_zero(void **state)
{
    struct policy_rules window = {
        .max_prompts = 3, .on_unknown = POLICY_UNKNOWN_SKIP, .give_up_after_ms = 30 * DAY_MS};
    struct policy_facts f = eligible();
    f.age_ms = 30 * DAY_MS - 1;
    assert_int_equal(policy_decide(&f, &window), POLICY_SEND);
    f.age_ms = -1; /* created_at unknown */
    assert_int_equal(policy_decide(&f, &window), POLICY_SEND);
    f.age_ms = 400 * DAY_MS;
    window.give_up_after_ms = 0;
    assert_int_equal(policy_decide(&f, &window), POLICY_SEND);
}

static void
test_policy_give_up_never_hides_a_delivery_already_made(void **state)
{
    struct policy_rules window = {
        .max_prompts = 3, .on_unknown = POLICY_UNKNOWN_SKIP, .give_up_after_ms = 30 * DAY_MS};
    struct policy_facts f = eligible();
    f.age_ms = 40 * DAY_MS;
    f.ledger_status = POLICY_LEDGER_SENT;
    assert_int_equal(policy_decide(&f, &window), POLICY_ALREADY_SENT);
}

static void
test_policy_unsubscribe_turns_off_the_preference_the_consent_basis_needs(void **state)
{
    struct policy_opt_out o = policy_unsubscribe(POLICY_CONSENT_ORDER_UPDATES);
    assert_true(o.order_updates);
    assert_false(o.marketing_messages);
    o = policy_unsubscribe(POLICY_CONSENT_MARKETING);
    assert_false(o.order_updates);
    assert_true(o.marketing_messages);
    /* both: marketing alone stops the prompts and keeps the storefront's order notices */
    o = policy_unsubscribe(POLICY_CONSENT_BOTH);
    assert_false(o.order_updates);
    assert_true(o.marketing_messages);
}

static void
test_policy_ledger_statuses_round_trip_through_their_database_words(void **state)
{
    static const char *const words[] = {"queued", "sending", "sent",    "deferred",
                                        "failed", "unknown", "released"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        enum policy_ledger s = policy_ledger_parse(words[i]);
        assert_int_not_equal(s, POLICY_LEDGER_NONE);
        assert_string_equal(policy_ledger_name(s), words[i]);
    }
    assert_int_equal(policy_ledger_parse("sent"), POLICY_LEDGER_SENT);
    assert_int_equal(POLICY_LEDGER_WORD_released, POLICY_LEDGER_RELEASED);
}

static void
test_policy_no_ledger_row_or_a_foreign_word_is_no_status(void **state)
{
    assert_int_equal(policy_ledger_parse(NULL), POLICY_LEDGER_NONE);
    assert_int_equal(policy_ledger_parse("delivered"), POLICY_LEDGER_NONE);
    assert_int_equal(policy_ledger_parse("SENT"), POLICY_LEDGER_NONE);
    assert_null(policy_ledger_name(POLICY_LEDGER_NONE));
}

static void
test_policy_only_sending_and_unknown_rows_are_in_doubt(void **state)
{
    assert_true(policy_ledger_in_doubt(POLICY_LEDGER_SENDING));
    assert_true(policy_ledger_in_doubt(POLICY_LEDGER_UNKNOWN));
    assert_false(policy_ledger_in_doubt(POLICY_LEDGER_NONE));
    assert_false(policy_ledger_in_doubt(POLICY_LEDGER_QUEUED));
    assert_false(policy_ledger_in_doubt(POLICY_LEDGER_SENT));
    assert_false(policy_ledger_in_doubt(POLICY_LEDGER_RELEASED));
}

static void
test_policy_order_updates_basis_follows_the_storefront_default_of_on(void **state)
{
    assert_true(
        policy_consents(POLICY_CONSENT_ORDER_UPDATES, POLICY_PREF_UNSET, POLICY_PREF_UNSET));
    assert_true(policy_consents(POLICY_CONSENT_ORDER_UPDATES, POLICY_PREF_ON, POLICY_PREF_OFF));
    assert_false(policy_consents(POLICY_CONSENT_ORDER_UPDATES, POLICY_PREF_OFF, POLICY_PREF_ON));
}

static void
test_policy_marketing_basis_needs_an_opt_in(void **state)
{
    assert_false(policy_consents(POLICY_CONSENT_MARKETING, POLICY_PREF_UNSET, POLICY_PREF_UNSET));
    assert_false(policy_consents(POLICY_CONSENT_MARKETING, POLICY_PREF_ON, POLICY_PREF_OFF));
    assert_true(policy_consents(POLICY_CONSENT_MARKETING, POLICY_PREF_OFF, POLICY_PREF_ON));
}

static void
test_policy_both_basis_needs_order_updates_and_an_opt_in(void **state)
{
    assert_true(policy_consents(POLICY_CONSENT_BOTH, POLICY_PREF_UNSET, POLICY_PREF_ON));
    assert_true(policy_consents(POLICY_CONSENT_BOTH, POLICY_PREF_ON, POLICY_PREF_ON));
    assert_false(policy_consents(POLICY_CONSENT_BOTH, POLICY_PREF_ON, POLICY_PREF_UNSET));
    assert_false(policy_consents(POLICY_CONSENT_BOTH, POLICY_PREF_OFF, POLICY_PREF_ON));
}

/* The terms the ledger's re-check takes give the same answer as policy_consents for every
 * basis and every stored combination. */
static bool
terms_allow(struct policy_consent_terms t, enum policy_pref ou, enum policy_pref mm)
{
    bool ou_on = ou == POLICY_PREF_UNSET ? t.order_updates_unset : ou == POLICY_PREF_ON;
    bool mm_on = mm == POLICY_PREF_UNSET ? t.marketing_unset : mm == POLICY_PREF_ON;
    return (!t.needs_order_updates || ou_on) && (!t.needs_marketing || mm_on);
}

static void
test_policy_consent_terms_for_the_ledger_recheck_agree_with_the_decision(void **state)
{
    const enum policy_consent bases[] = {POLICY_CONSENT_ORDER_UPDATES, POLICY_CONSENT_MARKETING,
                                         POLICY_CONSENT_BOTH};
    const enum policy_pref prefs[] = {POLICY_PREF_UNSET, POLICY_PREF_OFF, POLICY_PREF_ON};
    for (size_t b = 0; b < 3; b++)
        for (size_t i = 0; i < 3; i++)
            for (size_t j = 0; j < 3; j++)
                assert_int_equal(terms_allow(policy_consent_terms(bases[b]), prefs[i], prefs[j]),
                                 policy_consents(bases[b], prefs[i], prefs[j]));
}

static void
test_policy_consent_bases_are_named_as_in_the_configuration(void **state)
{
    assert_string_equal(policy_consent_name(POLICY_CONSENT_ORDER_UPDATES), "order_updates");
    assert_string_equal(policy_consent_name(POLICY_CONSENT_MARKETING), "marketing_messages");
    assert_string_equal(policy_consent_name(POLICY_CONSENT_BOTH), "both");
}

static void
test_policy_member_cap_waits_out_the_rest_of_the_window(void **state)
{
    assert_int_equal(policy_member_cap_wait_ms(3600000, 600000), 3000000);
    assert_int_equal(policy_member_cap_wait_ms(3600000, 0), 3600000);
}

static void
test_policy_member_cap_spares_a_member_never_prompted_or_prompted_long_ago(void **state)
{
    assert_int_equal(policy_member_cap_wait_ms(3600000, -1), 0);
    assert_int_equal(policy_member_cap_wait_ms(3600000, 3600000), 0);
    assert_int_equal(policy_member_cap_wait_ms(3600000, 7200000), 0);
}

static void
test_policy_member_cap_is_off_at_zero(void **state)
{
    assert_int_equal(policy_member_cap_wait_ms(0, 10), 0);
    const char *members[] = {"m1", "m1"};
    bool repeat[2] = {false, false};
    assert_true(policy_member_repeats(0, members, 2, repeat));
    assert_false(repeat[0]);
    assert_false(repeat[1]);
}

static void
test_policy_member_with_several_rows_in_a_batch_gets_the_first_only(void **state)
{
    /* rows 1 and 4 are not being sent, so they neither take nor lose the member's turn */
    const char *members[] = {"m2", NULL, "m1", "m2", NULL, "m1", "m3", "m2"};
    bool repeat[8] = {false};
    assert_true(policy_member_repeats(3600000, members, 8, repeat));
    const bool want[8] = {false, false, false, true, false, true, false, true};
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(repeat[i], want[i]);
}

static void
test_policy_checks_run_in_the_storefront_order_with_the_ledger_first(void **state)
{
    /* everything wrong at once; mending one fact at a time walks the order of the checks */
    struct policy_facts f = {
        .order_found = false,
        .has_user = false,
        .email_valid = false,
        .opted_out = true,
        .has_member = false,
        .pending_intents = 0,
        .prompts_sent = 3,
        .quiet_wait_ms = 1000,
        .cap_wait_ms = 1000,
        .ledger_status = POLICY_LEDGER_FAILED,
    };
    assert_int_equal(policy_decide(&f, &rules), POLICY_ALREADY_FAILED);
    f.ledger_status = POLICY_LEDGER_NONE;
    assert_int_equal(policy_decide(&f, &rules), POLICY_ESCALATE_NO_ORDER);
    f.order_found = true;
    assert_int_equal(policy_decide(&f, &rules), POLICY_ESCALATE_NO_USER);
    f.has_user = true;
    assert_int_equal(policy_decide(&f, &rules), POLICY_NO_INTENTS);
    f.has_member = true;
    assert_int_equal(policy_decide(&f, &rules), POLICY_NO_INTENTS);
    f.pending_intents = 2;
    assert_int_equal(policy_decide(&f, &rules), POLICY_OPT_OUT);
    f.opted_out = false;
    assert_int_equal(policy_decide(&f, &rules), POLICY_MAX_PROMPTS);
    f.prompts_sent = 0;
    assert_int_equal(policy_decide(&f, &rules), POLICY_INVALID_ADDRESS);
    f.email_valid = true;
    assert_int_equal(policy_decide(&f, &rules), POLICY_QUIET_HOURS);
    f.quiet_wait_ms = 0;
    assert_int_equal(policy_decide(&f, &rules), POLICY_MEMBER_CAPPED);
    f.cap_wait_ms = 0;
    assert_int_equal(policy_decide(&f, &rules), POLICY_SEND);
}

static void
test_policy_released_deferred_or_queued_occurrence_is_decided_afresh(void **state)
{
    /* these ledger states say nothing went out for good: the usual checks decide */
    static const enum policy_ledger statuses[] = {POLICY_LEDGER_RELEASED, POLICY_LEDGER_DEFERRED,
                                                  POLICY_LEDGER_QUEUED};
    for (size_t i = 0; i < 3; i++) {
        struct policy_facts f = eligible();
        f.ledger_status = statuses[i];
        f.ledger_attempts = 5;
        assert_int_equal(policy_decide(&f, &rules), POLICY_SEND);
        f.opted_out = true;
        assert_int_equal(policy_decide(&f, &rules), POLICY_OPT_OUT);
    }
}

static void
test_policy_resend_limit_depends_on_what_left_the_delivery_in_doubt(void **state)
{
    assert_int_equal(policy_resend_limit(POLICY_LEDGER_SENDING, POLICY_UNKNOWN_RESEND),
                     POLICY_RESEND_LIMIT_SENDING);
    assert_int_equal(policy_resend_limit(POLICY_LEDGER_UNKNOWN, POLICY_UNKNOWN_RESEND),
                     POLICY_RESEND_LIMIT_UNKNOWN);
    assert_true(POLICY_RESEND_LIMIT_SENDING > POLICY_RESEND_LIMIT_UNKNOWN);
    assert_int_equal(policy_resend_limit(POLICY_LEDGER_SENT, POLICY_UNKNOWN_RESEND), 0);
    assert_int_equal(policy_resend_limit(POLICY_LEDGER_DEFERRED, POLICY_UNKNOWN_RESEND), 0);
    assert_int_equal(policy_resend_limit(POLICY_LEDGER_NONE, POLICY_UNKNOWN_RESEND), 0);
    /* under skip nothing in doubt is sent again */
    assert_int_equal(policy_resend_limit(POLICY_LEDGER_SENDING, POLICY_UNKNOWN_SKIP), 0);
    assert_int_equal(policy_resend_limit(POLICY_LEDGER_UNKNOWN, POLICY_UNKNOWN_SKIP), 0);
}

static void
test_policy_unknown_delivery_keeps_nudging_with_the_unknown_note(void **state)
{
    struct policy_facts f = eligible();
    struct policy_final r = policy_finalise(POLICY_SEND, POLICY_DELIVERY_UNKNOWN, &f, &timing, 0);
    assert_string_equal(r.outcome, "unknown");
    assert_string_equal(r.note, "Recovery prompt delivery unknown");
    assert_false(r.escalate);
    assert_false(r.stop);
    assert_int_equal(r.next_ms, timing.retry_interval_ms);
    /* an orphan is finalised the same way, without a send */
    r = policy_finalise(POLICY_ORPHANED, POLICY_DELIVERY_NONE, &f, &timing, 0);
    assert_string_equal(r.note, "Recovery prompt delivery unknown");
    assert_false(r.stop);
}

static void
test_policy_deferrals_spread_by_a_tenth_and_at_most_ten_minutes(void **state)
{
    struct policy_facts f = eligible();
    /* an hour: up to six minutes more */
    f.quiet_wait_ms = 3600LL * 1000;
    struct policy_final r =
        policy_finalise(POLICY_QUIET_HOURS, POLICY_DELIVERY_NONE, &f, &timing, 0.999);
    assert_true(r.next_ms > f.quiet_wait_ms);
    assert_true(r.next_ms <= f.quiet_wait_ms + 360000);
    /* ten hours: the spread is capped at ten minutes */
    f.quiet_wait_ms = 10 * 3600LL * 1000;
    r = policy_finalise(POLICY_QUIET_HOURS, POLICY_DELIVERY_NONE, &f, &timing, 0.999);
    assert_true(r.next_ms > f.quiet_wait_ms + 590000);
    assert_true(r.next_ms <= f.quiet_wait_ms + 600000);
    f.cap_wait_ms = 10 * 3600LL * 1000;
    r = policy_finalise(POLICY_MEMBER_CAPPED, POLICY_DELIVERY_NONE, &f, &timing, 0.999);
    assert_true(r.next_ms <= f.cap_wait_ms + 600000);
}

static void
test_policy_jitter_outside_zero_to_one_adds_nothing(void **state)
{
    struct policy_facts f = eligible();
    f.quiet_wait_ms = 3600LL * 1000;
    f.deferrals = 1;
    static const double bad[] = {-0.5, 1.0, 7.0};
    for (size_t i = 0; i < 3; i++) {
        struct policy_final r =
            policy_finalise(POLICY_QUIET_HOURS, POLICY_DELIVERY_NONE, &f, &timing, bad[i]);
        assert_int_equal(r.next_ms, f.quiet_wait_ms);
        r = policy_finalise(POLICY_SEND, POLICY_DELIVERY_DEFERRED, &f, &timing, bad[i]);
        assert_int_equal(r.next_ms, 2 * timing.backoff_base_ms);
    }
}

static void
test_policy_quiet_hours_start_inclusive_end_exclusive(void **state)
{
    /* 22:00-08:00: 22:00:00 is inside, 07:59:59 waits one second, 08:00:00 is outside */
    assert_int_equal(policy_quiet_wait_ms(22 * 60, 8 * 60, 22 * 3600), 10LL * 3600 * 1000);
    assert_int_equal(policy_quiet_wait_ms(22 * 60, 8 * 60, 8 * 3600 - 1), 1000);
    assert_int_equal(policy_quiet_wait_ms(22 * 60, 8 * 60, 21 * 3600 + 3599), 0);
    /* just before midnight the wait runs over it */
    assert_int_equal(policy_quiet_wait_ms(22 * 60, 8 * 60, 24 * 3600 - 1), (8LL * 3600 + 1) * 1000);
    /* at midnight, in a window that starts there */
    assert_int_equal(policy_quiet_wait_ms(0, 6 * 60, 0), 6LL * 3600 * 1000);
}

static void
test_policy_action_names_are_stable_and_distinct(void **state)
{
    static const char *const names[] = {
        "send",        "missing_order",   "missing_member", "no_intents",     "skipped_opt_out",
        "max_prompts", "invalid_address", "already_sent",   "already_failed", "delivery_unknown",
        "quiet_hours", "member_capped",   "gave_up",
    };
    size_t n = sizeof names / sizeof *names;
    assert_int_equal(n, POLICY_GIVE_UP + 1);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(policy_action_name((enum policy_action)i), names[i]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal(names[i], names[j]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_eligible_member_is_sent_a_prompt),
        cmocka_unit_test(test_policy_missing_order_escalates_and_stops),
        cmocka_unit_test(test_policy_order_without_user_escalates_with_the_storefront_note),
        cmocka_unit_test(test_policy_no_member_or_no_intents_gives_the_note_and_no_email),
        cmocka_unit_test(test_policy_opt_out_wins_over_everything_that_would_send),
        cmocka_unit_test(test_policy_prompt_cap_stops_nudging),
        cmocka_unit_test(test_policy_invalid_address_is_skipped_and_escalated),
        cmocka_unit_test(test_policy_ledger_sent_is_never_sent_again),
        cmocka_unit_test(test_policy_ledger_failed_is_finalised_as_failed_without_sending),
        cmocka_unit_test(test_policy_orphaned_sending_row_is_not_resent_under_skip),
        cmocka_unit_test(test_policy_in_doubt_rows_are_resent_up_to_their_limit),
        cmocka_unit_test(test_policy_deferral_backs_off_exponentially_with_bounded_jitter),
        cmocka_unit_test(test_policy_permanent_refusal_escalates_and_stops),
        cmocka_unit_test(test_policy_sent_moves_next_action_by_the_retry_interval),
        cmocka_unit_test(test_policy_quiet_hours_defer_to_their_end),
        cmocka_unit_test(test_policy_member_cap_defers_and_opt_out_still_wins),
        cmocka_unit_test(test_policy_give_up_after_the_recovery_window_stops_nudging_once),
        cmocka_unit_test(test_policy_give_up_spares_young_orchestrations_and_is_off_at_zero),
        cmocka_unit_test(test_policy_give_up_never_hides_a_delivery_already_made),
        cmocka_unit_test(test_policy_unsubscribe_turns_off_the_preference_the_consent_basis_needs),
        cmocka_unit_test(test_policy_ledger_statuses_round_trip_through_their_database_words),
        cmocka_unit_test(test_policy_no_ledger_row_or_a_foreign_word_is_no_status),
        cmocka_unit_test(test_policy_only_sending_and_unknown_rows_are_in_doubt),
        cmocka_unit_test(test_policy_order_updates_basis_follows_the_storefront_default_of_on),
        cmocka_unit_test(test_policy_marketing_basis_needs_an_opt_in),
        cmocka_unit_test(test_policy_both_basis_needs_order_updates_and_an_opt_in),
        cmocka_unit_test(test_policy_consent_terms_for_the_ledger_recheck_agree_with_the_decision),
        cmocka_unit_test(test_policy_consent_bases_are_named_as_in_the_configuration),
        cmocka_unit_test(test_policy_member_cap_waits_out_the_rest_of_the_window),
        cmocka_unit_test(
            test_policy_member_cap_spares_a_member_never_prompted_or_prompted_long_ago),
        cmocka_unit_test(test_policy_member_cap_is_off_at_zero),
        cmocka_unit_test(test_policy_member_with_several_rows_in_a_batch_gets_the_first_only),
        cmocka_unit_test(test_policy_checks_run_in_the_storefront_order_with_the_ledger_first),
        cmocka_unit_test(test_policy_released_deferred_or_queued_occurrence_is_decided_afresh),
        cmocka_unit_test(test_policy_resend_limit_depends_on_what_left_the_delivery_in_doubt),
        cmocka_unit_test(test_policy_unknown_delivery_keeps_nudging_with_the_unknown_note),
        cmocka_unit_test(test_policy_deferrals_spread_by_a_tenth_and_at_most_ten_minutes),
        cmocka_unit_test(test_policy_jitter_outside_zero_to_one_adds_nothing),
        cmocka_unit_test(test_policy_quiet_hours_start_inclusive_end_exclusive),
        cmocka_unit_test(test_policy_action_names_are_stable_and_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
