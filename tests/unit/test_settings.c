/* test_settings: the worker's key table, the shipped worker.yaml, environment precedence,
 * the checks across keys, and masked printing. */
#include "support.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "policy.h"
#include "settings.h"
#include "token.h"

#define SHIPPED SOURCE_DIR "/worker.yaml"

struct fixture {
    char *dir;
    char cwd[4096];
    struct settings s;
    char *problems; /* what settings_load wrote to its FILE* */
    struct err e;
};

/* Every variable the table reads, so that the caller's environment cannot leak in. */
static void
clear_env(void)
{
    char name[CONFIG_ENV_NAME_MAX];
    for (const struct config_key *k = settings_keys(); k->path != NULL; k++) {
        if (k->env != NULL) {
            unsetenv(k->env);
            snprintf(name, sizeof name, "%s_FILE", k->env);
            unsetenv(name);
        }
        size_t o = (size_t)snprintf(name, sizeof name, "%s", SETTINGS_ENV_PREFIX);
        for (const char *p = k->path; *p && o + 1 < sizeof name; p++)
            name[o++] = *p == '.' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        name[o] = '\0';
        unsetenv(name);
    }
    unsetenv("RECOVERY_WORKER_CONFIG");
    unsetenv("TZDIR");
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_non_null(getcwd(f->cwd, sizeof f->cwd));
    f->dir = support_temp_dir("test_settings");
    /* an empty working directory: no ./worker.yaml unless a test writes one */
    assert_int_equal(chdir(f->dir), 0);
    clear_env();
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    settings_free(&f->s);
    free(f->problems);
    clear_env();
    assert_int_equal(chdir(f->cwd), 0);
    support_temp_dir_remove(f->dir);
    free(f);
    return 0;
}

static int
load(struct fixture *f, const char *path)
{
    free(f->problems);
    f->problems = NULL;
    settings_free(&f->s);
    struct support_out out;
    err_clear(&f->e);
    int rc = settings_load(path, &f->s, support_out_open(&out), &f->e);
    f->problems = support_out_close(&out);
    return rc;
}

static char *
print_settings(const struct settings *s)
{
    struct support_out out;
    settings_print(s, support_out_open(&out));
    return support_out_close(&out);
}

static void
test_settings_defaults_without_file_or_environment(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, NULL), ERR_OK);
    const struct settings *s = &f->s;
    assert_null(s->config_path);
    assert_null(s->database_url);
    assert_int_equal(s->database_connect_retries, 3);
    assert_int_equal(s->database_connect_timeout_ms, 5000);
    assert_string_equal(s->smtp_host, "localhost");
    assert_int_equal(s->smtp_port, 587);
    assert_int_equal(s->smtp_tls, SMTP_TLS_STARTTLS);
    assert_null(s->smtp_ca_file);
    assert_null(s->smtp_username);
    assert_null(s->smtp_password);
    assert_null(s->smtp_helo_name);
    assert_string_equal(s->sender_email, "no-reply@localhost.localdomain");
    assert_string_equal(s->sender_name, "Checkout");
    assert_int_equal(s->smtp_timeout_ms, 30000);
    assert_int_equal(s->smtp_connect_timeout_ms, 10000);
    assert_int_equal(s->smtp_messages_per_session, 100);
    assert_int_equal(s->batch_size, 500);
    assert_int_equal(s->lease_ms, 5 * 60000);
    assert_int_equal(s->retry_interval_ms, 6 * 3600000LL);
    assert_int_equal(s->backoff_base_ms, 5 * 60000);
    assert_int_equal(s->backoff_max_ms, 2 * 3600000LL);
    assert_int_equal(s->max_prompts, 3);
    assert_int_equal(s->concurrency, 4);
    assert_int_equal(s->on_unknown_delivery, POLICY_UNKNOWN_RESEND);
    assert_int_equal(s->schedule_interval_ms, 30 * 60000);
    assert_int_equal(s->schedule_jitter_ms, 60000);
    assert_string_equal(s->resume_url, "http://localhost:3000/checkout");
    assert_null(s->unsubscribe_url);
    assert_null(s->templates_dir);
    assert_null(s->resume_link_secret);
    assert_int_equal(s->resume_link_ttl_ms, 30 * 86400000LL);
    assert_null(s->pushgateway_url);
    assert_string_equal(s->metrics_job, "recovery-worker");
    assert_null(s->metrics_instance);
    assert_null(s->heartbeat_url);
    assert_int_equal(s->log_level, LOG_LEVEL_INFO);
    assert_string_equal(f->problems, "");
}

