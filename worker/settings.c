/* settings: the worker's key table (every field of struct settings, its YAML path, default,
 * bounds and environment variable) and the checks that span keys. */
#include "settings.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "httpd.h"
#include "mime.h"
#include "prompt.h"
#include "token.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

#define STR(f) CONFIG_FIELD(struct settings, f, char *)
#define INT(f) CONFIG_FIELD(struct settings, f, int)
#define DUR(f) CONFIG_FIELD(struct settings, f, long long)
#define ENUM(f) CONFIG_ENUM_FIELD(struct settings, f)

/* In enum order: the index stored is the enum value. */
static const char *const tls_choices[] = {"none", "starttls", "tls", NULL};
/* The consent and unknown-delivery words are policy's lists, in its enum order. */
#define CHOICE(id, word) #word,
static const char *const unknown_choices[] = {POLICY_UNKNOWNS(CHOICE) NULL};
static const char *const consent_choices[] = {POLICY_CONSENTS(CHOICE) NULL};
#undef CHOICE
static const char *const level_choices[] = {"debug", "info", "warn", "error", NULL};

_Static_assert(SMTP_TLS_NONE == 0 && SMTP_TLS_STARTTLS == 1 && SMTP_TLS_IMPLICIT == 2,
               "tls_choices follows enum smtp_tls");
_Static_assert(LOG_LEVEL_DEBUG == 0 && LOG_LEVEL_INFO == 1 && LOG_LEVEL_WARN == 2 &&
                   LOG_LEVEL_ERROR == 3,
               "level_choices follows enum log_level");

static char *mask_url(const char *url);

