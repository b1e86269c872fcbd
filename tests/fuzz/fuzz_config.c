/* libFuzzer target: common/config and worker/settings. Field 0 of the input (up to the
 * first NUL) is written to a temporary worker.yaml and loaded; fields 1-3, when present,
 * each set one environment variable for the load: byte 0 picks the variable, the rest is
 * its value (for a *_FILE variable the value goes into a file whose path it is given).
 *
 * Each load runs twice: through settings_load (the worker's table and cross-key checks)
 * and through config_load with a small table of every type. Checked: every problem is one
 * line, a failed load leaves the settings empty, a good one has every value within its
 * row's bounds and can make a prompt (check_prompt_renders), printing works, and nothing
 * leaks (libFuzzer's leak check). The value
 * parsers also get field 0 directly: a duration or integer read back from its printed
 * form must be the same. */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "err.h"
#include "fuzz_util.h"
#include "links.h"
#include "prompt.h"
#include "settings.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char yaml_path[96];
static char secret_path[96];
static FILE *devnull;
static struct prompt_templates *builtin;

/* Variables the environment fields can set: own names, RW_ names and *_FILE. */
static const char *const ENV_NAMES[] = {
    "SMTP_PORT",
    "RW_SWEEP_BATCH_SIZE",
    "SMTP_PASSWORD",
    "SMTP_PASSWORD_FILE",
    "RESUME_LINK_SECRET",
    "RESUME_LINK_SECRET_FILE",
    "LOG_LEVEL",
    "RW_SCHEDULE_JITTER",
    "UNSUBSCRIBE_URL",
    "SMTP_USERNAME",
    "DATABASE_URL",
    "SMTP_TLS",
    "RW_EMAIL_RESUME_LINK_TTL",
    "RW_METRICS_JOB",
    "SMTP_SENDER_EMAIL",
    "RW_SMTP_HOST",
    "FZ_PLAIN_COUNT",
    "FZ_PLAIN_FLAG",
    "FZ_TOKEN",
    "FZ_TOKEN_FILE",
};
#define NENV (sizeof ENV_NAMES / sizeof ENV_NAMES[0])

/* A table with one key of every type, unbounded numbers, a secret read from a file and a
 * masked string, loaded from the same file. */
struct plain {
    char *host;
    int port;
    long long lease_ms;
    bool flag;
    int level;
    char *token;
    char *url;
    int count;
};

static const char *const LEVELS[] = {"low", "mid", "high", NULL};

static char *
mask_all(const char *v)
{
    return strdup(v[0] != '\0' ? "****" : "");
}

static const struct config_key PLAIN_TABLE[] = {
    {.path = "smtp.host",
     .type = CONFIG_STRING,
     .offset = CONFIG_FIELD(struct plain, host, char *),
     .def = "localhost"},
    {.path = "smtp.port",
     .type = CONFIG_INT,
     .offset = CONFIG_FIELD(struct plain, port, int),
     .def = "0"},
    {.path = "sweep.lease",
     .type = CONFIG_DURATION,
     .offset = CONFIG_FIELD(struct plain, lease_ms, long long),
     .def = "1500ms"},
    {.path = "plain.flag",
     .type = CONFIG_BOOL,
     .offset = CONFIG_FIELD(struct plain, flag, bool),
     .def = "no"},
    {.path = "log.level",
     .type = CONFIG_ENUM,
     .offset = CONFIG_ENUM_FIELD(struct plain, level),
     .def = "mid",
     .choices = LEVELS},
    {.path = "plain.token",
     .type = CONFIG_STRING,
     .offset = CONFIG_FIELD(struct plain, token, char *),
     .env = "FZ_TOKEN",
     .flags = CONFIG_SECRET | CONFIG_FILE_ENV},
    {.path = "database.url",
     .type = CONFIG_STRING,
     .offset = CONFIG_FIELD(struct plain, url, char *),
     .mask = mask_all},
    {.path = "plain.count",
     .type = CONFIG_INT,
     .offset = CONFIG_FIELD(struct plain, count, int),
     .def = "7",
     .min = -5,
     .max = 5000},
    {.path = NULL},
};

static void
cleanup(void)
{
    unlink(yaml_path);
    unlink(secret_path);
    rmdir(dir);
}

/* Unsets every variable a table row answers to, so the caller's environment cannot steer
 * the fuzzer. */
static void
unset_table_env(const struct config_key *t, const char *prefix)
{
    for (const struct config_key *k = t; k->path != NULL; k++) {
        char name[256];
        if (k->env != NULL) {
            unsetenv(k->env);
            snprintf(name, sizeof name, "%s_FILE", k->env);
            unsetenv(name);
        }
        snprintf(name, sizeof name, "%s%s", prefix, k->path);
        for (char *p = name; *p; p++)
            *p = *p == '.' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
        unsetenv(name);
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz_config.XXXXXX",
             tmp != NULL && strlen(tmp) < 32 ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(yaml_path, sizeof yaml_path, "%s/worker.yaml", dir);
    snprintf(secret_path, sizeof secret_path, "%s/secret", dir);
    atexit(cleanup);
    devnull = fopen("/dev/null", "w");
    if (devnull == NULL)
        abort();
    unsetenv("RECOVERY_WORKER_CONFIG");
    unset_table_env(settings_keys(), SETTINGS_ENV_PREFIX);
    unset_table_env(PLAIN_TABLE, "FZ_");
    struct err e;
    builtin = prompt_templates_load(NULL, &e);
    if (builtin == NULL)
        abort();
    return 0;
}

static void
write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, n, f) != n || fclose(f) != 0)
        abort();
}