static void
test_settings_shipped_worker_yaml_loads(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, SHIPPED), ERR_OK);
    assert_string_equal(f->problems, "");
    assert_string_equal(f->s.config_path, SHIPPED);
    /* it sets every key, so it documents every key */
    for (const struct config_key *k = settings_keys(); k->path != NULL; k++) {
        const struct config_origin *o = config_origin(f->s.config, k->path);
        if (o->source != CONFIG_SOURCE_FILE)
            fail_msg("worker.yaml does not set %s", k->path);
    }
}

/* Drops each line's origin comment and the header comments, leaving the values. */
static void
strip_comments(char *text)
{
    char *w = text;
    for (char *line = text; *line != '\0';) {
        char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        size_t keep = len;
        for (size_t i = len; i > 0; i--) {
            if (line[i - 1] == '#') {
                keep = i - 1;
                break;
            }
        }
        while (keep > 0 && line[keep - 1] == ' ')
            keep--;
        if (keep > 0) {
            memmove(w, line, keep);
            w += keep;
            *w++ = '\n';
        }
        line += len + (end != NULL);
    }
    *w = '\0';
}

static void
test_settings_shipped_worker_yaml_holds_the_defaults(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, NULL), ERR_OK);
    char *defaults = print_settings(&f->s);
    assert_int_equal(load(f, SHIPPED), ERR_OK);
    char *shipped = print_settings(&f->s);
    strip_comments(defaults);
    strip_comments(shipped);
    assert_string_equal(shipped, defaults);
    free(defaults);
    free(shipped);
}

static void
test_settings_shipped_worker_yaml_names_each_variable(void **state)
{
    char *text = support_read_file(SHIPPED);
    assert_non_null(text);
    (void)state;
    char name[CONFIG_ENV_NAME_MAX];
    for (const struct config_key *k = settings_keys(); k->path != NULL; k++) {
        if (k->env != NULL) {
            if (strstr(text, k->env) == NULL)
                fail_msg("worker.yaml does not mention %s", k->env);
            snprintf(name, sizeof name, "%s_FILE", k->env);
            if ((k->flags & CONFIG_FILE_ENV) && strstr(text, name) == NULL)
                fail_msg("worker.yaml does not mention %s", name);
            continue;
        }
        size_t o = (size_t)snprintf(name, sizeof name, "%s", SETTINGS_ENV_PREFIX);
        for (const char *p = k->path; *p && o + 1 < sizeof name; p++)
            name[o++] = *p == '.' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        name[o] = '\0';
        if (strstr(text, name) == NULL)
            fail_msg("worker.yaml does not mention %s", name);
    }
    free(text);
}

static void
test_settings_default_file_is_read_from_working_directory(void **state)
{
    struct fixture *f = *state;
    support_write_file("worker.yaml", "sweep:\n  batch_size: 42\n");
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_int_equal(f->s.batch_size, 42);
    assert_string_equal(f->s.config_path, "worker.yaml");
}

static void
test_settings_config_variable_names_an_explicit_file(void **state)
{
    struct fixture *f = *state;
    support_write_file("worker.yaml", "sweep:\n  batch_size: 42\n");
    support_write_file("other.yaml", "sweep:\n  batch_size: 43\n");
    setenv("RECOVERY_WORKER_CONFIG", "other.yaml", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_int_equal(f->s.batch_size, 43);
    /* explicit, so a missing one is an error rather than a fallback to defaults */
    setenv("RECOVERY_WORKER_CONFIG", "absent.yaml", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg, "absent.yaml: cannot read: No such file or directory");
}

static void
test_settings_explicit_unreadable_file_is_a_config_error(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "/nonexistent/worker.yaml"), ERR_CONFIG);
    assert_int_equal(f->e.code, ERR_CONFIG);
    assert_string_equal(f->e.msg,
                        "/nonexistent/worker.yaml: cannot read: No such file or directory");
    assert_string_equal(f->problems,
                        "/nonexistent/worker.yaml: cannot read: No such file or directory\n");
    /* nothing is left behind to free */
    assert_null(f->s.smtp_host);
    assert_null(f->s.config);
}

