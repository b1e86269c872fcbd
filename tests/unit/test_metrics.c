/* test_metrics: the exposition text builder, Pushgateway and heartbeat URLs (common/metrics),
 * URL masking and status classes (common/http), and the last-sweep gauges (worker/report). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "support.h"

#include "http.h"
#include "metrics.h"
#include "report.h"
#include "sweep.h"

static const struct metrics_family jobs_total = {"demo_jobs_total", METRICS_COUNTER,
                                                 "Jobs run, by result."};
static const struct metrics_family temperature = {"demo_temperature_celsius", METRICS_GAUGE,
                                                  "Help with \\ backslash\nand newline \"kept\"."};
static const struct metrics_family bare = {"demo_bare", METRICS_UNTYPED, NULL};

static void
test_metrics_exposition_text_is_exact_for_fixed_input(void **state)
{
    (void)state;
    struct metrics m;
    metrics_init(&m);
    struct metrics_label ok[] = {{"result", "ok"}, {"queue", "mail"}};
    struct metrics_label bad[] = {{"result", "failed"}, {"queue", "mail"}};
    assert_true(metrics_add(&m, &jobs_total, ok, 2, 42));
    assert_true(metrics_add(&m, &jobs_total, bad, 2, 0));
    assert_true(metrics_add(&m, &temperature, NULL, 0, -3.25));
    assert_true(metrics_add(&m, &bare, NULL, 0, 0.1));
    const char *expected = "# HELP demo_jobs_total Jobs run, by result.\n"
                           "# TYPE demo_jobs_total counter\n"
                           "demo_jobs_total{result=\"ok\",queue=\"mail\"} 42\n"
                           "demo_jobs_total{result=\"failed\",queue=\"mail\"} 0\n"
                           "# HELP demo_temperature_celsius Help with \\\\ backslash\\nand "
                           "newline \"kept\".\n"
                           "# TYPE demo_temperature_celsius gauge\n"
                           "demo_temperature_celsius -3.25\n"
                           "# TYPE demo_bare untyped\n"
                           "demo_bare 0.1\n";
    assert_string_equal(metrics_text(&m), expected);
    assert_string_equal(metrics_error(&m), "");
    metrics_free(&m);
}

static void
test_metrics_special_values_are_spelled_as_the_format_wants(void **state)
{
    (void)state;
    struct metrics m;
    metrics_init(&m);
    struct metrics_label a = {"k", "a"}, b = {"k", "b"}, c = {"k", "c"}, d = {"k", "d"};
    metrics_add(&m, &bare, &a, 1, NAN);
    metrics_add(&m, &bare, &b, 1, INFINITY);
    metrics_add(&m, &bare, &c, 1, -INFINITY);
    metrics_add(&m, &bare, &d, 1, 1763884800.123);
    assert_string_equal(metrics_text(&m), "# TYPE demo_bare untyped\n"
                                          "demo_bare{k=\"a\"} NaN\n"
                                          "demo_bare{k=\"b\"} +Inf\n"
                                          "demo_bare{k=\"c\"} -Inf\n"
                                          "demo_bare{k=\"d\"} 1763884800.123\n");
    metrics_free(&m);
}

static void
test_metrics_label_values_escape_backslash_quote_and_newline(void **state)
{
    (void)state;
    struct metrics m;
    metrics_init(&m);
    struct metrics_label l = {"path", "C:\\dir \"x\"\nnext/é"};
    assert_true(metrics_add(&m, &bare, &l, 1, 1));
    assert_string_equal(metrics_text(&m), "# TYPE demo_bare untyped\n"
                                          "demo_bare{path=\"C:\\\\dir \\\"x\\\"\\nnext/é\"} 1\n");
    metrics_free(&m);
}

static void
test_metrics_family_split_in_two_fails_the_builder(void **state)
{
    (void)state;
    struct metrics m;
    metrics_init(&m);
    assert_true(metrics_add(&m, &bare, NULL, 0, 1));
    assert_true(metrics_add(&m, &temperature, NULL, 0, 2));
    assert_false(metrics_add(&m, &bare, NULL, 0, 3));
    assert_null(metrics_text(&m));
    assert_string_contains(metrics_error(&m), "demo_bare");
    /* Sticky: later adds fail too, and the first reason stays. */
    assert_false(metrics_add(&m, &jobs_total, NULL, 0, 1));
    assert_string_contains(metrics_error(&m), "demo_bare");
    metrics_free(&m);
}