static const struct config_key settings_table[] = {
    /* database */
    {.path = SETTINGS_DATABASE_URL_KEY,
     .type = CONFIG_STRING,
     .offset = STR(database_url),
     .env = SETTINGS_DATABASE_URL_ENV,
     .mask = db_mask_conninfo,
     .help = "libpq connection string or URI; needed by every command that uses the database"},
    {.path = "database.connect_retries",
     .type = CONFIG_INT,
     .offset = INT(database_connect_retries),
     .def = "3",
     .min = 0,
     .max = 20,
     .help = "further connection attempts, with backoff, before giving up (exit 69)"},
    {.path = "database.connect_timeout",
     .type = CONFIG_DURATION,
     .offset = DUR(database_connect_timeout_ms),
     .def = "5s",
     .min = 1 * SEC,
     .max = 10 * MIN,
     .help = "deadline of one connection attempt"},
    {.path = "database.statement_timeout",
     .type = CONFIG_DURATION,
     .offset = DUR(database_statement_timeout_ms),
     .def = "30s",
     .min = 1 * SEC,
     .max = 24 * HOUR,
     .help = "server-side statement_timeout and idle_in_transaction_session_timeout of each "
             "of the worker's transactions (raise it for a long migrate)"},
    {.path = "database.reply_timeout",
     .type = CONFIG_DURATION,
     .offset = DUR(database_reply_timeout_ms),
     .def = "45s",
     .min = 2 * SEC,
     .max = 24 * HOUR,
     .help = "longest wait for any reply of the database before the connection is dropped "
             "(exit 69): how long a silent database can hold a sweep; longer than "
             "database.statement_timeout"},

    /* smtp */
    {.path = "smtp.host",
     .type = CONFIG_STRING,
     .offset = STR(smtp_host),
     .def = "localhost",
     .env = "SMTP_HOST",
     .help = "SMTP relay host"},
    {.path = "smtp.port",
     .type = CONFIG_INT,
     .offset = INT(smtp_port),
     .def = "587",
     .env = "SMTP_PORT",
     .min = 1,
     .max = 65535,
     .help = "SMTP relay port"},
    {.path = "smtp.tls",
     .type = CONFIG_ENUM,
     .offset = ENUM(smtp_tls),
     .def = "starttls",
     .env = "SMTP_TLS",
     .choices = tls_choices,
     .help = "none, or starttls (required, certificate verified); tls (implicit, port 465) is "
             "refused"},
    {.path = "smtp.ca_file",
     .type = CONFIG_STRING,
     .offset = STR(smtp_ca_file),
     .env = "SMTP_CA_FILE",
     .help = "PEM file of CAs to verify the relay with; system CAs if unset"},
    {.path = "smtp.username",
     .type = CONFIG_STRING,
     .offset = STR(smtp_username),
     .env = "SMTP_USERNAME",
     .help = "AUTH user name; AUTH is used only when set"},
    {.path = "smtp.password",
     .type = CONFIG_STRING,
     .offset = STR(smtp_password),
     .env = "SMTP_PASSWORD",
     .flags = CONFIG_SECRET | CONFIG_FILE_ENV,
     .help = "AUTH password; better from SMTP_PASSWORD_FILE than from this file"},
    {.path = "smtp.helo_name",
     .type = CONFIG_STRING,
     .offset = STR(smtp_helo_name),
     .env = "SMTP_HELO_NAME",
     .help = "name sent in EHLO; the host name if unset"},
    {.path = "smtp.sender_email",
     .type = CONFIG_STRING,
     .offset = STR(sender_email),
     .def = "no-reply@localhost.localdomain",
     .env = "SMTP_SENDER_EMAIL",
     .help = "From address and envelope sender"},
    {.path = "smtp.sender_name",
     .type = CONFIG_STRING,
     .offset = STR(sender_name),
     .def = "Checkout",
     .env = "SMTP_SENDER_NAME",
     .help = "From display name"},
    {.path = "smtp.timeout",
     .type = CONFIG_DURATION,
     .offset = DUR(smtp_timeout_ms),
     .def = "30s",
     .min = 1 * SEC,
     .max = 10 * MIN,
     .help = "wait for each SMTP reply"},
    {.path = "smtp.connect_timeout",
     .type = CONFIG_DURATION,
     .offset = DUR(smtp_connect_timeout_ms),
     .def = "10s",
     .min = 1 * SEC,
     .max = 5 * MIN,
     .help = "TCP connect deadline"},
    {.path = "smtp.messages_per_session",
     .type = CONFIG_INT,
     .offset = INT(smtp_messages_per_session),
     .def = "100",
     .min = 1,
     .max = 10000,
     .help = "messages sent over one connection before it is closed"},
    {.path = "smtp.max_rate",
     .type = CONFIG_STRING,
     .offset = STR(smtp_max_rate_text),
     .def = "0",
     .env = "SMTP_MAX_RATE",
     .help = "messages per second across all sessions (\"5\", \"0.5\", \"30/m\", \"1000/h\"); "
             "0 = no limit of ours"},
    {.path = "smtp.throttle_budget",
     .type = CONFIG_DURATION,
     .offset = DUR(smtp_throttle_budget_ms),
     .def = "5m",
     .min = 0,
     .max = 1 * HOUR,
     .env = "RW_SMTP_THROTTLE_BUDGET",
     .help = "how long a sweep keeps retrying messages the relay throttled before it releases "
             "them still due"},

    /* sweep */
    {.path = "sweep.batch_size",
     .type = CONFIG_INT,
     .offset = INT(batch_size),
     .def = "500",
     .min = 1,
     .max = 10000,
     .help = "orchestrations claimed per batch; a sweep drains them all"},
    {.path = "sweep.lease",
     .type = CONFIG_DURATION,
     .offset = DUR(lease_ms),
     .def = "5m",
     .min = 5 * SEC,
     .max = 1 * DAY,
     .help = "how long a claimed orchestration stays locked (locked_until)"},
    {.path = "sweep.retry_interval",
     .type = CONFIG_DURATION,
     .offset = DUR(retry_interval_ms),
     .def = "6h",
     .min = 1 * MIN,
     .max = 30 * DAY,
     .help = "next_action_at after a prompt was handled"},
    {.path = "sweep.backoff_base",
     .type = CONFIG_DURATION,
     .offset = DUR(backoff_base_ms),
     .def = "5m",
     .min = 1 * SEC,
     .max = 1 * DAY,
     .help = "first retry delay after a transient failure; doubles per attempt"},
    {.path = "sweep.backoff_max",
     .type = CONFIG_DURATION,
     .offset = DUR(backoff_max_ms),
     .def = "2h",
     .min = 1 * SEC,
     .max = 7 * DAY,
     .help = "longest retry delay"},
    {.path = "sweep.max_prompts",
     .type = CONFIG_INT,
     .offset = INT(max_prompts),
     .def = "3",
     .min = 1,
     .max = 100,
     .help = "prompts per orchestration before it is no longer nudged"},
    {.path = "sweep.concurrency",
     .type = CONFIG_INT,
     .offset = INT(concurrency),
     .def = "4",
     .min = 1,
     .max = 64,
     .help = "SMTP sessions in parallel"},
    {.path = "sweep.on_unknown_delivery",
     .type = CONFIG_ENUM,
     .offset = ENUM(on_unknown_delivery),
     .def = "resend",
     .choices = unknown_choices,
     .help = "a message whose data was on the wire when the worker stopped, with no reply "
             "recorded: resend (once, same Message-ID) or skip (record it as unknown)"},
    {.path = "sweep.shutdown_grace",
     .type = CONFIG_DURATION,
     .offset = DUR(shutdown_grace_ms),
     .def = "10s",
     .min = 0,
     .max = 10 * MIN,
     .help = "on SIGTERM, how long the messages on the wire may take to finish before the "
             "sessions are cut short"},
    {.path = "sweep.member_min_interval",
     .type = CONFIG_DURATION,
     .offset = DUR(member_min_interval_ms),
     .def = "24h",
     .min = 0,
     .max = 30 * DAY,
     .help = "at most one prompt per member (across all their orders) per this; 0 turns the "
             "cap off"},
    {.path = "sweep.quiet_hours",
     .type = CONFIG_STRING,
     .offset = STR(quiet_hours),
     .help = "\"HH:MM-HH:MM\" local time (may wrap midnight) when no prompt is sent; rows "
             "due then wait for its end"},
    {.path = "sweep.quiet_hours_zone",
     .type = CONFIG_STRING,
     .offset = STR(quiet_hours_zone),
     .def = "UTC",
     .help = "IANA time zone of sweep.quiet_hours, e.g. Europe/Berlin"},
    {.path = "sweep.give_up_after",
     .type = CONFIG_DURATION,
     .offset = DUR(give_up_after_ms),
     .def = "30d",
     .min = 0,
     .max = 3650 * DAY,
     .help = "an orchestration older than this (from its created_at) gets one last event "
             "(\"Recovery window closed\") and is not nudged again; 0 never gives up"},

    /* schedule */
    {.path = "schedule.interval",
     .type = CONFIG_DURATION,
     .offset = DUR(schedule_interval_ms),
     .def = "30m",
     .min = 1 * SEC,
     .max = 1 * DAY,
     .help = "time between sweeps in `run`"},
    {.path = "schedule.jitter",
     .type = CONFIG_DURATION,
     .offset = DUR(schedule_jitter_ms),
     .def = "1m",
     .min = 0,
     .max = 1 * HOUR,
     .help = "random delay up to this added to each interval, so replicas spread out"},
    {.path = "schedule.retry_attempts",
     .type = CONFIG_INT,
     .offset = INT(schedule_retry_attempts),
     .def = "3",
     .min = 1,
     .max = 20,
     .help = "in `run`, attempts of a sweep that fails on the database or the relay"},
    {.path = "schedule.retry_base",
     .type = CONFIG_DURATION,
     .offset = DUR(schedule_retry_base_ms),
     .def = "45s",
     .min = 0,
     .max = 1 * HOUR,
     .help = "in `run`, wait before the second attempt, doubling after each failure"},
    {.path = "schedule.retry_max",
     .type = CONFIG_DURATION,
     .offset = DUR(schedule_retry_max_ms),
     .def = "300s",
     .min = 0,
     .max = 1 * DAY,
     .help = "in `run`, the longest wait between attempts"},
    {.path = "schedule.retry_jitter",
     .type = CONFIG_DURATION,
     .offset = DUR(schedule_retry_jitter_ms),
     .def = "10s",
     .min = 0,
     .max = 1 * HOUR,
     .help = "in `run`, a random delay up to this added to each wait"},

    /* email */
    {.path = "email.consent",
     .type = CONFIG_ENUM,
     .offset = ENUM(consent),
     .def = "order_updates",
     .choices = consent_choices,
     .help = "the member preference that must allow a prompt: order_updates (as the "
             "storefront does), marketing_messages (opt-in) or both"},
    {.path = "email.resume_url",
     .type = CONFIG_STRING,
     .offset = STR(resume_url),
     .def = "http://localhost:3000/checkout",
     .env = "RESUME_URL",
     .help = "base of the resume link (http:// or https://)"},
    {.path = "email.unsubscribe_url",
     .type = CONFIG_STRING,
     .offset = STR(unsubscribe_url),
     .env = "UNSUBSCRIBE_URL",
     .help = "List-Unsubscribe target, given a signed token; needs email.resume_link_secret; no "
             "such headers if unset"},
    {.path = "email.unsubscribe_mailto",
     .type = CONFIG_STRING,
     .offset = STR(unsubscribe_mailto),
     .env = "UNSUBSCRIBE_MAILTO",
     .help = "an address that unsubscribes by mail, listed in List-Unsubscribe after the URL"},
    {.path = "email.templates_dir",
     .type = CONFIG_STRING,
     .offset = STR(templates_dir),
     .help = "directory of templates replacing the built-in ones"},
    {.path = "email.resume_link_secret",
     .type = CONFIG_STRING,
     .offset = STR(resume_link_secret),
     .env = "RESUME_LINK_SECRET",
     .flags = CONFIG_SECRET | CONFIG_FILE_ENV,
     .help = "HMAC keys signing link tokens: \"kid:secret,kid:secret\" (the first signs, all "
             "verify) or one secret (kid k1); 32+ characters each; unsigned links if unset"},
    {.path = "email.resume_link_ttl",
     .type = CONFIG_DURATION,
     .offset = DUR(resume_link_ttl_ms),
     .def = "30d",
     .min = 1 * MIN,
     .max = 365 * DAY,
     .help = "how long a signed link stays valid"},
    {.path = "email.unsubscribe_link_ttl",
     .type = CONFIG_DURATION,
     .offset = DUR(unsubscribe_link_ttl_ms),
     .def = "365d",
     .min = 30 * DAY, /* CAN-SPAM: an opt-out must work for 30 days after sending */
     .max = 3650 * DAY,
     .help = "how long an unsubscribe link stays valid"},

    /* metrics */
    {.path = "metrics.pushgateway_url",
     .type = CONFIG_STRING,
     .offset = STR(pushgateway_url),
     .env = "PUSHGATEWAY_URL",
     .mask = mask_url,
     .help = "Prometheus Pushgateway base URL; no push if unset"},
    {.path = "metrics.job",
     .type = CONFIG_STRING,
     .offset = STR(metrics_job),
     .def = "recovery-worker",
     .help = "Pushgateway job label"},
    {.path = "metrics.instance",
     .type = CONFIG_STRING,
     .offset = STR(metrics_instance),
     .help = "Pushgateway instance label; the host name if unset"},
    {.path = "metrics.heartbeat_url",
     .type = CONFIG_STRING,
     .offset = STR(heartbeat_url),
     .env = "HEARTBEAT_URL",
     .mask = mask_url,
     .help = "pinged on start, success and failure; none if unset"},

    /* http */
    {.path = "http.listen",
     .type = CONFIG_STRING,
     .offset = STR(http_listen),
     .env = "HTTP_LISTEN",
     .help = "host:port of the HTTP endpoints (one-click unsubscribe, /healthz, /metrics); "
             "`serve` uses " SETTINGS_HTTP_LISTEN_DEFAULT " when unset, `run` serves only when "
             "set"},
    {.path = "http.max_connections",
     .type = CONFIG_INT,
     .offset = INT(http_max_connections),
     .def = "64",
     .min = 1,
     .max = 10000,
     .help = "open HTTP connections at once; more are refused"},
    {.path = "http.idle_timeout",
     .type = CONFIG_DURATION,
     .offset = DUR(http_idle_timeout_ms),
     .def = "10s",
     .min = 1 * SEC,
     .max = 5 * MIN,
     .help = "an HTTP connection silent this long is closed"},
    {.path = "http.database_timeout",
     .type = CONFIG_DURATION,
     .offset = DUR(http_database_timeout_ms),
     .def = "3s",
     .min = 1 * SEC,
     .max = 1 * MIN,
     .help = "bound on connecting and on each statement of a request; /healthz answers 503 "
             "past it"},

    /* log */
    {.path = "log.level",
     .type = CONFIG_ENUM,
     .offset = ENUM(log_level),
     .def = "info",
     .env = "LOG_LEVEL",
     .choices = level_choices,
     .help = "debug, info, warn or error"},

    {.path = NULL},
};

