/* test_config: the generic table-driven loader, with a small table of its own (a mail job
 * with smtp and sweep sections), and the bad_*.yaml / bad_*.expected cases in data/. */
#include "support.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

struct job {
    char *host;
    int port;
    int tls;
    char *password;
    char *greeting;
    int batch_size;
    long long lease_ms;
    bool dry_run;
    int retries;
};

static const char *const tls_choices[] = {"none", "starttls", NULL};

static const struct config_key job_table[] = {
    {.path = "smtp.host",
     .type = CONFIG_STRING,
     .offset = CONFIG_FIELD(struct job, host, char *),
     .def = "localhost",
     .env = "JOB_HOST",
     .help = "relay host"},
    {.path = "smtp.port",
     .type = CONFIG_INT,
     .offset = CONFIG_FIELD(struct job, port, int),
     .def = "587",
     .env = "JOB_PORT",
     .min = 1,
     .max = 65535,
     .help = "relay port"},
    {.path = "smtp.tls",
     .type = CONFIG_ENUM,
     .offset = CONFIG_ENUM_FIELD(struct job, tls),
     .def = "starttls",
     .choices = tls_choices,
     .help = "TLS mode"},
    {.path = "smtp.password",
     .type = CONFIG_STRING,
     .offset = CONFIG_FIELD(struct job, password, char *),
     .env = "JOB_PASSWORD",
     .flags = CONFIG_SECRET | CONFIG_FILE_ENV,
     .help = "AUTH password"},
    {.path = "smtp.greeting",
     .type = CONFIG_STRING,
     .offset = CONFIG_FIELD(struct job, greeting, char *),
     .help = "optional text"},
    {.path = "sweep.batch_size",
     .type = CONFIG_INT,
     .offset = CONFIG_FIELD(struct job, batch_size, int),
     .def = "500",
     .min = 1,
     .max = 10000,
     .help = "rows per batch"},
    {.path = "sweep.lease",
     .type = CONFIG_DURATION,
     .offset = CONFIG_FIELD(struct job, lease_ms, long long),
     .def = "5m",
     .min = 5000,
     .max = 86400000,
     .help = "lease"},
    {.path = "sweep.dry_run",
     .type = CONFIG_BOOL,
     .offset = CONFIG_FIELD(struct job, dry_run, bool),
     .def = "no",
     .help = "send nothing"},
    {.path = "sweep.retries",
     .type = CONFIG_INT,
     .offset = CONFIG_FIELD(struct job, retries, int),
     .def = "-1",
     .help = "unbounded"},
    {.path = NULL},
};

static const char *const job_env[] = {
    "JOB_HOST",          "JOB_PORT",
    "JOB_PASSWORD",      "JOB_PASSWORD_FILE",
    "JOB_SMTP_HOST",     "JOB_SMTP_PORT",
    "JOB_SMTP_TLS",      "JOB_SMTP_PASSWORD",
    "JOB_SMTP_GREETING", "JOB_SWEEP_BATCH_SIZE",
    "JOB_SWEEP_LEASE",   "JOB_SWEEP_DRY_RUN",
    "JOB_SWEEP_RETRIES", NULL,
};

struct fixture {
    char *dir;
    char *path; /* the last file write_file wrote */
    struct config *c;
    struct job job;
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = support_temp_dir("test_config");
    for (size_t i = 0; job_env[i] != NULL; i++)
        unsetenv(job_env[i]);
    f->c = config_new(job_table, "JOB_");
    assert_non_null(f->c);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    config_free_values(job_table, &f->job);
    config_free(f->c);
    for (size_t i = 0; job_env[i] != NULL; i++)
        unsetenv(job_env[i]);
    support_temp_dir_remove(f->dir);
    free(f->path);
    free(f);
    return 0;
}

/* Writes text to DIR/name and returns the path (borrowed: valid until the next call). */
static const char *
write_file(struct fixture *f, const char *name, const char *text)
{
    free(f->path);
    f->path = support_path(f->dir, name);
    support_write_file(f->path, text);
    return f->path;
}