static void
test_metrics_invalid_names_fail_the_builder(void **state)
{
    (void)state;
    static const struct metrics_family dashed = {"bad-name", METRICS_GAUGE, NULL};
    struct metrics m;
    metrics_init(&m);
    assert_false(metrics_add(&m, &dashed, NULL, 0, 1));
    assert_null(metrics_text(&m));
    metrics_free(&m);

    metrics_init(&m);
    struct metrics_label reserved = {"__name__", "x"};
    assert_false(metrics_add(&m, &bare, &reserved, 1, 1));
    metrics_free(&m);

    metrics_init(&m);
    struct metrics_label twice[] = {{"a", "1"}, {"a", "2"}};
    assert_false(metrics_add(&m, &bare, twice, 2, 1));
    metrics_free(&m);

    assert_true(metrics_name_valid("a:b_c9"));
    assert_false(metrics_name_valid("9a"));
    assert_false(metrics_name_valid(""));
    assert_true(metrics_label_name_valid("_x9"));
    assert_false(metrics_label_name_valid("a:b"));
    assert_false(metrics_label_name_valid("__x"));
}

static void
assert_push_url(const char *base, const char *job, const char *instance, const char *expected)
{
    struct err e;
    err_clear(&e);
    struct metrics_label g = {"instance", instance};
    char *url = metrics_push_url(base, job, &g, instance != NULL ? 1 : 0, &e);
    assert_non_null(url);
    assert_string_equal(url, expected);
    free(url);
}

static void
test_metrics_push_url_puts_job_and_instance_in_the_path(void **state)
{
    (void)state;
    assert_push_url("http://pgw:9091", "recovery-worker", "pod-7",
                    "http://pgw:9091/metrics/job/recovery-worker/instance/pod-7");
    assert_push_url("http://pgw:9091/", "recovery-worker", NULL,
                    "http://pgw:9091/metrics/job/recovery-worker");
    assert_push_url("https://mon.example/pushgateway//", "j", "i",
                    "https://mon.example/pushgateway/metrics/job/j/instance/i");
}

static void
test_metrics_push_url_percent_encodes_other_characters(void **state)
{
    (void)state;
    assert_push_url("http://pgw", "my job", "host:8080?x#y%",
                    "http://pgw/metrics/job/my%20job/instance/host%3A8080%3Fx%23y%25");
    assert_push_url("http://pgw", "a.b_c~d-e", "é",
                    "http://pgw/metrics/job/a.b_c~d-e/instance/%C3%A9");
}

static void
test_metrics_push_url_uses_base64_for_slash_empty_and_dots(void **state)
{
    (void)state;
    assert_push_url("http://pgw", "j", "/var/tmp",
                    "http://pgw/metrics/job/j/instance@base64/L3Zhci90bXA");
    assert_push_url("http://pgw", "j", "/", "http://pgw/metrics/job/j/instance@base64/Lw");
    assert_push_url("http://pgw", "j", "//", "http://pgw/metrics/job/j/instance@base64/Ly8");
    assert_push_url("http://pgw", "j", "a/b", "http://pgw/metrics/job/j/instance@base64/YS9i");
    /* The URL-safe alphabet: '-' and '_' where standard base64 has '+' and '/'. */
    assert_push_url("http://pgw", "j", "/?>~", "http://pgw/metrics/job/j/instance@base64/Lz8-fg");
    assert_push_url("http://pgw", "j", "", "http://pgw/metrics/job/j/instance@base64/=");
    assert_push_url("http://pgw", "j", "..", "http://pgw/metrics/job/j/instance@base64/Li4");
    assert_push_url("http://pgw", "team/batch", "pod",
                    "http://pgw/metrics/job@base64/dGVhbS9iYXRjaA/instance/pod");
}

