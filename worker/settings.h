/* settings: the worker's configuration: one table of keys (YAML name, type, default,
 * environment variable) loaded by common/config into this plain struct. */
#ifndef WORKER_SETTINGS_H
#define WORKER_SETTINGS_H

#include <stdbool.h>
#include <stdio.h>

#include "err.h"
#include "log.h"
#include "policy.h"
#include "smtp.h"

struct config;
struct config_key;
struct token_ring;

/* Durations are milliseconds. Strings are owned by the struct (settings_free). An optional
 * string (one without a default) is NULL when not configured, including when it was set to
 * "" (an empty environment variable blanks out the file's value). */
struct settings {
    char *config_path;     /* the file read, or NULL when none */
    struct config *config; /* where each value came from (owned; settings_print) */

    /* database */
    char *database_url; /* DATABASE_URL */
    int database_connect_retries;
    long long database_connect_timeout_ms;
    long long database_statement_timeout_ms; /* server-side, per transaction */
    long long database_reply_timeout_ms;     /* client-side, per round trip */

    /* smtp */
    char *smtp_host;        /* SMTP_HOST */
    int smtp_port;          /* SMTP_PORT */
    enum smtp_tls smtp_tls; /* SMTP_TLS: none | starttls | tls */
    char *smtp_ca_file;     /* SMTP_CA_FILE */
    char *smtp_username;    /* SMTP_USERNAME */
    char *smtp_password;    /* SMTP_PASSWORD or the contents of SMTP_PASSWORD_FILE */
    char *smtp_helo_name;   /* SMTP_HELO_NAME */
    char *sender_email;     /* SMTP_SENDER_EMAIL */
    char *sender_name;      /* SMTP_SENDER_NAME */
    long long smtp_timeout_ms;
    long long smtp_connect_timeout_ms;
    int smtp_messages_per_session;
    char *smtp_max_rate_text;          /* SMTP_MAX_RATE, as written */
    double smtp_max_rate;              /* messages per second from it; 0 = no limit */
    long long smtp_throttle_budget_ms; /* retrying throttled messages within a sweep */

    /* sweep */
    int batch_size;
    long long lease_ms;
    long long shutdown_grace_ms;
    long long retry_interval_ms;
    long long backoff_base_ms;
    long long backoff_max_ms;
    int max_prompts;
    int concurrency;
    enum policy_unknown on_unknown_delivery; /* sweep.on_unknown_delivery */
    long long member_min_interval_ms;   /* at most one prompt per member per this; 0 = no cap */
    char *quiet_hours;                  /* "HH:MM-HH:MM" local to quiet_hours_zone, or NULL */
    char *quiet_hours_zone;             /* IANA zone name, checked against the system zoneinfo */
    int quiet_start_min, quiet_end_min; /* parsed from quiet_hours (equal when none) */
    long long give_up_after_ms;         /* no more nudges this long after created_at; 0 never */

    /* schedule (run) */
    long long schedule_interval_ms;
    long long schedule_jitter_ms;
    int schedule_retry_attempts;      /* a failed sweep is tried this often in all */
    long long schedule_retry_base_ms; /* doubling from here ... */
    long long schedule_retry_max_ms;  /* ... up to here */
    long long schedule_retry_jitter_ms;

    /* email */
    enum policy_consent consent;  /* email.consent: the preference(s) that must allow a prompt */
    char *resume_url;             /* RESUME_URL */
    char *unsubscribe_url;        /* UNSUBSCRIBE_URL, optional */
    char *unsubscribe_mailto;     /* UNSUBSCRIBE_MAILTO, optional */
    char *templates_dir;          /* optional override directory */
    char *resume_link_secret;     /* RESUME_LINK_SECRET, optional: a key ring "kid:secret,..."
                                   * (the first signs) or one secret (kid k1); see token.h */
    struct token_ring *link_keys; /* parsed from resume_link_secret, once (owned); NULL when
                                   * it is not set */
    long long resume_link_ttl_ms;
    long long unsubscribe_link_ttl_ms;

    /* metrics */
    char *pushgateway_url; /* PUSHGATEWAY_URL, optional */
    char *metrics_job;
    char *metrics_instance;
    char *heartbeat_url; /* HEARTBEAT_URL, optional */

    /* http (serve, and run when http.listen is set) */
    char *http_listen; /* HTTP_LISTEN "host:port"; NULL: serve uses the default */
    int http_max_connections;
    long long http_idle_timeout_ms;
    long long http_database_timeout_ms; /* each database round trip of a request */

    /* log */
    enum log_level log_level; /* LOG_LEVEL */
};

/* The key and variable of the database connection string, for messages about it. */
#define SETTINGS_DATABASE_URL_KEY "database.url"
#define SETTINGS_DATABASE_URL_ENV "DATABASE_URL"

/* Where `serve` listens when http.listen is not set (`run` then serves nothing). */
#define SETTINGS_HTTP_LISTEN_DEFAULT "127.0.0.1:8080"

/* The prefix of the variable every non-secret key also answers to: RW_ + the key's path
 * upper-cased with '.' as '_' (RW_SWEEP_BATCH_SIZE). A key's own variable (SMTP_PORT) wins. */
#define SETTINGS_ENV_PREFIX "RW_"
#define SMTP_MAX_RATE_MAX 10000 /* smtp.max_rate, messages per second */

/* Loads defaults, then the file, then the environment. path NULL means
 * $RECOVERY_WORKER_CONFIG (when set and not empty; then it is explicit) or ./worker.yaml,
 * and a missing ./worker.yaml is not an error; an explicit path that cannot be read is.
 * out is overwritten (its previous contents are not freed). On ERR_CONFIG every problem has
 * been written to `problems` (when non-NULL), one "file:line:column: key: reason" line
 * each, e holds the first, and out is left empty (settings_free is still safe).
 * ERR_INTERNAL when out of memory. */
int settings_load(const char *path, struct settings *out, FILE *problems, struct err *e);

/* Prints the effective settings as YAML, secrets masked, each key with where it came from. */
void settings_print(const struct settings *s, FILE *out);

/* Frees every string and the origins, and leaves s zeroed. NULL-safe. */
void settings_free(struct settings *s);

/* The key table behind struct settings (static; ends with a row whose path is NULL). */
const struct config_key *settings_keys(void);

#endif
