/* test_pace: the shared token bucket and the adaptive rate / session controller of
 * common/pace.c, on a clock the test moves (its sleep advances the clock). */
#include <pthread.h>
#include <stdlib.h>

#include "support.h"

#include "clock.h"
#include "pace.h"

static struct pace *
fake_pace(double max_rate, int max_sessions)
{
    support_clock_set(1000000);
    struct pace *p = pace_new(max_rate, max_sessions, support_clock_now);
    assert_non_null(p);
    pace_set_sleep(p, support_clock_sleep);
    return p;
}

/* The most of times[0..n) (sorted) that fall in any window [t, t + width). */
static int
most_in_window(const long long *times, int n, long long width)
{
    int best = 0;
    for (int i = 0; i < n; i++) {
        int c = 0;
        for (int j = i; j < n && times[j] - times[i] < width; j++)
            c++;
        if (c > best)
            best = c;
    }
    return best;
}

static void
test_pace_new_refuses_a_negative_rate_or_no_sessions(void **state)
{
    (void)state;
    assert_null(pace_new(-1, 4, support_clock_now));
    assert_null(pace_new(5, 0, support_clock_now));
    pace_free(NULL); /* NULL-safe */
}

static void
test_pace_without_a_rate_gives_slots_at_once(void **state)
{
    (void)state;
    struct pace *p = fake_pace(0, 4);
    for (int i = 0; i < 1000; i++)
        assert_true(pace_acquire(p, support_clock_now(), NULL));
    assert_int_equal(support_clock_now(), 1000000); /* never waited */
    assert_true(pace_rate(p) == 0);
    pace_free(p);
}

static void
test_pace_max_rate_5_never_gives_more_than_6_slots_in_a_second(void **state)
{
    (void)state;
    struct pace *p = fake_pace(5, 8);
    long long times[40];
    for (int i = 0; i < 40; i++) {
        assert_true(pace_acquire(p, support_clock_now() + 60000, NULL));
        times[i] = support_clock_now();
    }
    assert_true(most_in_window(times, 40, 1000) <= 6);
    assert_true(most_in_window(times, 40, 1001) <= 6);
    /* and it is not slower than asked: 40 slots in about 39 intervals of 200 ms */
    assert_true(times[39] - times[0] <= 39 * 200 + 1);
    pace_free(p);
}

static void
test_pace_slots_are_spaced_even_after_an_idle_time(void **state)
{
    (void)state;
    struct pace *p = fake_pace(5, 8);
    assert_true(pace_acquire(p, support_clock_now() + 1000, NULL));
    support_clock_sleep(10000); /* idle: no burst saved up */
    long long times[10];
    for (int i = 0; i < 10; i++) {
        assert_true(pace_acquire(p, support_clock_now() + 60000, NULL));
        times[i] = support_clock_now();
    }
    assert_true(most_in_window(times, 10, 1000) <= 6);
    assert_int_equal(times[1] - times[0], 200);
    pace_free(p);
}

static void
test_pace_acquire_gives_up_at_the_deadline_without_waiting(void **state)
{
    (void)state;
    struct pace *p = fake_pace(1, 1);
    assert_true(pace_acquire(p, support_clock_now() + 5000, NULL));
    long long before = support_clock_now();
    assert_false(pace_acquire(p, support_clock_now() + 500, NULL)); /* next slot is 1000 ms away */
    assert_int_equal(support_clock_now(), before);
    assert_true(pace_acquire(p, support_clock_now() + 1000, NULL));
    assert_int_equal(support_clock_now(), before + 1000);
    pace_free(p);
}

static void
test_pace_acquire_returns_false_once_stopped(void **state)
{
    (void)state;
    struct pace *p = fake_pace(0, 1);
    atomic_bool stop = true;
    assert_false(pace_acquire(p, support_clock_now() + 5000, &stop));
    atomic_store(&stop, false);
    assert_true(pace_acquire(p, support_clock_now() + 5000, &stop));
    pace_free(p);
}

/* Ten accepted in a second, then the relay throttles. */
static void
throttle_after_ten_a_second(struct pace *p)
{
    for (int i = 0; i < 10; i++) {
        support_clock_sleep(100);
        pace_accepted(p);
    }
    pace_throttled(p);
}

static void
test_pace_throttle_halves_the_observed_acceptance_rate(void **state)
{
    (void)state;
    struct pace *p = fake_pace(0, 8);
    throttle_after_ten_a_second(p);
    double rate = pace_rate(p);
    assert_true(rate > 4.0 && rate <= 5.6);
    struct pace_stats st;
    pace_get_stats(p, &st);
    assert_int_equal(st.throttles, 1);
    assert_int_equal(st.rate_cuts, 1);
    pace_free(p);
}

static void
test_pace_a_burst_of_accepts_is_not_taken_for_a_high_rate(void **state)
{
    (void)state;
    struct pace *p = fake_pace(0, 8);
    for (int i = 0; i < 10; i++) {
        support_clock_sleep(10); /* ten in 100 ms */
        pace_accepted(p);
    }
    pace_throttled(p);
    assert_true(pace_rate(p) <= 5.0 + 1e-9);
    pace_free(p);
}

static void
test_pace_throttles_in_flight_together_cut_once(void **state)
{
    (void)state;
    struct pace *p = fake_pace(0, 8);
    throttle_after_ten_a_second(p);
    double after_first = pace_rate(p);
    support_clock_sleep(10);
    pace_throttled(p);
    pace_throttled(p);
    assert_true(pace_rate(p) == after_first);
    struct pace_stats st;
    pace_get_stats(p, &st);
    assert_int_equal(st.throttles, 3);
    assert_int_equal(st.rate_cuts, 1);
    support_clock_sleep(PACE_HOLD_MS);
    pace_throttled(p); /* a later one cuts again */
    assert_true(pace_rate(p) < after_first);
    pace_free(p);
}

