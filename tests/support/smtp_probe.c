/* smtp-probe: sends a batch of messages through common/smtp.c and prints what happened to
 * each, as JSON lines, for the SMTP integration tests.
 *
 *   smtp-probe --host H --port N [--tls none|starttls|implicit] [--ca-file F]
 *              [--user U] [--helo NAME] [--timeout-ms N] [--connect-timeout-ms N]
 *              [--sessions N [--parallel]] [--hold-back I] [--verbose] MESSAGES.jsonl
 *
 * The password comes from the environment (RW_SMTP_PASSWORD), never from argv. Each input
 * line is {"sender": S, "recipient": R, "data_file": F} or {..., "data": "inline"}; the data
 * is sent as is. --sessions N runs the same batch N times in one process (N sessions), one after
 * the other, or all at once on N threads with --parallel. Output,
 * per session: one line per message {"session", "index", "outcome", "code", "enhanced",
 * "text", "kind"}, then {"session", "result", "error", "elapsed_ms", "hooks", "refused",
 * "throttled", "quota", "report_code", "report_text"}; "hooks" lists the smtp_hooks calls in
 * order ("before 0", "after 0", ...). --hold-back I makes before_data refuse message I.
 * Exit status: 0 when every
 * session returned ERR_OK, else the sysexits status of the first error, 64 for bad usage. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "err.h"
#include "log.h"
#include "smtp.h"

struct input {
    struct smtp_message *msgs;
    char **owned; /* every string the messages point at */
    size_t n, cap, nowned;
};

static void
usage(void)
{
    fprintf(stderr, "usage: smtp-probe --host H --port N [--tls none|starttls|implicit] "
                    "[--ca-file F] [--user U] [--helo NAME] [--timeout-ms N] "
                    "[--connect-timeout-ms N] [--sessions N [--parallel]] [--hold-back I] "
                    "[--verbose] "
                    "MESSAGES.jsonl\n"
                    "password: RW_SMTP_PASSWORD\n");
}

static char *
own(struct input *in, char *s)
{
    if (s == NULL)
        return NULL;
    char **grown = realloc(in->owned, (in->nowned + 1) * sizeof *grown);
    if (grown == NULL) {
        free(s);
        return NULL;
    }
    in->owned = grown;
    in->owned[in->nowned++] = s;
    return s;
}

static char *
dup_bytes(const char *p, size_t len)
{
    char *s = malloc(len + 1);
    if (s != NULL) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *data = NULL;
    size_t used = 0, cap = 0;
    for (;;) {
        if (used == cap) {
            cap = cap ? cap * 2 : 4096;
            char *grown = realloc(data, cap + 1);
            if (grown == NULL) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        size_t got = fread(data + used, 1, cap - used, f);
        used += got;
        if (got == 0)
            break;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(data);
        return NULL;
    }
    data[used] = '\0';
    *len = used;
    return data;
}

/* Strings from JSON may hold CR, LF or NUL on purpose: they are copied byte for byte. */
static char *
json_bytes(json_t *v, size_t *len)
{
    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return dup_bytes(json_string_value(v), *len);
}

static int
load_input(const char *path, struct input *in)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "smtp-probe: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t linecap = 0;
    int lineno = 0, rc = 0;
    while (getline(&line, &linecap, f) >= 0) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == '\0')
            continue;
        json_error_t jerr;
        json_t *obj = json_loads(line, JSON_ALLOW_NUL, &jerr);
        if (!json_is_object(obj)) {
            fprintf(stderr, "smtp-probe: %s:%d: %s\n", path, lineno,
                    obj ? "not an object" : jerr.text);
            json_decref(obj);
            rc = -1;
            break;
        }
        if (in->n == in->cap) {
            in->cap = in->cap ? in->cap * 2 : 8;
            struct smtp_message *grown = realloc(in->msgs, in->cap * sizeof *grown);
            if (grown == NULL) {
                json_decref(obj);
                rc = -1;
                break;
            }
            in->msgs = grown;
        }
        struct smtp_message *m = &in->msgs[in->n];
        memset(m, 0, sizeof *m);
        size_t len = 0;
        m->sender = own(in, json_bytes(json_object_get(obj, "sender"), &len));
        m->recipient = own(in, json_bytes(json_object_get(obj, "recipient"), &len));
        json_t *file = json_object_get(obj, "data_file");
        char *data = NULL;
        if (json_is_string(file))
            data = read_file(json_string_value(file), &len);
        else
            data = json_bytes(json_object_get(obj, "data"), &len);
        m->data = own(in, data);
        m->len = data != NULL ? len : 0;
        json_decref(obj);
        if (m->sender == NULL || m->recipient == NULL || m->data == NULL) {
            fprintf(stderr,
                    "smtp-probe: %s:%d: needs sender, recipient and data or a "
                    "readable data_file\n",
                    path, lineno);
            rc = -1;
            break;
        }
        in->n++;
    }
    free(line);
    fclose(f);
    return rc;
}

