/* test_log: common/log.c: level names and filtering, the shape of each JSON line (one line,
 * ts/level/msg first, then the context, then the caller's fields), the URL masker in each of
 * its forms (a printed setting, an HTTP error message, a heartbeat whose path is a secret),
 * and that a masked URL or connection string logged never shows its password. Lines are read
 * back from stderr, redirected to a file. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "support.h"

#include "db.h"
#include "log.h"

struct capture {
    char *dir;
    char *path;
    int saved; /* the real stderr */
};

static void
capture_begin(struct capture *c)
{
    c->dir = support_temp_dir("test_log");
    c->path = support_path(c->dir, "stderr");
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

/* What was written to stderr since capture_begin (new; free()). */
static char *
capture_end(struct capture *c)
{
    fflush(stderr);
    assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
    close(c->saved);
    char *text = support_read_file(c->path);
    assert_non_null(text);
    free(c->path);
    support_temp_dir_remove(c->dir);
    return text;
}

/* The one line text holds, parsed (new; json_decref). */
static json_t *
only_line(const char *text)
{
    size_t len = strlen(text);
    assert_true(len > 0);
    assert_int_equal(text[len - 1], '\n');
    assert_ptr_equal(strchr(text, '\n'), text + len - 1);
    json_error_t err;
    json_t *j = json_loadb(text, len, 0, &err);
    if (j == NULL)
        fail_msg("not JSON (%s): %s", err.text, text);
    assert_true(json_is_object(j));
    return j;
}

static const char *
str_field(const json_t *j, const char *key)
{
    const json_t *v = json_object_get(j, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int
setup(void **state)
{
    (void)state;
    log_set_level(LOG_LEVEL_INFO);
    log_clear_context();
    return 0;
}

static void
test_log_level_names_parse_in_any_case(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum log_level level;
    } cases[] = {
        {"debug", LOG_LEVEL_DEBUG},  {"INFO", LOG_LEVEL_INFO},   {"Warn", LOG_LEVEL_WARN},
        {"warning", LOG_LEVEL_WARN}, {"error", LOG_LEVEL_ERROR}, {"ERROR", LOG_LEVEL_ERROR},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        enum log_level got = LOG_LEVEL_ERROR;
        if (!log_level_parse(cases[i].text, &got))
            fail_msg("\"%s\" refused", cases[i].text);
        assert_int_equal(got, cases[i].level);
    }
    static const char *const bad[] = {"", "verbose", "fatal", "info ", "3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        enum log_level got = LOG_LEVEL_DEBUG;
        if (log_level_parse(bad[i], &got))
            fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(got, LOG_LEVEL_DEBUG); /* untouched */
    }
}

static void
test_log_level_names_are_stable(void **state)
{
    (void)state;
    assert_string_equal(log_level_name(LOG_LEVEL_DEBUG), "debug");
    assert_string_equal(log_level_name(LOG_LEVEL_INFO), "info");
    assert_string_equal(log_level_name(LOG_LEVEL_WARN), "warn");
    assert_string_equal(log_level_name(LOG_LEVEL_ERROR), "error");
    /* each name parses back to its level */
    for (int l = LOG_LEVEL_DEBUG; l <= LOG_LEVEL_ERROR; l++) {
        enum log_level got;
        assert_true(log_level_parse(log_level_name((enum log_level)l), &got));
        assert_int_equal(got, l);
    }
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

static void
test_log_lines_below_the_level_are_dropped(void **state)
{
    (void)state;
    log_set_level(LOG_LEVEL_WARN);
    assert_false(log_enabled(LOG_LEVEL_DEBUG));
    assert_false(log_enabled(LOG_LEVEL_INFO));
    assert_true(log_enabled(LOG_LEVEL_WARN));
    assert_true(log_enabled(LOG_LEVEL_ERROR));
    struct capture c;
    capture_begin(&c);
    /* the fields of a dropped line are still freed (LeakSanitizer would say otherwise) */
    log_info("quiet", json_pack("{s:s}", "k", "v"));
    log_debug("quieter", NULL);
    log_warn("loud", NULL);
    char *text = capture_end(&c);
    json_t *j = only_line(text);
    assert_string_equal(str_field(j, "msg"), "loud");
    assert_string_equal(str_field(j, "level"), "warn");
    json_decref(j);
    free(text);

    log_set_level(LOG_LEVEL_DEBUG);
    assert_true(log_enabled(LOG_LEVEL_DEBUG));
}

static void
test_log_line_is_one_json_object_with_time_level_and_message_first(void **state)
{
    (void)state;
    struct capture c;
    capture_begin(&c);
    log_error("claim failed", json_pack("{s:s,s:i}", "orchestration_id", "o-1", "attempt", 2));
    char *text = capture_end(&c);
    json_t *j = only_line(text);
    /* key order is part of the shape: a reader's eye finds time, level and message first */
    assert_true(strncmp(text, "{\"ts\":\"", 7) == 0);
    assert_string_contains(text, "\",\"level\":\"error\",\"msg\":\"claim failed\",");
    const char *ts = str_field(j, "ts");
    assert_non_null(ts);
    /* 2026-03-03T09:00:00.123Z: UTC with milliseconds */
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[4], '-');
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    assert_string_equal(str_field(j, "orchestration_id"), "o-1");
    assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 2);
    json_decref(j);
    free(text);
}

static void
test_log_control_characters_and_non_ascii_stay_inside_the_line(void **state)
{
    (void)state;
    struct capture c;
    capture_begin(&c);
    log_warn("relay said:\r\n550 no\n{\"level\":\"fake\"}",
             json_pack("{s:s}", "name", "Zo\xc3\xab \xf0\x9f\x9b\x92"));
    char *text = capture_end(&c);
    json_t *j = only_line(text); /* one line whatever the message holds */
    for (const char *p = text; *p != '\0'; p++)
        assert_true((unsigned char)*p < 0x80);
    assert_string_equal(str_field(j, "msg"), "relay said:\r\n550 no\n{\"level\":\"fake\"}");
    assert_string_equal(str_field(j, "level"), "warn");
    assert_string_equal(str_field(j, "name"), "Zo\xc3\xab \xf0\x9f\x9b\x92");
    json_decref(j);
    free(text);
}

static void
test_log_context_is_carried_by_every_line_until_cleared(void **state)
{
    (void)state;
    log_set_context("run_id", "0123456789abcdef");
    log_set_context("command", "sweep");
    log_set_context("run_id", "fedcba9876543210"); /* replaced, not repeated */
    struct capture c;
    capture_begin(&c);
    log_info("first", NULL);
    char *text = capture_end(&c);
    json_t *j = only_line(text);
    assert_string_equal(str_field(j, "run_id"), "fedcba9876543210");
    assert_string_equal(str_field(j, "command"), "sweep");
    assert_int_equal(json_object_size(j), 5);
    json_decref(j);
    free(text);

    log_clear_context();
    capture_begin(&c);
    log_info("second", NULL);
    text = capture_end(&c);
    j = only_line(text);
    assert_null(json_object_get(j, "run_id"));
    assert_int_equal(json_object_size(j), 3);
    json_decref(j);
    free(text);
}

static void
test_log_fields_that_are_not_an_object_are_left_out(void **state)
{
    (void)state;
    struct capture c;
    capture_begin(&c);
    log_info("odd fields", json_string("not an object"));
    log_info("array fields", json_pack("[i,i]", 1, 2));
    char *text = capture_end(&c);
    char *second = strchr(text, '\n') + 1;
    json_t *j = only_line(second);
    assert_int_equal(json_object_size(j), 3);
    json_decref(j);
    second[0] = '\0';
    j = only_line(text);
    assert_int_equal(json_object_size(j), 3);
    assert_string_equal(str_field(j, "msg"), "odd fields");
    json_decref(j);
    free(text);
}

/* ---- masking ---------------------------------------------------------------------------- */

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
    /* a '?' ends the authority of an RFC 3986 URL, but not with LOG_MASK_SLASH_ONLY */
    assert_masked("https://h?k=a@b", HTTP_MASK, "https://h?***");
    assert_masked("postgresql://u:p?w@db/shop", LOG_MASK_SLASH_ONLY, "postgresql://u:****@db/shop");
    assert_null(log_mask_url(NULL, 0));
}