const struct config_key *
settings_keys(void)
{
    return settings_table;
}

/* A copy of url with the password of its userinfo (scheme://user:password@host) masked. */
static char *
mask_url(const char *url)
{
    return log_mask_url(url, 0);
}

static bool
is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static bool
is_http_url(const char *s)
{
    return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

/* "HH:MM-HH:MM" into minutes of the day; start and end must differ. */
static bool
parse_quiet_hours(const char *v, int *start, int *end)
{
    int h1, m1, h2, m2, n = 0;
    if (sscanf(v, "%2d:%2d-%2d:%2d%n", &h1, &m1, &h2, &m2, &n) != 4 || v[n] != '\0' ||
        strlen(v) != 11)
        return false;
    if (h1 < 0 || h1 > 23 || m1 < 0 || m1 > 59 || h2 < 0 || h2 > 23 || m2 < 0 || m2 > 59)
        return false;
    *start = h1 * 60 + m1;
    *end = h2 * 60 + m2;
    return *start != *end;
}

static void
check_optional_url(struct config *c, const char *key, const char *url)
{
    if (is_set(url) && !is_http_url(url))
        config_problem(c, key, "must start with http:// or https://");
}

/* A link goes into every prompt as it is, and prompt_render refuses any other: a lower-case
 * http:// or https:// URL of printable ASCII without spaces, quotes, angle brackets,
 * backslashes or backticks. Refused here, such a value is a start-up error rather than every
 * prompt failing at send time. */
/* Limits that leave room for what each prompt adds: "recovery.<uuid>.<micros>@" before the
 * domain in a Message-ID of MIME_MESSAGE_ID_MAX; the order id and a token (about 300
 * characters) in a resume link of PROMPT_URL_MAX; the token in an unsubscribe link of
 * PROMPT_UNSUBSCRIBE_URL_MAX (List-Unsubscribe's limit, less its angle brackets). */
#define SENDER_DOMAIN_MAX 180
#define RESUME_URL_MAX 1500
#define UNSUBSCRIBE_URL_MAX 500
#define LINK_ADDS 300 /* the order id and a signed token, about this long */
_Static_assert(PROMPT_MESSAGE_ID_LOCAL_MAX + 1 + SENDER_DOMAIN_MAX <= MIME_MESSAGE_ID_MAX,
               "every sender domain allowed fits a prompt's Message-ID");
_Static_assert(RESUME_URL_MAX + LINK_ADDS < PROMPT_URL_MAX, "a resume link has room for its token");
_Static_assert(UNSUBSCRIBE_URL_MAX + LINK_ADDS < PROMPT_UNSUBSCRIBE_URL_MAX,
               "an unsubscribe link has room for its token");

static void
check_link_url(struct config *c, const char *key, const char *url, size_t max)
{
    if (strlen(url) > max) {
        /* the order id and the signed token still have to fit in every prompt's link */
        config_problem(c, key, "is longer than %zu characters", max);
        return;
    }
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        config_problem(c, key, "must start with http:// or https://");
        return;
    }
    for (const unsigned char *p = (const unsigned char *)url; *p != '\0'; p++) {
        if (*p <= ' ' || *p >= 0x7F || strchr("<>\"'\\`", *p) != NULL) {
            config_problem(c, key,
                           "must not contain spaces, quotes, <, >, \\, ` or non-ASCII characters "
                           "(percent-encode them)");
            return;
        }
    }
}