static void
free_input(struct input *in)
{
    for (size_t i = 0; i < in->nowned; i++)
        free(in->owned[i]);
    free(in->owned);
    free(in->msgs);
}

static void
print_json(json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    if (s != NULL)
        printf("%s\n", s);
    free(s);
    json_decref(obj);
    fflush(stdout);
}

static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct hook_log {
    json_t *calls;
    int hold_back; /* index before_data refuses; -1: none */
};

static bool
hook_before(void *arg, size_t i)
{
    struct hook_log *h = arg;
    char buf[32];
    snprintf(buf, sizeof buf, "before %zu", i);
    json_array_append_new(h->calls, json_string(buf));
    return h->hold_back < 0 || (size_t)h->hold_back != i;
}

static void
hook_after(void *arg, size_t i)
{
    struct hook_log *h = arg;
    char buf[32];
    snprintf(buf, sizeof buf, "after %zu", i);
    json_array_append_new(h->calls, json_string(buf));
}

/* One session of the run; with --parallel they all run at once, each on its own thread. */
struct run {
    const struct smtp_config *cfg;
    struct smtp_message *msgs; /* a copy of the batch: outcomes are written into it */
    size_t n;
    struct hook_log log;
    struct smtp_session_report report;
    struct err e;
    int rc;
    long long elapsed;
    bool started;
};

static void *
run_session(void *arg)
{
    struct run *r = arg;
    struct smtp_hooks hooks = {
        .before_data = hook_before, .after_reply = hook_after, .arg = &r->log};
    long long t0 = now_ms();
    r->rc = smtp_send_batch(r->cfg, r->msgs, r->n, &hooks, &r->report, &r->e);
    r->elapsed = now_ms() - t0;
    return NULL;
}

static bool
parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < -1000000000L || v > 1000000000L)
        return false;
    *out = (int)v;
    return true;
}

