/* metrics: Prometheus text exposition format 0.0.4, Pushgateway pushes (its README, "URL"),
 * heartbeat pings in the healthchecks.io style (/start, success, /fail). */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc.h"
#include "http.h"

void
metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof *m);
    buf_init(&m->out, 0);
}

static bool
metrics_fail(struct metrics *m, const char *fmt, ...)
{
    if (!m->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->error, sizeof m->error, fmt, ap);
        va_end(ap);
        m->failed = true;
    }
    buf_free(&m->out);
    return false;
}

static bool
is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool
metrics_name_valid(const char *s)
{
    if (s == NULL || *s == '\0' || !(is_alpha_(*s) || *s == ':'))
        return false;
    for (const char *p = s + 1; *p != '\0'; p++) {
        if (!(is_alpha_(*p) || is_digit(*p) || *p == ':'))
            return false;
    }
    return true;
}

bool
metrics_label_name_valid(const char *s)
{
    if (s == NULL || *s == '\0' || !is_alpha_(*s) || strncmp(s, "__", 2) == 0)
        return false;
    for (const char *p = s + 1; *p != '\0'; p++) {
        if (!(is_alpha_(*p) || is_digit(*p)))
            return false;
    }
    return true;
}

static const char *
type_name(enum metrics_type t)
{
    switch (t) {
    case METRICS_GAUGE:
        return "gauge";
    case METRICS_COUNTER:
        return "counter";
    case METRICS_UNTYPED:
        return "untyped";
    }
    return "untyped";
}

/* HELP text escapes backslash and newline; label values also escape the double quote. */
static void
put_escaped(struct buf *b, const char *s, bool quote)
{
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '\\')
            buf_puts(b, "\\\\");
        else if (*p == '\n')
            buf_puts(b, "\\n");
        else if (quote && *p == '"')
            buf_puts(b, "\\\"");
        else
            buf_putc(b, *p);
    }
}

