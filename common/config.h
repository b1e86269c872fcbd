/* config: table-driven configuration for a batch job. One row per key gives its YAML path,
 * type, target field, default, environment variable and help; values come from the
 * defaults, then a YAML file (a mapping of sections of scalars), then the environment.
 * Every problem is collected and reported at once as "file:line:column: key: reason". */
#ifndef COMMON_CONFIG_H
#define COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

enum config_type {
    CONFIG_STRING,   /* char *, owned by the target (config_free_values) */
    CONFIG_INT,      /* int, within [min, max] */
    CONFIG_BOOL,     /* bool: true/false, yes/no, on/off, 1/0 */
    CONFIG_DURATION, /* long long milliseconds: "1500ms", "30s", "5m", "6h", "1d" or bare seconds */
    CONFIG_ENUM,     /* an int-sized enum: the index of the value in choices */
};

enum config_flags {
    CONFIG_SECRET = 1u << 0,   /* printed as "****"; never quoted back in an error */
    CONFIG_FILE_ENV = 1u << 1, /* ENV_FILE names a file holding the value (trailing CR/LF
                                * stripped), as Docker and Kubernetes secrets are mounted */
};

struct config_key {
    const char *path; /* "section.key"; a row with path NULL ends the table */
    enum config_type type;
    size_t offset;                /* of the target field: use CONFIG_FIELD / CONFIG_ENUM_FIELD */
    const char *def;              /* default as it would be written in the file; NULL = unset */
    const char *env;              /* environment variable that overrides the key, or NULL */
    unsigned flags;               /* enum config_flags */
    long long min, max;           /* CONFIG_INT, CONFIG_DURATION (ms); both 0 = unbounded */
    const char *const *choices;   /* CONFIG_ENUM: NULL-terminated names */
    const char *help;             /* one line for the operator */
    char *(*mask)(const char *v); /* optional, for printing a non-secret string: returns a
                                   * masked copy (new, free with free()), NULL on failure */
};

/* offsetof(T, field), refusing to compile when the field is not of type `type` or, for
 * enums, not the size of an int: a row that points at the wrong field is a build error. */
#define CONFIG_FIELD(T, field, type)                                                               \
    (offsetof(T, field) + 0 * sizeof(char[_Generic(((T *)0)->field, type : 1, default : -1)]))
#define CONFIG_ENUM_FIELD(T, field)                                                                \
    (offsetof(T, field) + 0 * sizeof(char[sizeof(((T *)0)->field) == sizeof(int) ? 1 : -1]))

enum config_source {
    CONFIG_SOURCE_DEFAULT = 0, /* the table's default (possibly unset) */
    CONFIG_SOURCE_FILE,
    CONFIG_SOURCE_ENV,
};

#define CONFIG_ENV_NAME_MAX 128

/* Where a key's value came from. Plain data. */
struct config_origin {
    enum config_source source;
    int line, column;              /* CONFIG_SOURCE_FILE: of the key, 1-based */
    char env[CONFIG_ENV_NAME_MAX]; /* CONFIG_SOURCE_ENV: the variable read, e.g. SMTP_PORT_FILE */
};

/* A load in progress or done: the table (borrowed), the file read, each key's origin and
 * the problems found. It does not hold the target, which the caller passes to each call. */
struct config;

/* Returns a new handle (free with config_free), or NULL when out of memory. table is
 * borrowed and must outlive the handle. env_prefix (copied; may be NULL) gives every key
 * without CONFIG_SECRET a second variable, PREFIX + the path upper-cased with '.' as '_'
 * (RW_ + sweep.batch_size = RW_SWEEP_BATCH_SIZE); a row's own env takes precedence. */
struct config *config_new(const struct config_key *table, const char *env_prefix);

/* Frees the handle (not the values in any target). NULL-safe. */
void config_free(struct config *c);

/* Fills target: every key to its default, then the values in the YAML file at path (when
 * path is non-NULL), then the environment. target's string fields must be NULL or owned
 * (a zeroed struct will do); they are replaced. Problems are collected, never fatal: the
 * load goes on so that all of them can be reported. A file that does not exist is skipped
 * silently when optional; any other unreadable file is a problem. An environment variable
 * set to the empty string sets a string key to "" (so it can blank out the file's value)
 * and is an invalid value for the other types. Returns the number of problems so far. */
size_t config_load(struct config *c, void *target, const char *path, bool optional);

/* Records a problem found by a later check, formatted with where key's value came from:
 * "file:line:column: key: reason", "environment: NAME: reason" or "key: reason". */
void config_problem(struct config *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

size_t config_problem_count(const struct config *c);

/* The i-th problem (borrowed, valid until config_free), or NULL past the end. */
const char *config_problem_at(const struct config *c, size_t i);

/* Writes every problem to out (when non-NULL), one per line. Returns ERR_OK when there is
 * none, else ERR_CONFIG with the first problem (and how many more) in e. */
int config_report(const struct config *c, FILE *out, struct err *e);

/* The file that was read (borrowed), or NULL when none was. */
const char *config_file(const struct config *c);

/* Where key's value came from, or NULL for a key not in the table. Borrowed. */
const struct config_origin *config_origin(const struct config *c, const char *key);

/* Writes "worker.yaml:12:3", "env SMTP_PORT" or "default" into buf (always terminated). */
void config_origin_describe(const struct config *c, const char *key, char *buf, size_t n);

/* Prints target as YAML: every key under its section, secrets as "****" when set, strings
 * through the row's mask, each line commented with its origin. c may be NULL (no origins). */
void config_print(const struct config *c, const struct config_key *table, const void *target,
                  FILE *out);

/* Prints a reference of the table: each key with its type, default, variables and help. */
void config_print_keys(const struct config_key *table, const char *env_prefix, FILE *out);

/* Frees every string field of target named by the table and sets it to NULL. NULL-safe. */
void config_free_values(const struct config_key *table, void *target);

/* The parsers behind the types, for reuse (command-line options) and tests. Each returns
 * false on a malformed value and leaves *out untouched. */
bool config_parse_bool(const char *s, bool *out);
bool config_parse_duration(const char *s, long long *ms);
bool config_parse_int(const char *s, long long *out);

/* Formats a duration in its largest exact unit ("90s" stays "90s", 3600000 is "1h"). */
void config_format_duration(long long ms, char *buf, size_t n);

#endif