int
main(int argc, char **argv)
{
    struct smtp_config cfg = {.port = 0, .tls = SMTP_TLS_NONE};
    const char *input_path = NULL;
    int sessions = 1;
    int hold_back = -1;
    bool parallel = false;
    cfg.password = getenv("RW_SMTP_PASSWORD");

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(a, "--verbose") == 0) {
            log_set_level(LOG_LEVEL_DEBUG);
            continue;
        }
        if (strcmp(a, "--parallel") == 0) {
            parallel = true;
            continue;
        }
        if (a[0] != '-') {
            input_path = a;
            continue;
        }
        if (v == NULL) {
            usage();
            return 64;
        }
        i++;
        if (strcmp(a, "--host") == 0)
            cfg.host = v;
        else if (strcmp(a, "--port") == 0)
            ok = parse_int(v, &cfg.port);
        else if (strcmp(a, "--tls") == 0) {
            if (strcmp(v, "none") == 0)
                cfg.tls = SMTP_TLS_NONE;
            else if (strcmp(v, "starttls") == 0)
                cfg.tls = SMTP_TLS_STARTTLS;
            else if (strcmp(v, "implicit") == 0)
                cfg.tls = SMTP_TLS_IMPLICIT;
            else
                ok = false;
        } else if (strcmp(a, "--ca-file") == 0)
            cfg.ca_file = v;
        else if (strcmp(a, "--user") == 0)
            cfg.username = v;
        else if (strcmp(a, "--helo") == 0)
            cfg.helo_name = v;
        else if (strcmp(a, "--timeout-ms") == 0)
            ok = parse_int(v, &cfg.timeout_ms);
        else if (strcmp(a, "--connect-timeout-ms") == 0)
            ok = parse_int(v, &cfg.connect_timeout_ms);
        else if (strcmp(a, "--sessions") == 0)
            ok = parse_int(v, &sessions) && sessions > 0;
        else if (strcmp(a, "--hold-back") == 0)
            ok = parse_int(v, &hold_back) && hold_back >= 0;
        else
            ok = false;
        if (!ok) {
            usage();
            return 64;
        }
    }
    if (cfg.host == NULL || input_path == NULL) {
        usage();
        return 64;
    }

    struct input in = {0};
    if (load_input(input_path, &in) != 0) {
        free_input(&in);
        return 65;
    }

    struct err e;
    err_clear(&e);
    int status = 0;
    if (smtp_global_init(&cfg, &e) != ERR_OK) {
        print_json(json_pack("{s:i, s:s, s:s, s:I}", "session", 0, "result", err_str(e.code),
                             "error", e.msg, "elapsed_ms", (json_int_t)0));
        status = err_exit_status(e.code);
        goto out;
    }
    struct run *runs = calloc((size_t)sessions, sizeof *runs);
    pthread_t *threads = calloc((size_t)sessions, sizeof *threads);
    if (runs == NULL || threads == NULL) {
        free(runs);
        free(threads);
        status = 71;
        goto out;
    }
    for (int k = 0; k < sessions; k++) {
        struct run *r = &runs[k];
        r->cfg = &cfg;
        r->n = in.n;
        r->msgs = calloc(in.n > 0 ? in.n : 1, sizeof *r->msgs);
        if (r->msgs != NULL && in.n > 0)
            memcpy(r->msgs, in.msgs, in.n * sizeof *r->msgs); /* the outcomes are per session */
        r->log.calls = json_array();
        r->log.hold_back = hold_back;
        err_clear(&r->e);
        if (r->msgs == NULL) {
            r->started = false;
            continue;
        }
        r->started = !parallel || pthread_create(&threads[k], NULL, run_session, r) == 0;
        if (!parallel)
            run_session(r);
    }
    for (int k = 0; k < sessions; k++) {
        struct run *r = &runs[k];
        if (parallel && r->started)
            pthread_join(threads[k], NULL);
        if (!r->started) {
            r->rc = ERR_INTERNAL;
            snprintf(r->e.msg, sizeof r->e.msg, "could not start the session");
        }
        for (size_t i = 0; i < r->n && r->msgs != NULL; i++) {
            const struct smtp_message *m = &r->msgs[i];
            print_json(json_pack("{s:i, s:I, s:s, s:i, s:s, s:s, s:s}", "session", k + 1, "index",
                                 (json_int_t)i, "outcome", smtp_outcome_name(m->outcome), "code",
                                 m->code, "enhanced", m->enhanced, "text", m->text, "kind",
                                 smtp_reply_kind_name(m->kind)));
        }
        print_json(json_pack("{s:i, s:s, s:s, s:I, s:o, s:b, s:b, s:b, s:i, s:s}", "session", k + 1,
                             "result", err_str((enum err_code)r->rc), "error",
                             r->rc == ERR_OK ? "" : r->e.msg, "elapsed_ms", (json_int_t)r->elapsed,
                             "hooks", r->log.calls, "refused", r->report.refused, "throttled",
                             r->report.throttled, "quota", r->report.quota, "report_code",
                             r->report.code, "report_text", r->report.text));
        if (r->rc != ERR_OK && status == 0)
            status = err_exit_status((enum err_code)r->rc);
        free(r->msgs);
    }
    free(runs);
    free(threads);
out:
    smtp_global_cleanup();
    free_input(&in);
    return status;
}