/* The key ring, parsed here once for every command: each secret long enough, kids valid and
 * unique. */
static void
parse_link_keys(struct config *c, struct settings *s)
{
    s->link_keys = NULL;
    if (!is_set(s->resume_link_secret))
        return;
    struct err e;
    err_clear(&e);
    if (token_ring_parse(s->resume_link_secret, &s->link_keys, &e) != ERR_OK)
        config_problem(c, "email.resume_link_secret", "%s", e.msg);
}

/* An unsubscribe link is never unsigned: anyone could then opt out any member by editing
 * the URL. */
static void
check_link_keys(struct config *c, const struct settings *s)
{
    if (!is_set(s->resume_link_secret) && is_set(s->unsubscribe_url)) {
        config_problem(c, "email.unsubscribe_url",
                       "needs email.resume_link_secret (RESUME_LINK_SECRET) to sign its token");
    }
}

/* An IANA zone name that names a compiled zone (a regular file starting with the TZif
 * magic) under the system's zoneinfo: $TZDIR, else /usr/share/zoneinfo. PostgreSQL applies
 * the zone and keeps the last word, but it would only refuse a typo in the middle of a
 * sweep; checked here, the typo is a start-up error naming its file and line. The name is
 * joined to a directory, so an absolute path or a ".." could reach any file: both are
 * refused before anything is opened, and O_NONBLOCK keeps a FIFO from hanging the load. */