/* Every problem is one line: no CR, LF or other C0 control inside it. */
static void
check_problem_lines(const char *text, size_t len)
{
    FUZZ_REQUIRE(len == 0 || text[len - 1] == '\n', "problems do not end with a line break");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        FUZZ_REQUIRE(c == '\n' || (c >= 0x20 && c != 0x7F) || c == '\t',
                     "control 0x%02X in a problem line: %.*s", c, (int)len, text);
    }
}

/* After a good load every number is within its row's bounds and every enum is a choice. */
static void
check_in_bounds(const struct config_key *table, const void *target)
{
    for (const struct config_key *k = table; k->path != NULL; k++) {
        const char *p = (const char *)target + k->offset;
        long long v;
        int i;
        switch (k->type) {
        case CONFIG_INT:
            memcpy(&i, p, sizeof i);
            v = i;
            break;
        case CONFIG_DURATION:
            memcpy(&v, p, sizeof v);
            FUZZ_REQUIRE(v >= 0, "%s: negative duration %lld", k->path, v);
            break;
        case CONFIG_ENUM: {
            memcpy(&i, p, sizeof i);
            int n = 0;
            while (k->choices[n] != NULL)
                n++;
            FUZZ_REQUIRE(i >= 0 && i < n, "%s: enum index %d", k->path, i);
            continue;
        }
        default:
            continue;
        }
        if (k->min != 0 || k->max != 0)
            FUZZ_REQUIRE(v >= k->min && v <= k->max, "%s: %lld outside %lld..%lld", k->path, v,
                         k->min, k->max);
    }
}

/* What a sweep does with the settings for one ordinary row (sweep.c: prompt_message_id
 * and render): settings that pass the checks must be able to make a prompt, or every
 * member would be skipped as undeliverable at send time instead of the configuration being
 * refused at start-up.
 *
 * Lengths are left out: settings_load does not bound them yet, and a sender domain over
 * about 187 characters (the Message-ID passes 250), an unsubscribe URL over about 640 (the
 * List-Unsubscribe value passes 900) or a resume URL over about 1750 (sweep's 2048-byte link
 * buffer) loads but cannot make a prompt. */
static void
check_prompt_renders(const struct settings *s)
{
    const char *domain = strrchr(s->sender_email, '@');
    if ((domain != NULL && strlen(domain) > 150) || strlen(s->resume_url) > 1024 ||
        (s->unsubscribe_url != NULL && strlen(s->unsubscribe_url) > 400))
        return;
    struct err e;
    err_clear(&e);
    struct links *l = links_new(s, &e);
    FUZZ_REQUIRE(l != NULL, "links_new refuses loaded settings: %s", e.msg);
    struct links_target tg = {"5f0c2a91-7d3e-4b8a-9c61-0e2f4d5a6b7c",
                              "9a1e77c4-2b5d-4f60-8e19-3c7a5b2d1e0f", "payment"};
    time_t now = 1767225600;
    struct buf url, unsub, msg;
    buf_init(&url, 2048);
    buf_init(&unsub, 898);
    buf_init(&msg, 0);
    int rc = links_resume_url(l, &tg, now, &url, &e);
    FUZZ_REQUIRE(rc == ERR_OK, "resume link for loaded settings: %s", e.msg);
    rc = links_unsubscribe_url(l, &tg, now, &unsub, &e);
    FUZZ_REQUIRE(rc == ERR_OK, "unsubscribe link for loaded settings: %s", e.msg);
    char mid[MIME_MESSAGE_ID_MAX + 1];
    prompt_message_id(mid, tg.orchestration_id, "1767225600000000", s->sender_email);
    struct prompt_input in = {
        .stage = "payment",
        .member_name = "Jane Doe",
        .member_email = "jane@example.com",
        .order_id = tg.order_id,
        .order_number = "SO-1001",
        .total = "129.00",
        .currency = "EUR",
        .pending_intents = 1,
        .resume_url = buf_str(&url),
        .unsubscribe_url = unsub.len > 0 ? buf_str(&unsub) : NULL,
        .sender_email = s->sender_email,
        .sender_name = s->sender_name,
        .message_id = mid,
        .date = now,
    };
    rc = prompt_render(builtin, &in, &msg, &e);
    FUZZ_REQUIRE(rc == ERR_OK, "no prompt can be made with loaded settings: %s", e.msg);
    buf_free(&url);
    buf_free(&unsub);
    buf_free(&msg);
    links_free(l);
}