static void
test_log_a_masked_connection_string_never_prints_the_password(void **state)
{
    (void)state;
    static const char *const conninfos[] = {
        "postgresql://worker:s3cr3t-pw@db.example/shop",
        "host=db.example user=worker password=s3cr3t-pw",
        "host=db.example password='s3cr3t-pw' user=worker",
    };
    struct capture c;
    capture_begin(&c);
    for (size_t i = 0; i < sizeof conninfos / sizeof *conninfos; i++) {
        char *masked = db_mask_conninfo(conninfos[i]);
        log_error("cannot connect", json_pack("{s:s}", "database", masked));
        free(masked);
    }
    /* a URL with credentials, as an HTTP failure names it */
    char *url = log_mask_url("https://worker:s3cr3t-pw@pgw.example/metrics?key=s3cr3t", HTTP_MASK);
    log_error("push failed", json_pack("{s:s}", "url", url));
    free(url);
    char *text = capture_end(&c);
    assert_string_lacks(text, "s3cr3t");
    assert_string_contains(text, "\"database\":\"postgresql://worker:****@db.example/shop\"");
    assert_string_contains(text, "\"url\":\"https://***@pgw.example/metrics?***\"");
    free(text);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup(name, setup)
    const struct CMUnitTest tests[] = {
        T(test_log_level_names_parse_in_any_case),
        T(test_log_level_names_are_stable),
        T(test_log_level_names_round_trip),
        T(test_log_lines_below_the_level_are_dropped),
        T(test_log_line_is_one_json_object_with_time_level_and_message_first),
        T(test_log_control_characters_and_non_ascii_stay_inside_the_line),
        T(test_log_context_is_carried_by_every_line_until_cleared),
        T(test_log_fields_that_are_not_an_object_are_left_out),
        T(test_log_mask_url_hides_only_the_password_by_default),
        T(test_log_mask_url_hides_credentials_query_and_optionally_the_path),
        T(test_log_mask_url_hides_a_password_holding_a_hash_or_colon),
        T(test_log_a_masked_connection_string_never_prints_the_password),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