static void
check_zone(struct config *c, const char *key, const char *zone)
{
    const char *dir = getenv("TZDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/usr/share/zoneinfo";
    size_t n = zone != NULL ? strlen(zone) : 0;
    bool plain = n > 0 && n < 256 && zone[0] != '/' && strstr(zone, "..") == NULL &&
                 strspn(zone, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                              "0123456789/_+-.") == n;
    if (!plain) {
        config_problem(c, key,
                       "\"%s\" is not a time zone name (an IANA name such as Europe/Berlin)",
                       zone != NULL ? zone : "");
        return;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, zone) >= sizeof path) {
        config_problem(c, key, "\"%s\": %s is too long a path", zone, dir);
        return;
    }
    char magic[4] = {0};
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
              read(fd, magic, sizeof magic) == (ssize_t)sizeof magic &&
              memcmp(magic, "TZif", 4) == 0;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    if (ok)
        return;
    if (fd < 0 && saved != ENOENT && saved != ENOTDIR)
        config_problem(c, key, "cannot read time zone \"%s\" (%s): %s", zone, path,
                       strerror(saved));
    else
        config_problem(c, key,
                       "unknown time zone \"%s\": not a zone in %s (an IANA name such as "
                       "Europe/Berlin; is tzdata installed?)",
                       zone, dir);
}