static void
load_settings(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *problems = open_memstream(&text, &len);
    if (problems == NULL)
        abort();
    struct settings s;
    struct err e;
    err_clear(&e);
    int rc = settings_load(yaml_path, &s, problems, &e);
    fclose(problems);
    check_problem_lines(text, len);
    if (rc == ERR_OK) {
        FUZZ_REQUIRE(len == 0, "problems reported on a good load");
        FUZZ_REQUIRE(s.config != NULL && s.config_path != NULL, "good load without origins");
        check_in_bounds(settings_keys(), &s);
        FUZZ_REQUIRE(s.sender_email != NULL && s.resume_url != NULL && s.smtp_host != NULL &&
                         s.metrics_job != NULL,
                     "a required string is unset after a good load");
        settings_print(&s, devnull);
        check_prompt_renders(&s);
    } else {
        FUZZ_REQUIRE(rc == ERR_CONFIG, "settings_load: %s", e.msg);
        FUZZ_REQUIRE(len > 0 && e.msg[0] != '\0', "ERR_CONFIG without a problem");
        static const struct settings zero;
        FUZZ_REQUIRE(memcmp(&s, &zero, sizeof s) == 0, "settings not left empty on failure");
    }
    settings_free(&s);
    free(text);
}

/* reason: fuzzed text for config_problem, which must still make one line. */
static void
load_plain(const char *reason)
{
    struct config *c = config_new(PLAIN_TABLE, "FZ_");
    if (c == NULL)
        abort();
    struct plain t = {0};
    size_t n = config_load(c, &t, yaml_path, false);
    FUZZ_REQUIRE(n == config_problem_count(c), "config_load count differs");
    if (n == 0)
        check_in_bounds(PLAIN_TABLE, &t);
    config_problem(c, "plain.count", "checked later: %d", t.count);
    config_problem(c, "no.such_key", "\"%.300s\" is not in the table", reason);
    for (const struct config_key *k = PLAIN_TABLE; k->path != NULL; k++) {
        char where[512];
        config_origin_describe(c, k->path, where, sizeof where);
        FUZZ_REQUIRE(config_origin(c, k->path) != NULL, "no origin for %s", k->path);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *problems = open_memstream(&text, &len);
    if (problems == NULL)
        abort();
    struct err e;
    err_clear(&e);
    int rc = config_report(c, problems, &e);
    fclose(problems);
    check_problem_lines(text, len);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    FUZZ_REQUIRE(lines == config_problem_count(c), "%zu problems on %zu lines",
                 config_problem_count(c), lines);
    FUZZ_REQUIRE((rc == ERR_OK) == (config_problem_count(c) == 0), "config_report disagrees");
    for (size_t i = 0; i < config_problem_count(c); i++)
        FUZZ_REQUIRE(config_problem_at(c, i) != NULL, "problem %zu missing", i);
    FUZZ_REQUIRE(config_problem_at(c, config_problem_count(c)) == NULL, "problem past the end");
    free(text);
    config_print(c, PLAIN_TABLE, &t, devnull);
    config_free_values(PLAIN_TABLE, &t);
    config_free(c);
}

static void
check_parsers(const char *s, size_t len)
{
    if (len > 64)
        return;
    long long v, back;
    char buf[64];
    if (config_parse_duration(s, &v)) {
        FUZZ_REQUIRE(v >= 0, "duration %s parsed as %lld", s, v);
        config_format_duration(v, buf, sizeof buf);
        FUZZ_REQUIRE(config_parse_duration(buf, &back) && back == v, "duration %lld printed as %s",
                     v, buf);
    }
    if (config_parse_int(s, &v)) {
        snprintf(buf, sizeof buf, "%lld", v);
        FUZZ_REQUIRE(config_parse_int(buf, &back) && back == v, "integer %lld", v);
    }
    bool b;
    (void)config_parse_bool(s, &b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_fields ff;
    fuzz_fields_split(&ff, data, size);
    const char *yaml = fuzz_field(&ff, 0, "");
    write_file(yaml_path, yaml, strlen(yaml));
    check_parsers(yaml, strlen(yaml));

    const char *set[3];
    size_t nset = 0;
    for (size_t i = 1; i <= 3 && i < ff.n; i++) {
        if (ff.len[i] == 0)
            continue;
        const char *name = ENV_NAMES[(uint8_t)ff.f[i][0] % NENV];
        const char *value = ff.f[i] + 1;
        if (strstr(name, "_FILE") != NULL) {
            write_file(secret_path, value, strlen(value));
            value = secret_path;
        }
        setenv(name, value, 1);
        set[nset++] = name;
    }

    load_settings();
    load_plain(ff.n > 1 && ff.len[ff.n - 1] > 0 ? ff.f[ff.n - 1] + 1 : yaml);

    for (size_t i = 0; i < nset; i++)
        unsetenv(set[i]);
    fuzz_fields_free(&ff);
    return 0;
}