static void
test_settings_spec_variables_beat_the_file(void **state)
{
    struct fixture *f = *state;
    support_write_file("worker.yaml",
                       "smtp:\n  host: file-relay\n  port: 2525\nlog:\n  level: warn\n");
    setenv("SMTP_PORT", "25", 1);
    setenv("LOG_LEVEL", "DEBUG", 1);
    setenv("DATABASE_URL", "postgresql://worker@db/shop", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_string_equal(f->s.smtp_host, "file-relay");
    assert_int_equal(f->s.smtp_port, 25);
    assert_int_equal(f->s.log_level, LOG_LEVEL_DEBUG);
    assert_string_equal(f->s.database_url, "postgresql://worker@db/shop");
    assert_string_equal(config_origin(f->s.config, "smtp.port")->env, "SMTP_PORT");
}

static void
test_settings_spec_variable_beats_prefixed_variable(void **state)
{
    struct fixture *f = *state;
    setenv("RW_SMTP_PORT", "2525", 1);
    setenv("SMTP_PORT", "25", 1);
    setenv("RW_SWEEP_BATCH_SIZE", "50", 1);
    setenv("RW_SCHEDULE_INTERVAL", "1h", 1);
    setenv("RW_SMTP_PASSWORD", "ignored", 1); /* secrets have only their own names */
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_int_equal(f->s.smtp_port, 25);
    assert_int_equal(f->s.batch_size, 50);
    assert_int_equal(f->s.schedule_interval_ms, 3600000);
    assert_null(f->s.smtp_password);
}

/* email.consent and sweep.on_unknown_delivery take policy's words, each its enumerator. */
static void
test_settings_consent_and_unknown_delivery_are_policy_words(void **state)
{
    struct fixture *f = *state;
    const enum policy_consent bases[] = {POLICY_CONSENT_ORDER_UPDATES, POLICY_CONSENT_MARKETING,
                                         POLICY_CONSENT_BOTH};
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
        setenv("RW_EMAIL_CONSENT", policy_consent_name(bases[i]), 1);
        assert_int_equal(load(f, NULL), ERR_OK);
        assert_int_equal(f->s.consent, bases[i]);
    }
    setenv("RW_SWEEP_ON_UNKNOWN_DELIVERY", "skip", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_int_equal(f->s.on_unknown_delivery, POLICY_UNKNOWN_SKIP);
    setenv("RW_SWEEP_ON_UNKNOWN_DELIVERY", "resend", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_int_equal(f->s.on_unknown_delivery, POLICY_UNKNOWN_RESEND);
    /* any other word is refused, and the words offered are policy's */
    setenv("RW_EMAIL_CONSENT", "newsletter", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_contains(f->problems, "RW_EMAIL_CONSENT");
    assert_string_contains(f->problems, "order_updates, marketing_messages, both");
}

static void
test_settings_implicit_tls_is_refused(void **state)
{
    struct fixture *f = *state;
    setenv("SMTP_TLS", "tls", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg,
                        "environment: SMTP_TLS: \"tls\" (implicit TLS, port 465) is not "
                        "supported by libESMTP 1.1.0; use starttls, or none towards a relay on "
                        "loopback");
    unsetenv("SMTP_TLS");
    support_write_file("worker.yaml", "smtp:\n  port: 465\n  tls: tls\n");
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_true(strncmp(f->e.msg, "worker.yaml:3:3: smtp.tls: \"tls\" (implicit TLS", 46) == 0);
}

static void
test_settings_password_file_supplies_the_password(void **state)
{
    struct fixture *f = *state;
    support_write_file("password", "from-a-file\n");
    setenv("SMTP_USERNAME", "worker", 1);
    setenv("SMTP_PASSWORD_FILE", "password", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_string_equal(f->s.smtp_password, "from-a-file");
}

static void
test_settings_username_and_password_go_together(void **state)
{
    struct fixture *f = *state;
    support_write_file("worker.yaml", "smtp:\n  username: worker\n");
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg, "worker.yaml:2:3: smtp.username: is set but smtp.password is "
                                  "not (SMTP_PASSWORD or SMTP_PASSWORD_FILE)");
    unlink("worker.yaml");
    setenv("SMTP_PASSWORD", "secret", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg, "environment: SMTP_PASSWORD: is set but smtp.username is not "
                                  "(SMTP_USERNAME)");
    /* an empty variable means "not configured" */
    setenv("SMTP_PASSWORD", "", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_null(f->s.smtp_password);
}

static void
test_settings_max_rate_takes_per_second_minute_or_hour(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_true(f->s.smtp_max_rate == 0);
    assert_int_equal(f->s.smtp_throttle_budget_ms, 5 * 60 * 1000);
    setenv("SMTP_MAX_RATE", "14", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_true(f->s.smtp_max_rate == 14);
    setenv("SMTP_MAX_RATE", "0.5", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_true(f->s.smtp_max_rate == 0.5);
    setenv("SMTP_MAX_RATE", "30/m", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_true(f->s.smtp_max_rate == 0.5);
    setenv("SMTP_MAX_RATE", "3600/h", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_true(f->s.smtp_max_rate == 1);
    unsetenv("SMTP_MAX_RATE");
    support_write_file("worker.yaml", "smtp:\n  max_rate: 5/s\n  throttle_budget: 90s\n");
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_true(f->s.smtp_max_rate == 5);
    assert_int_equal(f->s.smtp_throttle_budget_ms, 90 * 1000);
}

static void
test_settings_bad_max_rate_names_the_key_and_value(void **state)
{
    struct fixture *f = *state;
    support_write_file("worker.yaml", "smtp:\n  max_rate: fast\n");
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_true(strncmp(f->problems, "worker.yaml:2:", 14) == 0);
    assert_string_contains(f->problems, ": smtp.max_rate: expected messages per second");
    assert_string_contains(f->problems, "got \"fast\"");
    unlink("worker.yaml");
    const char *bad[] = {"-1", "5/d", "20000", "1e9", "nan", " 5", "5 /s", "0.0001"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("SMTP_MAX_RATE", bad[i], 1);
        assert_int_equal(load(f, NULL), ERR_CONFIG);
        assert_string_contains(f->problems, "SMTP_MAX_RATE: expected messages per second");
    }
}

static void
test_settings_backoff_base_beyond_max_points_at_the_file(void **state)
{
    struct fixture *f = *state;
    support_write_file("worker.yaml", "sweep:\n  backoff_base: 3h\n  backoff_max: 1h\n");
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->problems, "worker.yaml:2:3: sweep.backoff_base: 3h is longer than "
                                     "sweep.backoff_max (1h)\n");
}

static void
test_settings_reply_timeout_must_exceed_statement_timeout(void **state)
{
    struct fixture *f = *state;
    support_write_file("worker.yaml", "database:\n  statement_timeout: 1m\n  reply_timeout: 45s\n");
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->problems, "worker.yaml:3:3: database.reply_timeout: 45s is not longer "
                                     "than database.statement_timeout (1m)\n");
    support_write_file("worker.yaml", "database:\n  statement_timeout: 1m\n  reply_timeout: 70s\n");
    assert_int_equal(load(f, NULL), ERR_OK);
}

static void
test_settings_resume_url_needs_http(void **state)
{
    struct fixture *f = *state;
    setenv("RESUME_URL", "shop.example/checkout", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg, "environment: RESUME_URL: must start with http:// or https://");
    setenv("RESUME_URL", "https://shop.example/checkout", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
}

static void
test_settings_sender_email_is_validated(void **state)
{
    struct fixture *f = *state;
    setenv("SMTP_SENDER_EMAIL", "Shop <shop@example.com>", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg, "environment: SMTP_SENDER_EMAIL: \"Shop <shop@example.com>\" "
                                  "is not a valid email address");
    setenv("SMTP_SENDER_EMAIL", "shop@example.com", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
}

/* Found by tests/fuzz/fuzz_config: smtp accepts an address literal, the From header does
 * not, so every prompt failed and each member was recorded as an invalid address. */
static void
test_settings_sender_email_must_suit_the_from_header(void **state)
{
    struct fixture *f = *state;
    setenv("SMTP_SENDER_EMAIL", "shop@[192.0.2.1]", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg, "environment: SMTP_SENDER_EMAIL: \"shop@[192.0.2.1]\" "
                                  "is not a valid email address");
}

/* Found by tests/fuzz/fuzz_config: a value quoted in a problem could hold a line break and
 * so forge further problem lines. */
static void
test_settings_quoted_value_stays_on_one_line(void **state)
{
    struct fixture *f = *state;
    setenv("SMTP_SENDER_EMAIL", "x\nsmtp.host: forged\r", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->problems, "environment: SMTP_SENDER_EMAIL: \"x?smtp.host: forged?\" "
                                     "is not a valid email address\n");
}

/* Found by tests/fuzz/fuzz_config: links go into every prompt as they are, and the prompt
 * refuses a URL with a space, a quote, non-ASCII or an upper-case scheme. */
static void
test_settings_links_must_be_plain_urls(void **state)
{
    struct fixture *f = *state;
    setenv("RESUME_URL", "https://shop.example/check out", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg, "environment: RESUME_URL: must not contain spaces, quotes, <, "
                                  ">, \\, ` or non-ASCII characters (percent-encode them)");
    setenv("RESUME_URL", "HTTPS://shop.example/checkout", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg, "environment: RESUME_URL: must start with http:// or https://");
    setenv("RESUME_URL", "https://shop.example/caf\xc3\xa9", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    setenv("RESUME_URL", "https://shop.example/caf%C3%A9?a=1&b=~x#top", 1);
    setenv("RESUME_LINK_SECRET", "0123456789abcdef0123456789abcdef", 1);
    setenv("UNSUBSCRIBE_URL", "https://shop.example/unsubscribe?x=\"1\"", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg, "environment: UNSUBSCRIBE_URL: must not contain spaces, "
                                  "quotes, <, >, \\, ` or non-ASCII characters (percent-encode "
                                  "them)");
    setenv("UNSUBSCRIBE_URL", "https://shop.example/unsubscribe", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
}

static void
test_settings_links_and_sender_leave_room_for_what_each_prompt_adds(void **state)
{
    struct fixture *f = *state;
    char url[1600];
    memset(url, 'a', sizeof url - 1);
    url[sizeof url - 1] = '\0';
    memcpy(url, "https://x.example/", 18);
    setenv("RESUME_URL", url, 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg, "environment: RESUME_URL: is longer than 1500 characters");
    setenv("RESUME_URL", "https://shop.example/checkout", 1);
    char sender[260] = "shop@";
    for (size_t i = 5; i < 5 + 190; i += 10)
        memcpy(sender + i, "abcdefghi.", 10);
    memcpy(sender + 195, "example", 8);
    setenv("SMTP_SENDER_EMAIL", sender, 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg,
                        "environment: SMTP_SENDER_EMAIL: the domain is longer than 180 characters");
}

static void
test_settings_every_problem_is_reported_at_once(void **state)
{
    struct fixture *f = *state;
    support_write_file("worker.yaml", "smtp:\n  port: abc\n  hots: relay\nsweep:\n  lease: 1s\n"
                                      "schedule:\n  jitter: 2h\n");
    setenv("SMTP_TLS", "tls", 1);
    setenv("RW_SWEEP_CONCURRENCY", "100", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(
        f->problems,
        "worker.yaml:2:9: smtp.port: expected an integer between 1 and 65535, got \"abc\"\n"
        "worker.yaml:3:3: smtp.hots: unknown key (did you mean smtp.host?)\n"
        "worker.yaml:5:10: sweep.lease: expected a duration between 5s and 1d (unit ms, s, m, "
        "h or d), got \"1s\"\n"
        "worker.yaml:7:11: schedule.jitter: expected a duration between 0s and 1h (unit ms, s, "
        "m, h or d), got \"2h\"\n"
        "environment: RW_SWEEP_CONCURRENCY: expected an integer between 1 and 64, got \"100\"\n"
        "environment: SMTP_TLS: \"tls\" (implicit TLS, port 465) is not supported by libESMTP "
        "1.1.0; use starttls, or none towards a relay on loopback\n");
    assert_string_equal(f->e.msg, "worker.yaml:2:9: smtp.port: expected an integer between 1 "
                                  "and 65535, got \"abc\"");
}

static void
test_settings_print_never_shows_a_secret(void **state)
{
    struct fixture *f = *state;
    support_write_file("password", "pw-from-file-8d1f\n");
    setenv("SMTP_USERNAME", "worker", 1);
    setenv("SMTP_PASSWORD_FILE", "password", 1);
    setenv("DATABASE_URL", "postgresql://app:db-pass-77c2@db.internal:5432/shop", 1);
    setenv("RESUME_LINK_SECRET", "link-secret-0123456789abcdef0123456789", 1);
    setenv("PUSHGATEWAY_URL", "https://push:gw-pass-41aa@metrics.internal", 1);
    support_write_file("worker.yaml", "sweep:\n  batch_size: 42\n");
    assert_int_equal(load(f, NULL), ERR_OK);
    char *text = print_settings(&f->s);
    assert_string_lacks(text, "pw-from-file");
    assert_string_lacks(text, "db-pass");
    assert_string_lacks(text, "link-secret");
    assert_string_lacks(text, "gw-pass");
    assert_string_contains(text, "  password: \"****\"");
    assert_string_contains(text, "# from env SMTP_PASSWORD_FILE\n");
    assert_string_contains(text, "  resume_link_secret: \"****\"");
    assert_string_contains(text, "  url: \"postgresql://app:****@db.internal:5432/shop\"");
    assert_string_contains(text, "  pushgateway_url: \"https://push:****@metrics.internal\"");
    assert_string_contains(text, "  username: \"worker\"");
    assert_string_contains(text, "  batch_size: 42");
    assert_string_contains(text, "# from worker.yaml:2:3\n");
    assert_string_contains(text, "  port: 587");
    assert_string_contains(text, "# default\n");
    assert_string_contains(text, "\nlog:\n  level: info");
    free(text);
}

static void
test_settings_short_resume_link_secret_is_refused(void **state)
{
    struct fixture *f = *state;
    setenv("RESUME_LINK_SECRET", "short", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg, "environment: RESUME_LINK_SECRET: must be at least 32 "
                                  "characters (try: openssl rand -hex 32)");
    assert_string_lacks(f->problems, "short");
}

static void
test_settings_key_ring_is_parsed_once_at_load(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_null(f->s.link_keys);
    setenv("RESUME_LINK_SECRET",
           "k2:0123456789abcdef0123456789abcdef,k1:fedcba9876543210fedcba9876543210", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_int_equal(token_ring_count(f->s.link_keys), 2);
    assert_string_equal(token_ring_kid(f->s.link_keys, 0), "k2");
}

/* A zoneinfo of our own under the fixture's directory (removed with it): a zone, a file that
 * is not one, a directory, and a zone outside it that only ".." or an absolute path would
 * reach. */
static void
make_zoneinfo(void)
{
    assert_int_equal(mkdir("zoneinfo", 0700), 0);
    assert_int_equal(mkdir("zoneinfo/Europe", 0700), 0);
    support_write_file("zoneinfo/Europe/Berlin", "TZif2\n");
    support_write_file("zoneinfo/zone.tab", "# not a zone\n");
    support_write_file("outside", "TZif2\n");
    char dir[4096 + 16];
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(dir, sizeof dir, "%s/zoneinfo", cwd);
    setenv("TZDIR", dir, 1);
}

static void
test_settings_quiet_hours_zone_must_be_a_zone_of_the_system(void **state)
{
    struct fixture *f = *state;
    make_zoneinfo();
    support_write_file("worker.yaml", "sweep:\n  quiet_hours_zone: Europe/Berlin\n");
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_string_equal(f->s.quiet_hours_zone, "Europe/Berlin");

    support_write_file("worker.yaml", "sweep:\n  quiet_hours: \"21:00-08:00\"\n"
                                      "  quiet_hours_zone: Mars/Olympus\n");
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_contains(f->problems, "worker.yaml:3:3: sweep.quiet_hours_zone: unknown time "
                                        "zone \"Mars/Olympus\"");

    /* not compiled zones: a table, a directory, the empty name */
    static const char *const not_zones[] = {"zone.tab", "Europe", "Europe/", ""};
    for (size_t i = 0; i < sizeof not_zones / sizeof *not_zones; i++) {
        setenv("RW_SWEEP_QUIET_HOURS_ZONE", not_zones[i], 1);
        assert_int_equal(load(f, NULL), ERR_CONFIG);
        assert_string_contains(f->problems, "environment: RW_SWEEP_QUIET_HOURS_ZONE: ");
    }
    /* names that would leave the zoneinfo directory are refused before anything is read,
     * even where the file they reach is a zone */
    char outside[4096 + 16];
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(outside, sizeof outside, "%s/outside", cwd);
    static const char *const escapes[] = {"../outside", "Europe/../../outside", NULL};
    for (size_t i = 0; i < 3; i++) {
        setenv("RW_SWEEP_QUIET_HOURS_ZONE", escapes[i] != NULL ? escapes[i] : outside, 1);
        assert_int_equal(load(f, NULL), ERR_CONFIG);
        assert_string_contains(f->problems, "is not a time zone name");
    }
}

static void
test_settings_default_zone_needs_the_system_zoneinfo(void **state)
{
    struct fixture *f = *state;
    /* the real zoneinfo (tzdata) knows the default and a zone with daylight saving */
    assert_int_equal(load(f, NULL), ERR_OK);
    assert_string_equal(f->s.quiet_hours_zone, "UTC");
    setenv("RW_SWEEP_QUIET_HOURS_ZONE", "America/New_York", 1);
    assert_int_equal(load(f, NULL), ERR_OK);
    setenv("RW_SWEEP_QUIET_HOURS_ZONE", "Mars/Olympus", 1);
    assert_int_equal(load(f, NULL), ERR_CONFIG);
    assert_string_equal(f->e.msg, "environment: RW_SWEEP_QUIET_HOURS_ZONE: unknown time zone "
                                  "\"Mars/Olympus\": not a zone in /usr/share/zoneinfo (an "
                                  "IANA name such as Europe/Berlin; is tzdata installed?)");
}

static void
test_settings_free_is_safe_twice(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, NULL), ERR_OK);
    settings_free(&f->s);
    settings_free(&f->s);
    settings_free(NULL);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_settings_defaults_without_file_or_environment),
        T(test_settings_shipped_worker_yaml_loads),
        T(test_settings_shipped_worker_yaml_holds_the_defaults),
        T(test_settings_shipped_worker_yaml_names_each_variable),
        T(test_settings_default_file_is_read_from_working_directory),
        T(test_settings_config_variable_names_an_explicit_file),
        T(test_settings_explicit_unreadable_file_is_a_config_error),
        T(test_settings_spec_variables_beat_the_file),
        T(test_settings_spec_variable_beats_prefixed_variable),
        T(test_settings_consent_and_unknown_delivery_are_policy_words),
        T(test_settings_implicit_tls_is_refused),
        T(test_settings_password_file_supplies_the_password),
        T(test_settings_username_and_password_go_together),
        T(test_settings_max_rate_takes_per_second_minute_or_hour),
        T(test_settings_bad_max_rate_names_the_key_and_value),
        T(test_settings_backoff_base_beyond_max_points_at_the_file),
        T(test_settings_reply_timeout_must_exceed_statement_timeout),
        T(test_settings_resume_url_needs_http),
        T(test_settings_sender_email_is_validated),
        T(test_settings_sender_email_must_suit_the_from_header),
        T(test_settings_quoted_value_stays_on_one_line),
        T(test_settings_links_must_be_plain_urls),
        T(test_settings_links_and_sender_leave_room_for_what_each_prompt_adds),
        T(test_settings_every_problem_is_reported_at_once),
        T(test_settings_print_never_shows_a_secret),
        T(test_settings_short_resume_link_secret_is_refused),
        T(test_settings_key_ring_is_parsed_once_at_load),
        T(test_settings_quiet_hours_zone_must_be_a_zone_of_the_system),
        T(test_settings_default_zone_needs_the_system_zoneinfo),
        T(test_settings_free_is_safe_twice),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
