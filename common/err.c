/* err: error codes, their names and the exit statuses of SPEC §5. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
err_set(struct err *e, enum err_code code, const char *fmt, ...)
{
    if (e != NULL) {
        va_list ap;
        e->code = code;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return (int)code;
}

int
err_prefix(struct err *e, const char *fmt, ...)
{
    if (e == NULL)
        return ERR_INTERNAL;
    char prefix[ERR_MSG_MAX / 2];
    char old[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    /* Truncation is acceptable: the start of the message says where it happened. */
    int n = snprintf(e->msg, sizeof e->msg, "%s: ", prefix);
    if (n > 0 && (size_t)n < sizeof e->msg) {
        size_t room = sizeof e->msg - (size_t)n - 1;
        size_t len = strnlen(old, room);
        memcpy(e->msg + n, old, len);
        e->msg[(size_t)n + len] = '\0';
    }
    return (int)e->code;
}

void
err_clear(struct err *e)
{
    if (e != NULL) {
        e->code = ERR_OK;
        e->msg[0] = '\0';
    }
}

/* A switch without default, so -Wswitch flags a code that has no name. */
const char *
err_str(enum err_code code)
{
    switch (code) {
    case ERR_OK:
        return "ok";
    case ERR_USAGE:
        return "usage";
    case ERR_CONFIG:
        return "config";
    case ERR_UNAVAILABLE:
        return "unavailable";
    case ERR_TEMPORARY:
        return "temporary";
    case ERR_PERMANENT:
        return "permanent";
    case ERR_DATA:
        return "data";
    case ERR_NOT_FOUND:
        return "not_found";
    case ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}

int
err_exit_status(enum err_code code)
{
    switch (code) {
    case ERR_OK:
        return 0;
    case ERR_USAGE:
    case ERR_DATA:
    case ERR_NOT_FOUND:
        return 64; /* EX_USAGE */
    case ERR_CONFIG:
        return 78; /* EX_CONFIG */
    case ERR_UNAVAILABLE:
    case ERR_TEMPORARY:
        return 69; /* EX_UNAVAILABLE */
    case ERR_PERMANENT:
    case ERR_INTERNAL:
        return 70; /* EX_SOFTWARE */
    }
    return 70;
}