static size_t
load(struct fixture *f, const char *path)
{
    return config_load(f->c, &f->job, path, false);
}

static void
test_config_defaults_fill_every_key(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, NULL), 0);
    assert_string_equal(f->job.host, "localhost");
    assert_int_equal(f->job.port, 587);
    assert_int_equal(f->job.tls, 1);
    assert_null(f->job.password);
    assert_null(f->job.greeting);
    assert_int_equal(f->job.batch_size, 500);
    assert_int_equal(f->job.lease_ms, 300000);
    assert_false(f->job.dry_run);
    assert_int_equal(f->job.retries, -1);
    assert_null(config_file(f->c));
    assert_int_equal(config_origin(f->c, "smtp.port")->source, CONFIG_SOURCE_DEFAULT);
    struct err e = {0};
    assert_int_equal(config_report(f->c, NULL, &e), ERR_OK);
}

static void
test_config_reads_each_type_from_file(void **state)
{
    struct fixture *f = *state;
    const char *path = write_file(f, "job.yaml",
                                  "# a comment\n"
                                  "smtp:\n"
                                  "  host: mail.example.org\n"
                                  "  port: 2525\n"
                                  "  tls: NONE\n"
                                  "  password: 's3cret'\n"
                                  "  greeting: \"hello\\tworld\"\n"
                                  "sweep:\n"
                                  "  batch_size: 20\n"
                                  "  lease: 7500ms\n"
                                  "  dry_run: on\n"
                                  "  retries: -7\n");
    assert_int_equal(load(f, path), 0);
    assert_string_equal(f->job.host, "mail.example.org");
    assert_int_equal(f->job.port, 2525);
    assert_int_equal(f->job.tls, 0);
    assert_string_equal(f->job.password, "s3cret");
    assert_string_equal(f->job.greeting, "hello\tworld");
    assert_int_equal(f->job.batch_size, 20);
    assert_int_equal(f->job.lease_ms, 7500);
    assert_true(f->job.dry_run);
    assert_int_equal(f->job.retries, -7);
    assert_string_equal(config_file(f->c), path);
}

static void
test_config_records_where_each_value_came_from(void **state)
{
    struct fixture *f = *state;
    const char *path = write_file(f, "job.yaml", "smtp:\n  host: a\n\n  port:   25\n");
    setenv("JOB_SWEEP_LEASE", "10s", 1);
    assert_int_equal(load(f, path), 0);
    const struct config_origin *o = config_origin(f->c, "smtp.port");
    assert_int_equal(o->source, CONFIG_SOURCE_FILE);
    assert_int_equal(o->line, 4);
    assert_int_equal(o->column, 3);
    char buf[600], want[600];
    config_origin_describe(f->c, "smtp.port", buf, sizeof buf);
    snprintf(want, sizeof want, "%s:4:3", path);
    assert_string_equal(buf, want);
    config_origin_describe(f->c, "sweep.lease", buf, sizeof buf);
    assert_string_equal(buf, "env JOB_SWEEP_LEASE");
    config_origin_describe(f->c, "sweep.batch_size", buf, sizeof buf);
    assert_string_equal(buf, "default");
    assert_null(config_origin(f->c, "smtp.nope"));
}

static void
test_config_parses_durations_with_units(void **state)
{
    static const struct {
        const char *text;
        long long ms;
    } good[] = {
        {"1500ms", 1500}, {"30s", 30000}, {"5m", 300000}, {"6h", 21600000},
        {"1d", 86400000}, {"45", 45000},  {"0", 0},       {"0ms", 0},
    };
    static const char *const bad[] = {
        "",
        "5x",
        "-1s",
        "+5s",
        "1.5h",
        "s",
        " 5s",
        "5 s",
        "5S",
        "5mm",
        "1h30m",
        "99999999999999999d",
        "9223372036854775807s",
        "99999999999999999999",
    };
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        long long ms = -1;
        assert_true(config_parse_duration(good[i].text, &ms));
        assert_int_equal(ms, good[i].ms);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long long ms = -1;
        if (config_parse_duration(bad[i], &ms))
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(ms, -1);
    }
}

