/* log: JSON lines on stderr with level, time and context; secrets masked by the caller's
 * choice of fields and by log_mask_conninfo. */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static enum log_level current_level = LOG_LEVEL_INFO;
static json_t *context;
/* The context is read by every line and written between sweeps, while HTTP threads log. */
static pthread_mutex_t context_lock = PTHREAD_MUTEX_INITIALIZER;

bool
log_level_parse(const char *s, enum log_level *out)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return true;
    }
    return false;
}

const char *
log_level_name(enum log_level level)
{
    switch (level) {
    case LOG_LEVEL_DEBUG:
        return "debug";
    case LOG_LEVEL_INFO:
        return "info";
    case LOG_LEVEL_WARN:
        return "warn";
    case LOG_LEVEL_ERROR:
        return "error";
    }
    return "info";
}

void
log_set_level(enum log_level level)
{
    current_level = level;
}

bool
log_enabled(enum log_level level)
{
    return level >= current_level;
}

void
log_set_context(const char *key, const char *value)
{
    pthread_mutex_lock(&context_lock);
    if (context == NULL)
        context = json_object();
    json_object_set_new(context, key, json_string(value));
    pthread_mutex_unlock(&context_lock);
}

void
log_clear_context(void)
{
    pthread_mutex_lock(&context_lock);
    json_decref(context);
    context = NULL;
    pthread_mutex_unlock(&context_lock);
}

static void
format_time(char *out, size_t n)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, n - k, ".%03dZ", (int)(tv.tv_usec / 1000));
}

void
log_event(enum log_level level, const char *msg, json_t *fields)
{
    if (!log_enabled(level)) {
        json_decref(fields);
        return;
    }
    char ts[40];
    format_time(ts, sizeof ts);
    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(log_level_name(level)));
    json_object_set_new(line, "msg", json_string(msg));
    pthread_mutex_lock(&context_lock);
    if (context != NULL)
        json_object_update(line, context);
    pthread_mutex_unlock(&context_lock);
    if (json_is_object(fields))
        json_object_update(line, fields);
    json_decref(fields);

    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(line);
    if (text == NULL)
        return;
    size_t len = strlen(text);
    char *out = malloc(len + 2);
    if (out != NULL) {
        memcpy(out, text, len);
        out[len] = '\n';
        ssize_t w = write(STDERR_FILENO, out, len + 1);
        (void)w;
        free(out);
    }
    free(text);
}

/* Masks "password=..." in key/value strings and the userinfo password in URIs. */
char *
log_mask_conninfo(const char *conninfo)
{
    struct buf b;
    buf_init(&b, 0);
    if (conninfo == NULL)
        return buf_steal(&b);
    const char *scheme = strstr(conninfo, "://");
    if (scheme != NULL && (strncmp(conninfo, "postgres", 8) == 0)) {
        const char *auth = scheme + 3;
        const char *end = auth + strcspn(auth, "/?");
        const char *at = NULL;
        for (const char *p = auth; p < end; p++)
            if (*p == '@')
                at = p;
        const char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon != NULL) {
            buf_append(&b, conninfo, (size_t)(colon + 1 - conninfo));
            buf_puts(&b, "****");
            conninfo = at;
        }
        /* password=... may also appear as a query parameter */
        const char *q = strstr(conninfo, "password=");
        if (q != NULL) {
            buf_append(&b, conninfo, (size_t)(q - conninfo) + 9);
            buf_puts(&b, "****");
            conninfo = q + 9 + strcspn(q + 9, "&");
        }
        buf_puts(&b, conninfo);
        return buf_steal(&b);
    }
    /* key=value form: values may be single-quoted with backslash escapes */
    const char *p = conninfo;
    while (*p != '\0') {
        const char *k = strstr(p, "password");
        if (k == NULL) {
            buf_puts(&b, p);
            break;
        }
        const char *v = k + 8;
        while (*v == ' ')
            v++;
        bool is_key = (k == conninfo || k[-1] == ' ') && *v == '=';
        if (!is_key) {
            buf_append(&b, p, (size_t)(k + 8 - p));
            p = k + 8;
            continue;
        }
        v++;
        buf_append(&b, p, (size_t)(v - p));
        while (*v == ' ')
            v++;
        if (*v == '\'') {
            v++;
            while (*v != '\0' && *v != '\'') {
                if (*v == '\\' && v[1] != '\0')
                    v++;
                v++;
            }
            if (*v == '\'')
                v++;
        } else {
            v += strcspn(v, " ");
        }
        buf_puts(&b, "****");
        p = v;
    }
    return buf_steal(&b);
}
