/* log: JSON lines on stderr with level, time and context; secrets masked by the caller's
 * choice of fields and by log_mask_url. */
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

/* ---- masking --------------------------------------------------------------------------- */

/* The '@' that ends the userinfo of the authority starting at auth, or NULL. */
static const char *
userinfo_end(const char *auth, unsigned flags)
{
    /* '#' does not end the search for '@': a password with a raw '#' is still a password. */
    size_t limit = strcspn(auth, "/");
    size_t query = strcspn(auth, "?");
    /* RFC 3986 ends the authority at '?'; libpq reads a postgres URI's userinfo up to the
     * first '/', so there a raw '?' may sit inside the password. */
    if ((flags & LOG_MASK_SLASH_ONLY) == 0 && query < limit)
        limit = query;
    const char *at = NULL;
    for (const char *p = auth; p < auth + limit; p++)
        if (*p == '@')
            at = p;
    return at;
}

char *
log_mask_url(const char *url, unsigned flags)
{
    if (url == NULL)
        return NULL;
    const char *scheme = strstr(url, "://");
    const char *auth = scheme != NULL ? scheme + 3 : url;
    const char *at = userinfo_end(auth, flags);
    struct buf b;
    buf_init(&b, 0);
    buf_append(&b, url, (size_t)(auth - url));
    const char *host = auth;
    if (at != NULL) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if ((flags & LOG_MASK_USERINFO) != 0) {
            buf_puts(&b, "***@");
        } else if (colon != NULL) {
            buf_append(&b, auth, (size_t)(colon + 1 - auth));
            buf_puts(&b, "****@");
        } else {
            buf_append(&b, auth, (size_t)(at + 1 - auth));
        }
        host = at + 1;
    }
    const char *end = host + strcspn(host, "/?#");
    buf_append(&b, host, (size_t)(end - host));
    if ((flags & LOG_MASK_PATH) != 0) {
        if (*end != '\0')
            buf_puts(&b, "/***");
    } else if ((flags & LOG_MASK_QUERY) != 0) {
        size_t path_len = strcspn(end, "?#");
        buf_append(&b, end, path_len);
        if (end[path_len] == '?')
            buf_puts(&b, "?***");
    } else {
        buf_puts(&b, end);
    }
    return buf_steal(&b);
}