static void
test_pace_rate_recovers_about_one_per_second_while_accepted(void **state)
{
    (void)state;
    struct pace *p = fake_pace(0, 8);
    throttle_after_ten_a_second(p);
    double start = pace_rate(p);
    long long t0 = support_clock_now();
    /* send at the allowed pace for ten seconds, every message accepted */
    while (support_clock_now() - t0 < 10000) {
        assert_true(pace_acquire(p, support_clock_now() + 60000, NULL));
        pace_accepted(p);
    }
    double grown = pace_rate(p) - start;
    assert_true(grown > 7.0 && grown < 13.0);
    pace_free(p);
}

static void
test_pace_recovery_never_exceeds_max_rate(void **state)
{
    (void)state;
    struct pace *p = fake_pace(6, 8);
    throttle_after_ten_a_second(p);
    assert_true(pace_rate(p) <= 3.0 + 1e-9);
    for (int i = 0; i < 500; i++) {
        assert_true(pace_acquire(p, support_clock_now() + 60000, NULL));
        pace_accepted(p);
    }
    assert_true(pace_rate(p) == 6.0);
    pace_free(p);
}

static void
test_pace_throttle_to_the_floor_when_nothing_was_accepted(void **state)
{
    (void)state;
    struct pace *p = fake_pace(0, 8);
    pace_throttled(p);
    assert_true(pace_rate(p) == PACE_MIN_RATE);
    pace_free(p);
}

static void
test_pace_throttle_halves_the_sessions_and_they_grow_back(void **state)
{
    (void)state;
    struct pace *p = fake_pace(0, 8);
    throttle_after_ten_a_second(p);
    assert_int_equal(pace_session_limit(p), 4);
    support_clock_sleep(PACE_HOLD_MS);
    pace_throttled(p);
    assert_int_equal(pace_session_limit(p), 2);
    for (int i = 0; i < PACE_SESSION_GROWTH - 1; i++)
        pace_accepted(p);
    assert_int_equal(pace_session_limit(p), 2);
    pace_accepted(p);
    assert_int_equal(pace_session_limit(p), 3);
    for (int i = 0; i < 10 * PACE_SESSION_GROWTH; i++)
        pace_accepted(p);
    assert_int_equal(pace_session_limit(p), 8);
    pace_free(p);
}

static void
test_pace_refused_session_lowers_the_limit_to_those_working_for_good(void **state)
{
    (void)state;
    struct pace *p = fake_pace(0, 8);
    pace_session_refused(p, 2);
    assert_int_equal(pace_session_limit(p), 2);
    for (int i = 0; i < 20 * PACE_SESSION_GROWTH; i++)
        pace_accepted(p);
    assert_int_equal(pace_session_limit(p), 2);
    pace_session_refused(p, 0); /* refused with none working: still one */
    assert_int_equal(pace_session_limit(p), 1);
    struct pace_stats st;
    pace_get_stats(p, &st);
    assert_int_equal(st.refused_sessions, 2);
    pace_free(p);
}

struct racer {
    struct pace *p;
    long long times[25];
};

static void *
race(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < 25; i++) {
        if (!pace_acquire(r->p, clock_mono_ms() + 10000, NULL))
            return NULL;
        r->times[i] = clock_mono_ms();
        pace_accepted(r->p);
    }
    return r;
}

static int
cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static void
test_pace_bucket_is_shared_by_concurrent_sessions(void **state)
{
    (void)state;
    struct pace *p = pace_new(100, 4, NULL); /* the real clock */
    assert_non_null(p);
    struct racer r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i].p = p;
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    long long all[100];
    for (int i = 0; i < 4; i++) {
        void *ok;
        pthread_join(th[i], &ok);
        assert_non_null(ok);
        for (int k = 0; k < 25; k++)
            all[i * 25 + k] = r[i].times[k];
    }
    qsort(all, 100, sizeof all[0], cmp_ll);
    /* 100 slots at 100/s across four threads: about a second, never more than 101 a second */
    assert_true(all[99] - all[0] >= 980);
    assert_true(most_in_window(all, 100, 1000) <= 101);
    struct pace_stats st;
    pace_get_stats(p, &st);
    assert_int_equal(st.accepted, 100);
    pace_free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pace_new_refuses_a_negative_rate_or_no_sessions),
        cmocka_unit_test(test_pace_without_a_rate_gives_slots_at_once),
        cmocka_unit_test(test_pace_max_rate_5_never_gives_more_than_6_slots_in_a_second),
        cmocka_unit_test(test_pace_slots_are_spaced_even_after_an_idle_time),
        cmocka_unit_test(test_pace_acquire_gives_up_at_the_deadline_without_waiting),
        cmocka_unit_test(test_pace_acquire_returns_false_once_stopped),
        cmocka_unit_test(test_pace_throttle_halves_the_observed_acceptance_rate),
        cmocka_unit_test(test_pace_a_burst_of_accepts_is_not_taken_for_a_high_rate),
        cmocka_unit_test(test_pace_throttles_in_flight_together_cut_once),
        cmocka_unit_test(test_pace_rate_recovers_about_one_per_second_while_accepted),
        cmocka_unit_test(test_pace_recovery_never_exceeds_max_rate),
        cmocka_unit_test(test_pace_throttle_to_the_floor_when_nothing_was_accepted),
        cmocka_unit_test(test_pace_throttle_halves_the_sessions_and_they_grow_back),
        cmocka_unit_test(test_pace_refused_session_lowers_the_limit_to_those_working_for_good),
        cmocka_unit_test(test_pace_bucket_is_shared_by_concurrent_sessions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