/* The shortest of %.15g..%.17g that reads back as v, so 0.1 prints as 0.1 and 3 as 3. */
static void
format_value(double v, char *out, size_t outsz)
{
    if (isnan(v)) {
        snprintf(out, outsz, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, outsz, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outsz, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static bool
start_family(struct metrics *m, const struct metrics_family *f)
{
    if (m->nfamilies > 0 && m->families[m->nfamilies - 1] == f)
        return true;
    for (size_t i = 0; i < m->nfamilies; i++) {
        if (strcmp(m->families[i]->name, f->name) == 0)
            return metrics_fail(m, "%s: samples of a family must be added together", f->name);
    }
    if (m->nfamilies == METRICS_FAMILIES_MAX)
        return metrics_fail(m, "more than %d families", METRICS_FAMILIES_MAX);
    if (!metrics_name_valid(f->name))
        return metrics_fail(m, "invalid metric name '%.60s'", f->name);
    m->families[m->nfamilies++] = f;
    if (f->help != NULL) {
        buf_printf(&m->out, "# HELP %s ", f->name);
        put_escaped(&m->out, f->help, false);
        buf_putc(&m->out, '\n');
    }
    buf_printf(&m->out, "# TYPE %s %s\n", f->name, type_name(f->type));
    return true;
}

bool
metrics_add(struct metrics *m, const struct metrics_family *f, const struct metrics_label *labels,
            size_t nlabels, double value)
{
    if (m->failed)
        return false;
    if (f == NULL || f->name == NULL)
        return metrics_fail(m, "sample without a family");
    for (size_t i = 0; i < nlabels; i++) {
        if (!metrics_label_name_valid(labels[i].name) || labels[i].value == NULL)
            return metrics_fail(m, "%s: invalid label '%.60s'", f->name,
                                labels[i].name != NULL ? labels[i].name : "(null)");
        for (size_t j = 0; j < i; j++) {
            if (strcmp(labels[i].name, labels[j].name) == 0)
                return metrics_fail(m, "%s: label '%s' given twice", f->name, labels[i].name);
        }
    }
    if (!start_family(m, f))
        return false;
    buf_puts(&m->out, f->name);
    if (nlabels > 0) {
        buf_putc(&m->out, '{');
        for (size_t i = 0; i < nlabels; i++) {
            buf_printf(&m->out, "%s%s=\"", i > 0 ? "," : "", labels[i].name);
            put_escaped(&m->out, labels[i].value, true);
            buf_putc(&m->out, '"');
        }
        buf_putc(&m->out, '}');
    }
    char v[64];
    format_value(value, v, sizeof v);
    buf_printf(&m->out, " %s\n", v);
    if (m->out.failed)
        return metrics_fail(m, "out of memory");
    return true;
}

const char *
metrics_text(const struct metrics *m)
{
    return m->failed ? NULL : buf_str(&m->out);
}

const char *
metrics_error(const struct metrics *m)
{
    return m->error;
}

void
metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    buf_free(&m->out);
    m->nfamilies = 0;
}

/* "/<name>/<value>" or "/<name>@base64/<value>". A '/' cannot be percent-encoded past the
 * Pushgateway's router, an empty segment would vanish when the path is cleaned, and "." or
 * ".." would be resolved away by curl or the server: those go in base64url without padding
 * (the Pushgateway accepts either). */
static void
put_segment(struct buf *b, const char *name, const char *value)
{
    bool b64 = value[0] == '\0' || strchr(value, '/') != NULL || strcmp(value, ".") == 0 ||
               strcmp(value, "..") == 0;
    buf_printf(b, "/%s%s/", name, b64 ? "@base64" : "");
    if (b64) {
        if (value[0] == '\0')
            buf_putc(b, '='); /* the Pushgateway's spelling of an empty value */
        else
            enc_base64_put(b, value, strlen(value), ENC_BASE64_URL);
        return;
    }
    enc_percent_put(b, value);
}

char *
metrics_push_url(const char *base, const char *job, const struct metrics_label *grouping,
                 size_t ngrouping, struct err *e)
{
    if (base == NULL || base[0] == '\0') {
        err_set(e, ERR_CONFIG, "metrics push: no Pushgateway URL");
        return NULL;
    }
    if (strpbrk(base, "?#") != NULL) {
        err_set(e, ERR_CONFIG, "metrics push: the Pushgateway URL must not have a query");
        return NULL;
    }
    if (job == NULL || job[0] == '\0') {
        err_set(e, ERR_CONFIG, "metrics push: the job name is empty");
        return NULL;
    }
    for (size_t i = 0; i < ngrouping; i++) {
        if (!metrics_label_name_valid(grouping[i].name) || strcmp(grouping[i].name, "job") == 0 ||
            grouping[i].value == NULL) {
            err_set(e, ERR_CONFIG, "metrics push: invalid grouping label '%.60s'",
                    grouping[i].name != NULL ? grouping[i].name : "(null)");
            return NULL;
        }
    }
    size_t base_len = strlen(base);
    while (base_len > 0 && base[base_len - 1] == '/')
        base_len--;
    struct buf b;
    buf_init(&b, 0);
    buf_append(&b, base, base_len);
    buf_puts(&b, "/metrics");
    put_segment(&b, "job", job);
    for (size_t i = 0; i < ngrouping; i++)
        put_segment(&b, grouping[i].name, grouping[i].value);
    char *url = buf_steal(&b);
    if (url == NULL)
        err_set(e, ERR_INTERNAL, "metrics push: out of memory");
    return url;
}

int
metrics_push(const char *base, const char *job, const struct metrics_label *grouping,
             size_t ngrouping, const char *text, enum metrics_push_method method, long timeout_ms,
             struct err *e)
{
    if (text == NULL)
        return err_set(e, ERR_INTERNAL, "metrics push: no metrics text");
    char *url = metrics_push_url(base, job, grouping, ngrouping, e);
    if (url == NULL)
        return e != NULL ? (int)e->code : ERR_CONFIG;
    struct http_request req = {
        .method = method == METRICS_PUT ? HTTP_PUT : HTTP_POST,
        .url = url,
        .body = text,
        .body_len = strlen(text),
        .content_type = METRICS_CONTENT_TYPE,
        .timeout_ms = timeout_ms,
        .max_response = 1024,
    };
    int rc = http_request(&req, NULL, e);
    free(url);
    if (rc != ERR_OK)
        err_prefix(e, "metrics push");
    return rc;
}

const char *
metrics_heartbeat_phase_name(enum metrics_heartbeat_phase phase)
{
    switch (phase) {
    case METRICS_HEARTBEAT_START:
        return "start";
    case METRICS_HEARTBEAT_SUCCESS:
        return "success";
    case METRICS_HEARTBEAT_FAIL:
        return "fail";
    }
    return "?";
}

char *
metrics_heartbeat_url(const char *url, enum metrics_heartbeat_phase phase)
{
    if (url == NULL)
        return NULL;
    const char *suffix = phase == METRICS_HEARTBEAT_START  ? "/start"
                         : phase == METRICS_HEARTBEAT_FAIL ? "/fail"
                                                           : "";
    const char *scheme = strstr(url, "://");
    const char *path = scheme != NULL ? scheme + 3 : url;
    size_t path_end = strcspn(url, "?#");
    size_t query_end = strcspn(url, "#");
    size_t keep = path_end;
    /* Trailing slashes of the path go, but never into the "scheme://" separator. */
    while (keep > (size_t)(path - url) && url[keep - 1] == '/')
        keep--;
    struct buf b;
    buf_init(&b, 0);
    buf_append(&b, url, keep);
    buf_puts(&b, suffix);
    buf_append(&b, url + path_end, query_end - path_end);
    return buf_steal(&b);
}

int
metrics_heartbeat(const char *url, enum metrics_heartbeat_phase phase, const char *body,
                  long timeout_ms, struct err *e)
{
    const char *name = metrics_heartbeat_phase_name(phase);
    char *ping = metrics_heartbeat_url(url, phase);
    if (ping == NULL)
        return err_set(e, url == NULL ? ERR_CONFIG : ERR_INTERNAL, "heartbeat %s: %s", name,
                       url == NULL ? "no URL" : "out of memory");
    struct http_request req = {
        .method = body != NULL ? HTTP_POST : HTTP_GET,
        .url = ping,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .content_type = "text/plain; charset=utf-8",
        .timeout_ms = timeout_ms,
        .max_response = 256,
        .hide_path = true,
    };
    int rc = http_request(&req, NULL, e);
    free(ping);
    if (rc != ERR_OK)
        err_prefix(e, "heartbeat %s", name);
    return rc;
}
