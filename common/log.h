/* log: JSON lines on stderr, one object per event: time, level, message, the process-wide
 * context (run id, command) and the caller's fields. */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdbool.h>

#include <jansson.h>

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Parses "debug|info|warn|error" (case-insensitive). Returns false for anything else. */
bool log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Adds (or replaces) a field carried by every following line, e.g. run_id. The value is
 * copied. Thread-safe. */
void log_set_context(const char *key, const char *value);
void log_clear_context(void);

/* Writes one line. fields (steals; may be NULL) must be a JSON object; its keys are merged
 * into the line. Lines below the current level are dropped (fields are still freed).
 * Thread-safe: one write(2) per line. */
void log_event(enum log_level level, const char *msg, json_t *fields);

#define log_debug(msg, fields) log_event(LOG_LEVEL_DEBUG, (msg), (fields))
#define log_info(msg, fields) log_event(LOG_LEVEL_INFO, (msg), (fields))
#define log_warn(msg, fields) log_event(LOG_LEVEL_WARN, (msg), (fields))
#define log_error(msg, fields) log_event(LOG_LEVEL_ERROR, (msg), (fields))

/* Flags of log_mask_url. With none, only the password of the userinfo is masked:
 * "scheme://user:****@host/path?query#fragment". */
#define LOG_MASK_USERINFO 1u /* the whole userinfo, user name included, becomes "***@" */
#define LOG_MASK_QUERY 2u    /* the query becomes "?***", and the fragment is dropped */
#define LOG_MASK_PATH 4u     /* the path and all after it become a slash and three stars */
/* the userinfo search runs to the first '/', past a '?', as libpq reads a postgres URI */
#define LOG_MASK_SLASH_ONLY 8u

/* Returns a copy of url fit for a log line or a printed setting, masked as flags say (new;
 * free with free()). The userinfo is whatever precedes the last '@' before the first '/' or
 * '?' (only '/' with LOG_MASK_SLASH_ONLY) after "scheme://" (or from the start, without a
 * scheme), so a raw '#' or ':' in a password is still hidden. NULL when url is NULL or out
 * of memory. */
char *log_mask_url(const char *url, unsigned flags);

#endif