static void
test_config_formats_durations_in_largest_exact_unit(void **state)
{
    static const struct {
        long long ms;
        const char *text;
    } cases[] = {
        {0, "0s"},      {1500, "1500ms"}, {30000, "30s"},   {90000, "90s"},
        {300000, "5m"}, {7200000, "2h"},  {86400000, "1d"}, {2592000000LL, "30d"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        config_format_duration(cases[i].ms, buf, sizeof buf);
        assert_string_equal(buf, cases[i].text);
        long long back;
        assert_true(config_parse_duration(buf, &back));
        assert_int_equal(back, cases[i].ms);
    }
}

static void
test_config_parses_booleans(void **state)
{
    static const char *const yes[] = {"true", "True", "yes", "YES", "on", "1"};
    static const char *const no[] = {"false", "FALSE", "no", "No", "off", "0"};
    static const char *const bad[] = {"", "y", "n", "2", "truee", "enabled"};
    (void)state;
    for (size_t i = 0; i < 6; i++) {
        bool b = false;
        assert_true(config_parse_bool(yes[i], &b));
        assert_true(b);
        assert_true(config_parse_bool(no[i], &b));
        assert_false(b);
        b = true;
        assert_false(config_parse_bool(bad[i], &b));
        assert_true(b);
    }
}

static void
test_config_parses_integers(void **state)
{
    long long v = 0;
    (void)state;
    assert_true(config_parse_int("42", &v));
    assert_int_equal(v, 42);
    assert_true(config_parse_int("-3", &v));
    assert_int_equal(v, -3);
    assert_false(config_parse_int("", &v));
    assert_false(config_parse_int(" 1", &v));
    assert_false(config_parse_int("1 ", &v));
    assert_false(config_parse_int("0x10", &v));
    assert_false(config_parse_int("1e3", &v));
    assert_false(config_parse_int("-", &v));
    assert_false(config_parse_int("99999999999999999999", &v));
}

static void
test_config_rejects_out_of_range_values(void **state)
{
    struct fixture *f = *state;
    const char *path = write_file(f, "job.yaml",
                                  "smtp:\n  port: 70000\nsweep:\n  batch_size: 0\n"
                                  "  lease: 2s\n  retries: 3000000000\n");
    assert_int_equal(load(f, path), 4);
    char want[600];
    snprintf(want, sizeof want,
             "%s:2:9: smtp.port: expected an integer between 1 and 65535, got \"70000\"", path);
    assert_string_equal(config_problem_at(f->c, 0), want);
    snprintf(want, sizeof want,
             "%s:4:15: sweep.batch_size: expected an integer between 1 and 10000, got \"0\"", path);
    assert_string_equal(config_problem_at(f->c, 1), want);
    snprintf(want, sizeof want,
             "%s:5:10: sweep.lease: expected a duration between 5s and 1d (unit ms, s, m, h or "
             "d), got \"2s\"",
             path);
    assert_string_equal(config_problem_at(f->c, 2), want);
    snprintf(want, sizeof want, "%s:6:12: sweep.retries: expected an integer, got \"3000000000\"",
             path);
    assert_string_equal(config_problem_at(f->c, 3), want);
    /* a rejected value leaves the default in place */
    assert_int_equal(f->job.port, 587);
    assert_int_equal(f->job.batch_size, 500);
}

static void
test_config_env_overrides_file(void **state)
{
    struct fixture *f = *state;
    const char *path = write_file(f, "job.yaml", "smtp:\n  port: 2525\n  host: file-host\n");
    setenv("JOB_PORT", "465", 1);
    assert_int_equal(load(f, path), 0);
    assert_int_equal(f->job.port, 465);
    assert_string_equal(f->job.host, "file-host");
    const struct config_origin *o = config_origin(f->c, "smtp.port");
    assert_int_equal(o->source, CONFIG_SOURCE_ENV);
    assert_string_equal(o->env, "JOB_PORT");
}

static void
test_config_env_prefix_names_every_nonsecret_key(void **state)
{
    struct fixture *f = *state;
    setenv("JOB_SWEEP_BATCH_SIZE", "7", 1);
    setenv("JOB_SWEEP_DRY_RUN", "yes", 1);
    setenv("JOB_SMTP_TLS", "none", 1);
    setenv("JOB_SMTP_PASSWORD", "not-read", 1); /* secrets have no prefixed name */
    assert_int_equal(load(f, NULL), 0);
    assert_int_equal(f->job.batch_size, 7);
    assert_true(f->job.dry_run);
    assert_int_equal(f->job.tls, 0);
    assert_null(f->job.password);
}

static void
test_config_own_env_beats_prefixed_env(void **state)
{
    struct fixture *f = *state;
    setenv("JOB_PORT", "25", 1);
    setenv("JOB_SMTP_PORT", "26", 1);
    assert_int_equal(load(f, NULL), 0);
    assert_int_equal(f->job.port, 25);
    assert_string_equal(config_origin(f->c, "smtp.port")->env, "JOB_PORT");
}

static void
test_config_invalid_env_value_is_reported(void **state)
{
    struct fixture *f = *state;
    setenv("JOB_PORT", "abc", 1);
    setenv("JOB_SWEEP_DRY_RUN", "maybe", 1);
    setenv("JOB_SWEEP_BATCH_SIZE", "", 1);
    assert_int_equal(load(f, NULL), 3);
    assert_string_equal(config_problem_at(f->c, 0),
                        "environment: JOB_PORT: expected an integer between 1 and 65535, got "
                        "\"abc\"");
    assert_string_equal(config_problem_at(f->c, 1),
                        "environment: JOB_SWEEP_BATCH_SIZE: expected an integer between 1 and "
                        "10000, got \"\"");
    assert_string_equal(config_problem_at(f->c, 2),
                        "environment: JOB_SWEEP_DRY_RUN: expected true or false (or yes/no, "
                        "on/off, 1/0), got \"maybe\"");
}

static void
test_config_empty_env_sets_string_empty(void **state)
{
    struct fixture *f = *state;
    const char *path = write_file(f, "job.yaml", "smtp:\n  greeting: hi\n");
    setenv("JOB_SMTP_GREETING", "", 1);
    assert_int_equal(load(f, path), 0);
    assert_non_null(f->job.greeting);
    assert_string_equal(f->job.greeting, "");
}

static void
test_config_yaml_null_unsets_string(void **state)
{
    struct fixture *f = *state;
    const char *path = write_file(f, "job.yaml",
                                  "smtp:\n  host:\n  greeting: ~\n"
                                  "  password: \"\"\n");
    assert_int_equal(load(f, path), 0);
    assert_null(f->job.host);
    assert_null(f->job.greeting);
    assert_string_equal(f->job.password, "");
    assert_int_equal(config_origin(f->c, "smtp.host")->source, CONFIG_SOURCE_FILE);
}

static void
test_config_file_env_reads_secret_from_file(void **state)
{
    struct fixture *f = *state;
    const char *path = write_file(f, "password", "pa ss\r\n\n");
    setenv("JOB_PASSWORD_FILE", path, 1);
    assert_int_equal(load(f, NULL), 0);
    assert_string_equal(f->job.password, "pa ss");
    assert_string_equal(config_origin(f->c, "smtp.password")->env, "JOB_PASSWORD_FILE");
}

static void
test_config_file_env_and_direct_env_conflict(void **state)
{
    struct fixture *f = *state;
    const char *path = write_file(f, "password", "x\n");
    setenv("JOB_PASSWORD_FILE", path, 1);
    setenv("JOB_PASSWORD", "y", 1);
    assert_int_equal(load(f, NULL), 1);
    assert_string_equal(config_problem_at(f->c, 0),
                        "environment: JOB_PASSWORD_FILE: set only one of JOB_PASSWORD and "
                        "JOB_PASSWORD_FILE");
    assert_null(f->job.password);
}

static void
test_config_file_env_unreadable_is_reported(void **state)
{
    struct fixture *f = *state;
    setenv("JOB_PASSWORD_FILE", "/nonexistent/secret", 1);
    assert_int_equal(load(f, NULL), 1);
    assert_string_equal(config_problem_at(f->c, 0),
                        "environment: JOB_PASSWORD_FILE: cannot read /nonexistent/secret: No "
                        "such file or directory");
}

static void
test_config_missing_optional_file_is_skipped(void **state)
{
    struct fixture *f = *state;
    char path[600];
    snprintf(path, sizeof path, "%s/absent.yaml", f->dir);
    assert_int_equal(config_load(f->c, &f->job, path, true), 0);
    assert_null(config_file(f->c));
    assert_int_equal(f->job.port, 587);
}

static void
test_config_unreadable_file_is_reported(void **state)
{
    struct fixture *f = *state;
    char path[600], want[700];
    snprintf(path, sizeof path, "%s/absent.yaml", f->dir);
    assert_int_equal(load(f, path), 1);
    snprintf(want, sizeof want, "%s: cannot read: No such file or directory", path);
    assert_string_equal(config_problem_at(f->c, 0), want);
    /* a directory exists but is not readable as a file, even when the file is optional */
    assert_int_equal(config_load(f->c, &f->job, f->dir, true), 1);
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", f->dir);
    assert_string_equal(config_problem_at(f->c, 0), want);
}

static void
test_config_late_problem_points_at_origin(void **state)
{
    struct fixture *f = *state;
    const char *path = write_file(f, "job.yaml", "sweep:\n  batch_size: 9\n");
    setenv("JOB_PORT", "26", 1);
    assert_int_equal(load(f, path), 0);
    config_problem(f->c, "sweep.batch_size", "must be even, not %d", f->job.batch_size);
    config_problem(f->c, "sweep.batch_size", "reported once per key");
    config_problem(f->c, "smtp.port", "is odd");
    config_problem(f->c, "sweep.lease", "is too short");
    assert_int_equal(config_problem_count(f->c), 3);
    char want[600];
    snprintf(want, sizeof want, "%s:2:3: sweep.batch_size: must be even, not 9", path);
    assert_string_equal(config_problem_at(f->c, 0), want);
    assert_string_equal(config_problem_at(f->c, 1), "environment: JOB_PORT: is odd");
    assert_string_equal(config_problem_at(f->c, 2), "sweep.lease: is too short");
    assert_null(config_problem_at(f->c, 3));
}

/* Found by tests/fuzz/fuzz_config: a reason quoting a value with a line break made one
 * problem into several lines, which could pass for problems of other keys. */
static void
test_config_late_problem_stays_on_one_line(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, NULL), 0);
    config_problem(f->c, "smtp.port", "\"%s\" is odd", "25\nsmtp.host: forged\r\x01\x7f");
    config_problem(f->c, "no.such_key", "tab\there");
    assert_int_equal(config_problem_count(f->c), 2);
    assert_string_equal(config_problem_at(f->c, 0),
                        "smtp.port: \"25?smtp.host: forged???\" is odd");
    assert_string_equal(config_problem_at(f->c, 1), "no.such_key: tab?here");
}