static void
test_metrics_push_url_rejects_what_the_pushgateway_cannot_take(void **state)
{
    (void)state;
    struct err e;
    struct metrics_label job_label = {"job", "x"};
    struct metrics_label bad_name = {"in-stance", "x"};
    err_clear(&e);
    assert_null(metrics_push_url("", "j", NULL, 0, &e));
    assert_int_equal(e.code, ERR_CONFIG);
    err_clear(&e);
    assert_null(metrics_push_url("http://pgw", "", NULL, 0, &e));
    assert_int_equal(e.code, ERR_CONFIG);
    err_clear(&e);
    assert_null(metrics_push_url("http://pgw?x=1", "j", NULL, 0, &e));
    assert_int_equal(e.code, ERR_CONFIG);
    err_clear(&e);
    assert_null(metrics_push_url("http://pgw", "j", &job_label, 1, &e));
    assert_int_equal(e.code, ERR_CONFIG);
    err_clear(&e);
    assert_null(metrics_push_url("http://pgw", "j", &bad_name, 1, &e));
    assert_int_equal(e.code, ERR_CONFIG);
}

static void
assert_heartbeat_url(const char *url, enum metrics_heartbeat_phase phase, const char *expected)
{
    char *got = metrics_heartbeat_url(url, phase);
    assert_non_null(got);
    assert_string_equal(got, expected);
    free(got);
}

static void
test_metrics_heartbeat_url_appends_the_phase_before_the_query(void **state)
{
    (void)state;
    const char *u = "https://hc.example/ping/0f3a";
    assert_heartbeat_url(u, METRICS_HEARTBEAT_START, "https://hc.example/ping/0f3a/start");
    assert_heartbeat_url(u, METRICS_HEARTBEAT_SUCCESS, "https://hc.example/ping/0f3a");
    assert_heartbeat_url(u, METRICS_HEARTBEAT_FAIL, "https://hc.example/ping/0f3a/fail");
    assert_heartbeat_url("https://hc.example/ping/0f3a/", METRICS_HEARTBEAT_FAIL,
                         "https://hc.example/ping/0f3a/fail");
    assert_heartbeat_url("https://hc.example/p?create=1#top", METRICS_HEARTBEAT_START,
                         "https://hc.example/p/start?create=1");
    assert_heartbeat_url("http://127.0.0.1:8000", METRICS_HEARTBEAT_START,
                         "http://127.0.0.1:8000/start");
    assert_heartbeat_url("http://127.0.0.1:8000/", METRICS_HEARTBEAT_SUCCESS,
                         "http://127.0.0.1:8000");
    assert_string_equal(metrics_heartbeat_phase_name(METRICS_HEARTBEAT_FAIL), "fail");
}

static void
test_http_status_err_classifies_answers(void **state)
{
    (void)state;
    assert_int_equal(http_status_err(200), ERR_OK);
    assert_int_equal(http_status_err(202), ERR_OK);
    assert_int_equal(http_status_err(301), ERR_PERMANENT);
    assert_int_equal(http_status_err(400), ERR_PERMANENT);
    assert_int_equal(http_status_err(401), ERR_PERMANENT);
    assert_int_equal(http_status_err(404), ERR_PERMANENT);
    assert_int_equal(http_status_err(408), ERR_TEMPORARY);
    assert_int_equal(http_status_err(429), ERR_TEMPORARY);
    assert_int_equal(http_status_err(500), ERR_TEMPORARY);
    assert_int_equal(http_status_err(503), ERR_TEMPORARY);
}

static void
test_http_request_to_a_closed_port_is_unavailable_and_masks_the_password(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "http://admin:hunter22@127.0.0.1:%d/metrics?token=abc",
             support_closed_port());
    struct http_request req = {.method = HTTP_PUT,
                               .url = url,
                               .body = "x 1\n",
                               .body_len = 4,
                               .content_type = "text/plain",
                               .timeout_ms = 2000};
    struct http_response resp;
    struct err e;
    err_clear(&e);
    assert_int_equal(http_request(&req, &resp, &e), ERR_UNAVAILABLE);
    assert_int_equal(e.code, ERR_UNAVAILABLE);
    assert_int_equal(resp.status, 0);
    assert_string_contains(e.msg, "PUT http://***@127.0.0.1:");
    assert_string_lacks(e.msg, "hunter22");
    assert_string_lacks(e.msg, "admin");
    assert_string_lacks(e.msg, "abc");
    http_response_free(&resp);
}

static void
test_http_request_refuses_other_schemes_as_config(void **state)
{
    (void)state;
    struct http_request req = {.method = HTTP_GET, .url = "file:///etc/passwd"};
    struct err e;
    err_clear(&e);
    assert_int_equal(http_request(&req, NULL, &e), ERR_CONFIG);
    req.url = "ftp://127.0.0.1/x";
    assert_int_equal(http_request(&req, NULL, &e), ERR_CONFIG);
}

