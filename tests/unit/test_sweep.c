/* test_sweep: what worker/sweep.c computes without a database or a relay: run ids, adding
 * the counters of one batch to a sweep's, and the summary line's shape. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "support.h"

#include "sweep.h"

static bool
is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void
test_sweep_run_id_is_sixteen_lower_case_hex_characters(void **state)
{
    (void)state;
    char id[17];
    memset(id, 'X', sizeof id);
    sweep_new_run_id(id);
    assert_int_equal(strlen(id), 16);
    assert_true(is_lower_hex(id, 16));
}

static void
test_sweep_run_ids_differ_from_run_to_run(void **state)
{
    (void)state;
    /* 64 random bits: a repeat among a few hundred would be a broken source */
    enum { N = 256 };
    static char ids[N][17];
    for (int i = 0; i < N; i++)
        sweep_new_run_id(ids[i]);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (strcmp(ids[i], ids[j]) == 0)
                fail_msg("run id %s came twice", ids[i]);
}

static void
test_sweep_summary_add_adds_every_outcome_counter(void **state)
{
    (void)state;
    struct sweep_summary to = {0}, from = {0};
    long v = 1;
#define SET(field, key, label)                                                                     \
    to.field = 1000;                                                                               \
    from.field = v++;
    SWEEP_OUTCOMES(SET)
#undef SET
    sweep_summary_add(&to, &from);
    v = 1;
#define CHECK(field, key, label)                                                                   \
    if (to.field != 1000 + v)                                                                      \
        fail_msg("%s: %ld, want %ld", key, to.field, 1000 + v);                                    \
    v++;
    SWEEP_OUTCOMES(CHECK)
#undef CHECK
}

static void
test_sweep_summary_add_leaves_what_the_sweep_counts_itself(void **state)
{
    (void)state;
    /* processed is counted at the claim, duration and pace once per sweep: a batch's
     * counters never add to them */
    struct sweep_summary to = {
        .processed = 7, .batches = 2, .duration_ms = 50, .throttle_replies = 1, .send_rate = 4.5};
    struct sweep_summary from = {.processed = 3,
                                 .batches = 1,
                                 .duration_ms = 9,
                                 .throttle_replies = 5,
                                 .send_rate = 1,
                                 .nudges_sent = 3};
    sweep_summary_add(&to, &from);
    assert_int_equal(to.processed, 7);
    assert_int_equal(to.batches, 2);
    assert_int_equal(to.duration_ms, 50);
    assert_int_equal(to.throttle_replies, 1);
    assert_true(to.send_rate == 4.5);
    assert_int_equal(to.nudges_sent, 3);
}

static void
test_sweep_summary_line_has_the_documented_keys_in_order(void **state)
{
    (void)state;
    /* the line README.md shows; tools read it by key, people by position */
    static const char *const keys[] = {
        "processed",       "nudges_sent", "skipped_opt_out", "no_intents",   "escalations",
        "deferred",        "failed",      "unknown",         "already_sent", "max_prompts",
        "invalid_address", "released",    "lost_leases",     "superseded",   "quiet_hours",
        "member_capped",   "gave_up",     "resent_in_doubt", "duration_ms",
    };
    struct sweep_summary sum = {.processed = 5,
                                .nudges_sent = 2,
                                .skipped_opt_out = 1,
                                .resent_in_doubt = 4,
                                .duration_ms = 38,
                                .batches = 9,
                                .quota_exhausted = true};
    json_t *j = sweep_summary_json(&sum);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), sizeof keys / sizeof *keys);
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(text);
    const char *at = text;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char *quoted = support_printf("\"%s\":", keys[i]);
        const char *hit = strstr(at, quoted);
        if (hit == NULL)
            fail_msg("%s missing or out of order in %s", keys[i], text);
        at = hit + strlen(quoted);
        free(quoted);
        assert_true(json_is_integer(json_object_get(j, keys[i])));
    }
    assert_int_equal(json_integer_value(json_object_get(j, "processed")), 5);
    assert_int_equal(json_integer_value(json_object_get(j, "nudges_sent")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "resent_in_doubt")), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "duration_ms")), 38);
    assert_int_equal(json_integer_value(json_object_get(j, "failed")), 0);
    free(text);
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_run_id_is_sixteen_lower_case_hex_characters),
        cmocka_unit_test(test_sweep_run_ids_differ_from_run_to_run),
        cmocka_unit_test(test_sweep_summary_add_adds_every_outcome_counter),
        cmocka_unit_test(test_sweep_summary_add_leaves_what_the_sweep_counts_itself),
        cmocka_unit_test(test_sweep_summary_line_has_the_documented_keys_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