static void
test_config_report_writes_every_problem_and_keeps_the_first(void **state)
{
    struct fixture *f = *state;
    setenv("JOB_PORT", "0", 1);
    setenv("JOB_SWEEP_LEASE", "forever", 1);
    assert_int_equal(load(f, NULL), 2);
    struct support_out out;
    struct err e = {0};
    assert_int_equal(config_report(f->c, support_out_open(&out), &e), ERR_CONFIG);
    char *text = support_out_close(&out);
    assert_int_equal(e.code, ERR_CONFIG);
    assert_string_equal(e.msg, config_problem_at(f->c, 0));
    char want[1024];
    snprintf(want, sizeof want, "%s\n%s\n", config_problem_at(f->c, 0), config_problem_at(f->c, 1));
    assert_string_equal(text, want);
    free(text);
}

static char *
print_job(struct fixture *f)
{
    struct support_out out;
    config_print(f->c, job_table, &f->job, support_out_open(&out));
    return support_out_close(&out);
}

static void
test_config_print_masks_secrets_and_shows_origins(void **state)
{
    struct fixture *f = *state;
    const char *path = write_file(f, "job.yaml",
                                  "smtp:\n  password: \"hunter2\"\n"
                                  "  greeting: \"say \\\"hi\\\"\"\n");
    setenv("JOB_PORT", "2525", 1);
    assert_int_equal(load(f, path), 0);
    char *text = print_job(f);
    assert_string_lacks(text, "hunter2");
    char want[700];
    const char *line = "  password: \"****\"";
    snprintf(want, sizeof want, "%s%*s# from %s:2:3\n", line, 44 - (int)strlen(line), "", path);
    assert_string_contains(text, want);
    assert_string_contains(text, "  port: 2525");
    assert_string_contains(text, "# from env JOB_PORT\n");
    assert_string_contains(text, "  greeting: \"say \\\"hi\\\"\"");
    assert_string_contains(text, "  lease: 5m");
    assert_string_contains(text, "  dry_run: false");
    assert_string_contains(text, "  tls: starttls");
    assert_string_contains(text, "# default\n");
    assert_true(strncmp(text, "smtp:\n", 6) == 0);
    assert_string_contains(text, "\nsweep:\n");
    free(text);
}