static void
test_metrics_heartbeat_failure_hides_the_check_path(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ping/secret-uuid", support_closed_port());
    struct err e;
    err_clear(&e);
    assert_int_equal(metrics_heartbeat(url, METRICS_HEARTBEAT_START, "{}", 2000, &e),
                     ERR_UNAVAILABLE);
    assert_string_contains(e.msg, "heartbeat start: POST http://127.0.0.1:");
    assert_string_lacks(e.msg, "secret-uuid");
}

static struct sweep_summary
fixed_summary(void)
{
    struct sweep_summary s;
    memset(&s, 0, sizeof s);
    s.processed = 20;
    s.nudges_sent = 7;
    s.skipped_opt_out = 1;
    s.no_intents = 2;
    s.escalations = 3;
    s.deferred = 4;
    s.failed = 5;
    s.unknown = 6;
    s.already_sent = 8;
    s.max_prompts = 9;
    s.invalid_address = 10;
    s.released = 11;
    s.lost_leases = 12;
    s.superseded = 13;
    s.quiet_hours = 14;
    s.member_capped = 15;
    s.gave_up = 16;
    s.resent_in_doubt = 17;
    s.batches = 2;
    s.duration_ms = 1534;
    s.throttle_replies = 16;
    s.refused_sessions = 17;
    s.send_rate = 7.5;
    s.quota_exhausted = true;
    return s;
}

static const char report_head[] =
    "# HELP recovery_worker_last_sweep_orchestrations Orchestrations the last sweep handled, "
    "by outcome.\n"
    "# TYPE recovery_worker_last_sweep_orchestrations gauge\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"sent\"} 7\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"skipped_opt_out\"} 1\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"no_intents\"} 2\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"escalated\"} 3\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"deferred\"} 4\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"failed\"} 5\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"unknown\"} 6\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"already_sent\"} 8\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"max_prompts\"} 9\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"invalid_address\"} 10\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"released\"} 11\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"lost_lease\"} 12\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"superseded\"} 13\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"quiet_hours\"} 14\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"member_capped\"} 15\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"gave_up\"} 16\n"
    "recovery_worker_last_sweep_orchestrations{outcome=\"resent_in_doubt\"} 17\n"
    "# HELP recovery_worker_last_sweep_processed Orchestrations the last sweep claimed and "
    "processed.\n"
    "# TYPE recovery_worker_last_sweep_processed gauge\n"
    "recovery_worker_last_sweep_processed 20\n"
    "# HELP recovery_worker_last_sweep_duration_seconds How long the last sweep took.\n"
    "# TYPE recovery_worker_last_sweep_duration_seconds gauge\n"
    "recovery_worker_last_sweep_duration_seconds 1.534\n";

static const char report_pace[] =
    "# HELP recovery_worker_last_sweep_throttle_replies Throttling replies (421, 454, 4.7.x "
    "rate) the relay sent during the last sweep.\n"
    "# TYPE recovery_worker_last_sweep_throttle_replies gauge\n"
    "recovery_worker_last_sweep_throttle_replies 16\n"
    "# HELP recovery_worker_last_sweep_refused_sessions SMTP sessions the relay refused "
    "(connection cap, 4xx greeting) during the last sweep.\n"
    "# TYPE recovery_worker_last_sweep_refused_sessions gauge\n"
    "recovery_worker_last_sweep_refused_sessions 17\n"
    "# HELP recovery_worker_last_sweep_send_rate Messages per second the last sweep was allowed "
    "to send at its end (smtp.max_rate, or less after throttling); 0 when unlimited.\n"
    "# TYPE recovery_worker_last_sweep_send_rate gauge\n"
    "recovery_worker_last_sweep_send_rate 7.5\n"
    "# HELP recovery_worker_last_sweep_quota_exhausted 1 if the relay's daily quota ran out "
    "during the last sweep.\n"
    "# TYPE recovery_worker_last_sweep_quota_exhausted gauge\n"
    "recovery_worker_last_sweep_quota_exhausted 1\n";