/* Values derived from others: the quiet hours as minutes of the day. */
/* "5", "0.5", "5/s", "30/m", "1000/h": messages per second, 0..SMTP_MAX_RATE_MAX. */
static bool
parse_rate(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno != 0 || !(v >= 0) || (text[0] < '0' || text[0] > '9'))
        return false;
    double per = 1;
    if (strcmp(end, "/s") == 0)
        per = 1;
    else if (strcmp(end, "/m") == 0)
        per = 60;
    else if (strcmp(end, "/h") == 0)
        per = 3600;
    else if (*end != '\0')
        return false;
    v /= per;
    if (v > SMTP_MAX_RATE_MAX || (v > 0 && v < 1.0 / 3600))
        return false;
    *out = v;
    return true;
}

/* Values derived from others: the quiet hours as minutes of the day, the send rate, the
 * key ring. */
static void
derive(struct config *c, struct settings *s)
{
    parse_link_keys(c, s);
    s->smtp_max_rate = 0;
    if (is_set(s->smtp_max_rate_text) && !parse_rate(s->smtp_max_rate_text, &s->smtp_max_rate))
        config_problem(c, "smtp.max_rate",
                       "expected messages per second (5, 0.5) or per minute or hour (30/m, "
                       "1000/h), at most %d per second and at least 1/h, or 0 for no limit; got "
                       "\"%s\"",
                       SMTP_MAX_RATE_MAX, s->smtp_max_rate_text);
    s->quiet_start_min = s->quiet_end_min = 0;
    if (is_set(s->quiet_hours) &&
        !parse_quiet_hours(s->quiet_hours, &s->quiet_start_min, &s->quiet_end_min))
        config_problem(c, "sweep.quiet_hours",
                       "expected HH:MM-HH:MM (24-hour, start and end differ), got \"%s\"",
                       s->quiet_hours);
}