/* Removes each line's trailing "# ..." origin comment (the last '#' after a space) and the
 * padding before it. */
static void
strip_comments(char *text)
{
    char *w = text;
    for (char *line = text; *line != '\0';) {
        char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        size_t keep = len;
        for (size_t i = len; i > 0; i--) {
            if (line[i - 1] == '#' && i >= 2 && line[i - 2] == ' ') {
                keep = i - 1;
                break;
            }
        }
        while (keep > 0 && line[keep - 1] == ' ')
            keep--;
        memmove(w, line, keep);
        w += keep;
        *w++ = '\n';
        line += len + (end != NULL);
    }
    *w = '\0';
}

static void
test_config_print_reloads_to_the_same_values(void **state)
{
    struct fixture *f = *state;
    const char *path = write_file(f, "job.yaml",
                                  "smtp:\n  host: \"a:b # c\"\n  tls: none\n"
                                  "sweep:\n  lease: 90s\n  dry_run: yes\n");
    assert_int_equal(load(f, path), 0);
    char *first = print_job(f);
    path = write_file(f, "printed.yaml", first);
    assert_int_equal(load(f, path), 0);
    char *second = print_job(f);
    assert_string_equal(f->job.host, "a:b # c");
    assert_int_equal(f->job.lease_ms, 90000);
    assert_true(f->job.dry_run);
    /* the same values; only the origin comments differ */
    strip_comments(first);
    strip_comments(second);
    assert_string_equal(first, second);
    free(first);
    free(second);
}