static void
test_report_sweep_metrics_text_is_exact_after_a_completed_sweep(void **state)
{
    (void)state;
    struct sweep_summary sum = fixed_summary();
    struct metrics m;
    metrics_init(&m);
    assert_true(report_sweep_metrics(&m, &sum, true, 1763884800.5, 42, 3600.25));
    char expected[8192];
    snprintf(expected, sizeof expected, "%s%s%s", report_head,
             "# HELP recovery_worker_last_sweep_success 1 if the last sweep completed, 0 if it "
             "was cut short.\n"
             "# TYPE recovery_worker_last_sweep_success gauge\n"
             "recovery_worker_last_sweep_success 1\n"
             "# HELP recovery_worker_last_sweep_timestamp_seconds When the last sweep ended, in "
             "seconds since the epoch.\n"
             "# TYPE recovery_worker_last_sweep_timestamp_seconds gauge\n"
             "recovery_worker_last_sweep_timestamp_seconds 1763884800.5\n"
             "# HELP recovery_worker_last_success_timestamp_seconds When the last completed "
             "sweep ended, in seconds since the epoch.\n"
             "# TYPE recovery_worker_last_success_timestamp_seconds gauge\n"
             "recovery_worker_last_success_timestamp_seconds 1763884800.5\n"
             "# HELP recovery_worker_due_orchestrations Orchestrations due for a recovery "
             "action after the last sweep.\n"
             "# TYPE recovery_worker_due_orchestrations gauge\n"
             "recovery_worker_due_orchestrations 42\n"
             "# HELP recovery_worker_oldest_due_age_seconds How long the oldest due "
             "orchestration has been due, after the last sweep.\n"
             "# TYPE recovery_worker_oldest_due_age_seconds gauge\n"
             "recovery_worker_oldest_due_age_seconds 3600.25\n",
             report_pace);
    assert_string_equal(metrics_text(&m), expected);
    metrics_free(&m);
}

static void
test_report_sweep_metrics_after_a_failed_sweep_leaves_out_last_success_and_unknown_backlog(
    void **state)
{
    (void)state;
    struct sweep_summary sum = fixed_summary();
    struct metrics m;
    metrics_init(&m);
    assert_true(report_sweep_metrics(&m, &sum, false, 1763884800, -1, -1));
    char expected[8192];
    snprintf(expected, sizeof expected, "%s%s%s", report_head,
             "# HELP recovery_worker_last_sweep_success 1 if the last sweep completed, 0 if it "
             "was cut short.\n"
             "# TYPE recovery_worker_last_sweep_success gauge\n"
             "recovery_worker_last_sweep_success 0\n"
             "# HELP recovery_worker_last_sweep_timestamp_seconds When the last sweep ended, in "
             "seconds since the epoch.\n"
             "# TYPE recovery_worker_last_sweep_timestamp_seconds gauge\n"
             "recovery_worker_last_sweep_timestamp_seconds 1763884800\n",
             report_pace);
    assert_string_equal(metrics_text(&m), expected);
    metrics_free(&m);
}

static void
test_report_tables_name_every_family_and_outcome_once(void **state)
{
    (void)state;
    static const char *const names[] = {
        "recovery_worker_last_sweep_orchestrations",
        "recovery_worker_last_sweep_processed",
        "recovery_worker_last_sweep_duration_seconds",
        "recovery_worker_last_sweep_success",
        "recovery_worker_last_sweep_timestamp_seconds",
        "recovery_worker_last_success_timestamp_seconds",
        "recovery_worker_due_orchestrations",
        "recovery_worker_oldest_due_age_seconds",
        "recovery_worker_last_sweep_throttle_replies",
        "recovery_worker_last_sweep_refused_sessions",
        "recovery_worker_last_sweep_send_rate",
        "recovery_worker_last_sweep_quota_exhausted",
    };
    size_t n = 0;
    const struct metrics_family *f = report_families(&n);
    assert_int_equal(n, sizeof names / sizeof names[0]);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(f[i].name, names[i]);
        assert_true(metrics_name_valid(f[i].name));
        assert_int_equal(f[i].type, METRICS_GAUGE);
        assert_non_null(f[i].help);
    }
    static const char *const labels[] = {
        "sent",     "skipped_opt_out", "no_intents",   "escalated",   "deferred",
        "failed",   "unknown",         "already_sent", "max_prompts", "invalid_address",
        "released", "lost_lease",      "superseded",   "quiet_hours", "member_capped",
        "gave_up",  "resent_in_doubt",
    };
    size_t k = 0;
    const struct report_outcome *o = report_outcomes(&k);
    assert_int_equal(k, sizeof labels / sizeof labels[0]);
    for (size_t i = 0; i < k; i++) {
        assert_string_equal(o[i].outcome, labels[i]);
        assert_true(o[i].offset + sizeof(long) <= offsetof(struct sweep_summary, batches));
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(o[i].offset, o[j].offset);
    }
}