/* Checks that need the whole struct; each problem points at where its value came from. */
static void
check(struct config *c, const struct settings *s)
{
    char a[32], b[32];

    if (s->smtp_tls == SMTP_TLS_IMPLICIT)
        config_problem(c, "smtp.tls",
                       "\"tls\" (implicit TLS, port 465) is not supported by libESMTP 1.1.0; use "
                       "starttls, or none towards a relay on loopback");
    /* It goes in the envelope and the From header, which refuses address literals such as
     * shop@[192.0.2.1]: accepted, one would fail every prompt. */
    if (!is_set(s->sender_email) || !mime_address_valid(s->sender_email))
        config_problem(c, "smtp.sender_email", "\"%s\" is not a valid email address",
                       s->sender_email != NULL ? s->sender_email : "");
    else if (strlen(strrchr(s->sender_email, '@') + 1) > SENDER_DOMAIN_MAX)
        /* the Message-ID is built on this domain and must stay within its 250 characters */
        config_problem(c, "smtp.sender_email", "the domain is longer than %d characters",
                       SENDER_DOMAIN_MAX);
    if (is_set(s->smtp_username) && !is_set(s->smtp_password))
        config_problem(c, "smtp.username",
                       "is set but smtp.password is not (SMTP_PASSWORD or SMTP_PASSWORD_FILE)");
    if (is_set(s->smtp_password) && !is_set(s->smtp_username))
        config_problem(c, "smtp.password", "is set but smtp.username is not (SMTP_USERNAME)");
    if (!is_set(s->smtp_host))
        config_problem(c, "smtp.host", "must not be empty");

    if (s->database_reply_timeout_ms <= s->database_statement_timeout_ms) {
        /* the server's own timeout must come first, with a clear error, on a live network */
        config_format_duration(s->database_reply_timeout_ms, a, sizeof a);
        config_format_duration(s->database_statement_timeout_ms, b, sizeof b);
        config_problem(c, "database.reply_timeout",
                       "%s is not longer than database.statement_timeout (%s)", a, b);
    }
    if (s->backoff_base_ms > s->backoff_max_ms) {
        config_format_duration(s->backoff_base_ms, a, sizeof a);
        config_format_duration(s->backoff_max_ms, b, sizeof b);
        config_problem(c, "sweep.backoff_base", "%s is longer than sweep.backoff_max (%s)", a, b);
    }
    if (s->schedule_jitter_ms >= s->schedule_interval_ms) {
        config_format_duration(s->schedule_jitter_ms, a, sizeof a);
        config_format_duration(s->schedule_interval_ms, b, sizeof b);
        config_problem(c, "schedule.jitter", "%s is not shorter than schedule.interval (%s)", a, b);
    }

    if (!is_set(s->resume_url))
        config_problem(c, "email.resume_url", "must start with http:// or https://");
    else
        check_link_url(c, "email.resume_url", s->resume_url, RESUME_URL_MAX);
    if (is_set(s->unsubscribe_url))
        check_link_url(c, "email.unsubscribe_url", s->unsubscribe_url, UNSUBSCRIBE_URL_MAX);
    if (is_set(s->unsubscribe_mailto) &&
        (!mime_address_valid(s->unsubscribe_mailto) || strlen(s->unsubscribe_mailto) > 200))
        config_problem(c, "email.unsubscribe_mailto", "is not a usable email address");
    check_optional_url(c, "metrics.pushgateway_url", s->pushgateway_url);
    check_optional_url(c, "metrics.heartbeat_url", s->heartbeat_url);
    check_link_keys(c, s);
    if (!is_set(s->metrics_job))
        config_problem(c, "metrics.job", "must not be empty");
    check_zone(c, "sweep.quiet_hours_zone", s->quiet_hours_zone);
    char host[256];
    int port = 0;
    if (is_set(s->http_listen) && !httpd_parse_listen(s->http_listen, host, sizeof host, &port))
        config_problem(c, "http.listen",
                       "expected host:port (e.g. 0.0.0.0:8080 or [::]:8080), got \"%s\"",
                       s->http_listen);
}