static void
test_config_print_keys_lists_types_defaults_and_variables(void **state)
{
    struct support_out out;
    (void)state;
    config_print_keys(job_table, "JOB_", support_out_open(&out));
    char *text = support_out_close(&out);
    assert_string_contains(text, "smtp.port (integer 1..65535, default 587; env JOB_PORT, "
                                 "JOB_SMTP_PORT)\n    relay port\n");
    assert_string_contains(text, "smtp.password (string; env JOB_PASSWORD, JOB_PASSWORD_FILE)\n");
    assert_string_contains(text, "sweep.lease (duration 5s..1d, default 5m; env "
                                 "JOB_SWEEP_LEASE)\n");
    assert_string_contains(text, "smtp.tls (one of none|starttls, default starttls; env "
                                 "JOB_SMTP_TLS)\n");
    free(text);
}

static void
test_config_free_values_clears_strings(void **state)
{
    struct fixture *f = *state;
    setenv("JOB_PASSWORD", "x", 1);
    assert_int_equal(load(f, NULL), 0);
    config_free_values(job_table, &f->job);
    assert_null(f->job.host);
    assert_null(f->job.password);
    config_free_values(job_table, &f->job);
    config_free_values(job_table, NULL);
    config_free(NULL);
}

static void
test_config_loading_twice_starts_afresh(void **state)
{
    struct fixture *f = *state;
    setenv("JOB_PORT", "abc", 1);
    assert_int_equal(load(f, NULL), 1);
    unsetenv("JOB_PORT");
    assert_int_equal(load(f, NULL), 0);
    assert_int_equal(config_problem_count(f->c), 0);
}

