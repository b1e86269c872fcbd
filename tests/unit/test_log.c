/* Unit tests for common/log: the URL masker in each of its forms (a printed setting, an
 * HTTP error message, a heartbeat whose path is a secret) and the level names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"

static void
assert_masked(const char *url, unsigned flags, const char *expected)
{
    char *got = log_mask_url(url, flags);
    assert_non_null(got);
    assert_string_equal(got, expected);
    free(got);
}

#define HTTP_MASK (LOG_MASK_USERINFO | LOG_MASK_QUERY)

static void
test_log_mask_url_hides_only_the_password_by_default(void **state)
{
    (void)state;
    assert_masked("https://user:s3cret@pgw.example:9091/p?q=1#f", 0,
                  "https://user:****@pgw.example:9091/p?q=1#f");
    assert_masked("https://token@pgw.example/", 0, "https://token@pgw.example/");
    assert_masked("http://pgw:9091", 0, "http://pgw:9091");
    assert_masked("postgresql://u:p@db/shop?sslmode=require", 0,
                  "postgresql://u:****@db/shop?sslmode=require");
}

static void
test_log_mask_url_hides_credentials_query_and_optionally_the_path(void **state)
{
    (void)state;
    assert_masked("https://user:s3cret@pgw.example:9091/metrics/job/x", HTTP_MASK,
                  "https://***@pgw.example:9091/metrics/job/x");
    assert_masked("https://token@pgw.example/", HTTP_MASK, "https://***@pgw.example/");
    assert_masked("https://a:b@c@host/p?key=v#f", HTTP_MASK, "https://***@host/p?***");
    assert_masked("http://pgw:9091", HTTP_MASK, "http://pgw:9091");
    assert_masked("https://hc.example/ping/0f3a-secret/start", HTTP_MASK | LOG_MASK_PATH,
                  "https://hc.example/***");
    assert_masked("https://hc.example", HTTP_MASK | LOG_MASK_PATH, "https://hc.example");
}

static void
test_log_mask_url_hides_a_password_holding_a_hash_or_colon(void **state)
{
    (void)state;
    assert_masked("https://u:pa#s:s@host/p", 0, "https://u:****@host/p");
    assert_masked("https://u:pa#ss@host/p", HTTP_MASK, "https://***@host/p");
    assert_null(log_mask_url(NULL, 0));
}

static void
test_log_level_names_round_trip(void **state)
{
    (void)state;
    enum log_level l = LOG_LEVEL_ERROR;
    assert_true(log_level_parse("DEBUG", &l));
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_true(log_level_parse("warning", &l));
    assert_int_equal(l, LOG_LEVEL_WARN);
    assert_false(log_level_parse("loud", &l));
    assert_string_equal(log_level_name(LOG_LEVEL_INFO), "info");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_mask_url_hides_only_the_password_by_default),
        cmocka_unit_test(test_log_mask_url_hides_credentials_query_and_optionally_the_path),
        cmocka_unit_test(test_log_mask_url_hides_a_password_holding_a_hash_or_colon),
        cmocka_unit_test(test_log_level_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
