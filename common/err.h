/* err: one error type for the whole program: a code that drives retry and exit status, a
 * message for the person reading the log. */
#ifndef COMMON_ERR_H
#define COMMON_ERR_H

#include <stdbool.h>

enum err_code {
    ERR_OK = 0,
    ERR_USAGE,       /* bad command line: exit 64 */
    ERR_CONFIG,      /* configuration unreadable or invalid: exit 78 */
    ERR_UNAVAILABLE, /* a dependency (database, SMTP relay) cannot be reached: exit 69 */
    ERR_TEMPORARY,   /* one operation failed but may succeed later (SMTP 4xx, timeout) */
    ERR_PERMANENT,   /* one operation failed and will fail again (SMTP 5xx) */
    ERR_DATA,        /* input data cannot be used (bad address, bad JSON) */
    ERR_NOT_FOUND,   /* the thing asked for does not exist */
    ERR_INTERNAL,    /* a bug or resource exhaustion: exit 70 */
};

#define ERR_MSG_MAX 512

struct err {
    enum err_code code;
    char msg[ERR_MSG_MAX];
};

/* Sets e (when non-NULL) and returns code, so callers can write `return err_set(e, ...)`. */
int err_set(struct err *e, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with context ("claim batch: " + msg); keeps the code. */
int err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void err_clear(struct err *e);

/* The stable name of a code ("unavailable", "config", ...). Never NULL. */
const char *err_str(enum err_code code);

/* The sysexits status the SPEC assigns to a code. */
int err_exit_status(enum err_code code);

#endif