/* ---- data/bad_*.yaml: each must produce exactly the lines of its bad_*.expected ---- */

static int
by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_config_bad_files_report_expected_errors(void **state)
{
    struct fixture *f = *state;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(TEST_DATA_DIR), 0);

    char *names[128];
    size_t n = 0;
    DIR *d = opendir(".");
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 128) {
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "bad_", 4) == 0 && len > 5 &&
            strcmp(de->d_name + len - 5, ".yaml") == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], by_name);
    assert_true(n >= 10);

    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        char expected_path[512];
        snprintf(expected_path, sizeof expected_path, "%.*s.expected", (int)(strlen(names[i]) - 5),
                 names[i]);
        char *expected = support_read_file(expected_path);
        if (expected == NULL)
            fail_msg("cannot read %s", expected_path);
        size_t count = config_load(f->c, &f->job, names[i], false);
        char got[8192] = "";
        size_t o = 0;
        for (size_t j = 0; j < count && o < sizeof got; j++)
            o += (size_t)snprintf(got + o, sizeof got - o, "%s\n", config_problem_at(f->c, j));
        if (count == 0 || strcmp(got, expected) != 0) {
            print_error("%s:\n--- expected\n%s--- got\n%s", names[i], expected, got);
            failures++;
        }
        config_free_values(job_table, &f->job);
        free(expected);
        free(names[i]);
    }
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(failures, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_defaults_fill_every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_reads_each_type_from_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_records_where_each_value_came_from, setup,
                                        teardown),
        cmocka_unit_test(test_config_parses_durations_with_units),
        cmocka_unit_test(test_config_formats_durations_in_largest_exact_unit),
        cmocka_unit_test(test_config_parses_booleans),
        cmocka_unit_test(test_config_parses_integers),
        cmocka_unit_test_setup_teardown(test_config_rejects_out_of_range_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_env_overrides_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_env_prefix_names_every_nonsecret_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_own_env_beats_prefixed_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_invalid_env_value_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_empty_env_sets_string_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_yaml_null_unsets_string, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file_env_reads_secret_from_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_file_env_and_direct_env_conflict, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_file_env_unreadable_is_reported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_missing_optional_file_is_skipped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_unreadable_file_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_late_problem_points_at_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_late_problem_stays_on_one_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_report_writes_every_problem_and_keeps_the_first,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_print_masks_secrets_and_shows_origins, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_print_reloads_to_the_same_values, setup,
                                        teardown),
        cmocka_unit_test(test_config_print_keys_lists_types_defaults_and_variables),
        cmocka_unit_test_setup_teardown(test_config_free_values_clears_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_loading_twice_starts_afresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_bad_files_report_expected_errors, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