static void
test_report_live_metrics_keep_the_last_success_across_a_failed_sweep(void **state)
{
    (void)state;
    struct sweep_summary sum = fixed_summary();
    long unsub[REPORT_UNSUB_COUNT] = {3, 1, 0, 7, 2, 0};
    struct report_live l = {
        .last = &sum,
        .last_success = false,
        .last_ended_s = 2000,
        .last_success_s = 1000,
        .database_up = true,
        .due = 5,
        .oldest_due_age_s = 60,
        .start_time_s = 900,
        .unsubscribes = unsub,
    };
    struct metrics m;
    metrics_init(&m);
    assert_true(report_live_metrics(&m, &l));
    const char *t = metrics_text(&m);
    assert_string_contains(t, "recovery_worker_last_sweep_success 0\n");
    assert_string_contains(t, "recovery_worker_last_sweep_timestamp_seconds 2000\n");
    assert_string_contains(t, "recovery_worker_last_success_timestamp_seconds 1000\n");
    assert_string_contains(t, "recovery_worker_due_orchestrations 5\n");
    assert_string_contains(t, "recovery_worker_database_up 1\n");
    assert_string_contains(t, "process_start_time_seconds 900\n");
    assert_string_contains(t, "# TYPE recovery_worker_unsubscribe_requests_total counter\n");
    assert_string_contains(t, "recovery_worker_unsubscribe_requests_total{result=\"invalid\"} 7\n");
    metrics_free(&m);

    /* serve alone, database down: no sweep families, no backlog, database_up 0 */
    struct report_live down = {.due = -1, .oldest_due_age_s = -1, .start_time_s = 900};
    metrics_init(&m);
    assert_true(report_live_metrics(&m, &down));
    t = metrics_text(&m);
    assert_string_lacks(t, "last_sweep");
    assert_string_lacks(t, "due_orchestrations");
    assert_string_contains(t, "recovery_worker_database_up 0\n");
    assert_string_contains(
        t, "recovery_worker_unsubscribe_requests_total{result=\"unsubscribed\"} 0\n");
    metrics_free(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_exposition_text_is_exact_for_fixed_input),
        cmocka_unit_test(test_metrics_special_values_are_spelled_as_the_format_wants),
        cmocka_unit_test(test_metrics_label_values_escape_backslash_quote_and_newline),
        cmocka_unit_test(test_metrics_family_split_in_two_fails_the_builder),
        cmocka_unit_test(test_metrics_invalid_names_fail_the_builder),
        cmocka_unit_test(test_metrics_push_url_puts_job_and_instance_in_the_path),
        cmocka_unit_test(test_metrics_push_url_percent_encodes_other_characters),
        cmocka_unit_test(test_metrics_push_url_uses_base64_for_slash_empty_and_dots),
        cmocka_unit_test(test_metrics_push_url_rejects_what_the_pushgateway_cannot_take),
        cmocka_unit_test(test_metrics_heartbeat_url_appends_the_phase_before_the_query),
        cmocka_unit_test(test_http_status_err_classifies_answers),
        cmocka_unit_test(test_http_request_to_a_closed_port_is_unavailable_and_masks_the_password),
        cmocka_unit_test(test_http_request_refuses_other_schemes_as_config),
        cmocka_unit_test(test_metrics_heartbeat_failure_hides_the_check_path),
        cmocka_unit_test(test_report_sweep_metrics_text_is_exact_after_a_completed_sweep),
        cmocka_unit_test(
            test_report_sweep_metrics_after_a_failed_sweep_leaves_out_last_success_and_unknown_backlog),
        cmocka_unit_test(test_report_tables_name_every_family_and_outcome_once),
        cmocka_unit_test(test_report_live_metrics_keep_the_last_success_across_a_failed_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