/* An optional key set to "" (an empty environment variable, say) means "not configured",
 * the same as never set: NULL, so consumers test one thing. */
static void
empty_to_null(struct settings *s)
{
    for (const struct config_key *k = settings_table; k->path != NULL; k++) {
        if (k->type != CONFIG_STRING || k->def != NULL)
            continue;
        char **sp = (char **)(void *)((char *)s + k->offset);
        if (*sp != NULL && (*sp)[0] == '\0') {
            free(*sp);
            *sp = NULL;
        }
    }
}

int
settings_load(const char *path, struct settings *out, FILE *problems, struct err *e)
{
    memset(out, 0, sizeof *out);
    bool optional = false;
    if (path == NULL) {
        const char *env = getenv("RECOVERY_WORKER_CONFIG");
        if (env != NULL && env[0] != '\0') {
            path = env;
        } else {
            path = "worker.yaml";
            optional = true;
        }
    }

    struct config *c = config_new(settings_table, SETTINGS_ENV_PREFIX);
    if (c == NULL)
        return err_set(e, ERR_INTERNAL, "out of memory while loading the configuration");
    config_load(c, out, path, optional);
    derive(c, out);
    check(c, out);
    empty_to_null(out);
    int rc = config_report(c, problems, e);
    if (rc == ERR_OK && config_file(c) != NULL) {
        out->config_path = strdup(config_file(c));
        if (out->config_path == NULL)
            rc = err_set(e, ERR_INTERNAL, "out of memory while loading the configuration");
    }
    out->config = c;
    if (rc != ERR_OK)
        settings_free(out);
    return rc;
}

void
settings_print(const struct settings *s, FILE *out)
{
    fprintf(out, "# recovery-worker configuration; secrets masked\n");
    if (s->config_path != NULL)
        fprintf(out, "# file: %s\n", s->config_path);
    config_print(s->config, settings_table, s, out);
}

void
settings_free(struct settings *s)
{
    if (s == NULL)
        return;
    config_free_values(settings_table, s);
    config_free(s->config);
    token_ring_free(s->link_keys);
    free(s->config_path);
    memset(s, 0, sizeof *s);
}
