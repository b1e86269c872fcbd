/* config: defaults, then a YAML file read with libyaml's event API, then the environment,
 * all driven by one key table; every problem is collected with its file position. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

/* Far above any real configuration; a bigger file is a mistake (a log, a binary). */
#define CONFIG_FILE_MAX ((size_t)1024 * 1024)
#define SECRET_FILE_MAX ((size_t)64 * 1024)
#define PATH_KEY_MAX 128
/* Column where print puts the origin comment, so the comments line up. */
#define COMMENT_COLUMN 44

/* Per key: where the value came from, where it first appeared in the file (to spot a
 * duplicate), and whether a problem was already reported for it (to avoid cascades). */
struct slot {
    struct config_origin origin;
    int file_line, file_column;
    bool bad;
};

struct config {
    const struct config_key *table; /* borrowed */
    size_t nkeys;
    char *env_prefix;   /* owned; NULL for none */
    char *file;         /* owned; the file read, NULL when none */
    struct slot *slots; /* nkeys */
    char **problems;    /* owned strings */
    size_t nproblems, cap;
    bool oom;
};

/* ---- problems ---------------------------------------------------------------------- */

static void vadd_problem(struct config *c, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
vadd_problem(struct config *c, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        c->oom = true;
        return;
    }
    if (c->nproblems == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        char **p = realloc(c->problems, cap * sizeof *p);
        if (p == NULL) {
            c->oom = true;
            return;
        }
        c->problems = p;
        c->cap = cap;
    }
    char *s = malloc((size_t)n + 1);
    if (s == NULL) {
        c->oom = true;
        return;
    }
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    c->problems[c->nproblems++] = s;
}

static void add_problem(struct config *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
add_problem(struct config *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd_problem(c, fmt, ap);
    va_end(ap);
}

static void
free_problems(struct config *c)
{
    for (size_t i = 0; i < c->nproblems; i++)
        free(c->problems[i]);
    free(c->problems);
    c->problems = NULL;
    c->nproblems = 0;
    c->cap = 0;
}

/* Writes s[0..len) as a double-quoted string for a message: control characters escaped and
 * long values cut, so an error line stays one readable line whatever the input was. */
static void
quote(const char *s, size_t len, char *buf, size_t n)
{
    size_t o = 0;
    const size_t shown = 60;
    if (n < 8) {
        if (n > 0)
            buf[0] = '\0';
        return;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < len && i < shown && o + 6 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(buf + o, n - o, "\\x%02X", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    if (len > shown && o + 5 < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* Copies a key as typed into buf for a message, control characters replaced. */
static void
sanitize(const char *s, size_t len, char *buf, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    buf[o] = '\0';
}

/* ---- value parsers ---------------------------------------------------------------- */

static bool
is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

bool
config_parse_int(const char *s, long long *out)
{
    const char *d = (s[0] == '-' || s[0] == '+') ? s + 1 : s;
    if (!is_digit(d[0]))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

bool
config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static const struct {
    const char *name;
    long long ms;
} duration_units[] = {
    {"d", 86400000LL}, {"h", 3600000LL}, {"m", 60000LL}, {"s", 1000LL}, {"ms", 1LL},
};

bool
config_parse_duration(const char *s, long long *ms)
{
    if (!is_digit(s[0]))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0)
        return false;
    long long unit = 1000; /* a bare number is seconds */
    if (*end != '\0') {
        unit = 0;
        for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
            if (strcmp(end, duration_units[i].name) == 0)
                unit = duration_units[i].ms;
        }
        if (unit == 0)
            return false;
    }
    if (v > LLONG_MAX / unit)
        return false;
    *ms = v * unit;
    return true;
}

void
config_format_duration(long long ms, char *buf, size_t n)
{
    if (ms == 0) {
        snprintf(buf, n, "0s");
        return;
    }
    for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
        if (ms % duration_units[i].ms == 0) {
            snprintf(buf, n, "%lld%s", ms / duration_units[i].ms, duration_units[i].name);
            return;
        }
    }
}

static bool
bounded(const struct config_key *k)
{
    return k->min != 0 || k->max != 0;
}

/* What a valid value of k looks like, for "expected ..., got ..." messages. */
static void
expectation(const struct config_key *k, char *buf, size_t n)
{
    switch (k->type) {
    case CONFIG_STRING:
        snprintf(buf, n, "expected a string");
        return;
    case CONFIG_INT:
        if (bounded(k))
            snprintf(buf, n, "expected an integer between %lld and %lld", k->min, k->max);
        else
            snprintf(buf, n, "expected an integer");
        return;
    case CONFIG_BOOL:
        snprintf(buf, n, "expected true or false (or yes/no, on/off, 1/0)");
        return;
    case CONFIG_DURATION:
        if (bounded(k)) {
            char lo[32], hi[32];
            config_format_duration(k->min, lo, sizeof lo);
            config_format_duration(k->max, hi, sizeof hi);
            snprintf(buf, n, "expected a duration between %s and %s (unit ms, s, m, h or d)", lo,
                     hi);
        } else {
            snprintf(buf, n, "expected a duration (a number with unit ms, s, m, h or d)");
        }
        return;
    case CONFIG_ENUM: {
        size_t o = (size_t)snprintf(buf, n, "expected one of ");
        for (size_t i = 0; k->choices != NULL && k->choices[i] != NULL && o < n; i++)
            o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : "", k->choices[i]);
        return;
    }
    }
    snprintf(buf, n, "unexpected value");
}

union value {
    char *s;
    int i;
    bool b;
    long long d;
};

/* Parses text (is_null: a YAML null) for k into v; v->s is new. False when invalid. */
static bool
parse_value(const struct config_key *k, const char *text, bool is_null, union value *v, bool *oom)
{
    long long ll;
    switch (k->type) {
    case CONFIG_STRING:
        if (is_null) {
            v->s = NULL;
            return true;
        }
        v->s = strdup(text);
        if (v->s == NULL)
            *oom = true;
        return v->s != NULL;
    case CONFIG_INT:
        if (is_null || !config_parse_int(text, &ll) || ll < INT_MIN || ll > INT_MAX)
            return false;
        if (bounded(k) && (ll < k->min || ll > k->max))
            return false;
        v->i = (int)ll;
        return true;
    case CONFIG_BOOL:
        return !is_null && config_parse_bool(text, &v->b);
    case CONFIG_DURATION:
        if (is_null || !config_parse_duration(text, &ll))
            return false;
        if (bounded(k) && (ll < k->min || ll > k->max))
            return false;
        v->d = ll;
        return true;
    case CONFIG_ENUM:
        for (int i = 0; !is_null && k->choices != NULL && k->choices[i] != NULL; i++) {
            if (strcasecmp(text, k->choices[i]) == 0) {
                v->i = i;
                return true;
            }
        }
        return false;
    }
    return false;
}

static void
store_value(void *target, const struct config_key *k, const union value *v)
{
    char *p = (char *)target + k->offset;
    switch (k->type) {
    case CONFIG_STRING: {
        char **sp = (char **)(void *)p;
        free(*sp);
        *sp = v->s;
        return;
    }
    case CONFIG_INT:
        *(int *)(void *)p = v->i;
        return;
    case CONFIG_BOOL:
        *(bool *)(void *)p = v->b;
        return;
    case CONFIG_DURATION:
        *(long long *)(void *)p = v->d;
        return;
    case CONFIG_ENUM:
        /* The field is an enum checked to be int-sized (CONFIG_ENUM_FIELD). */
        memcpy(p, &v->i, sizeof v->i);
        return;
    }
}

/* Parses and stores one value, or records "WHERE: expected ..., got "text"". where is
 * "file:line:column: key" or "environment: NAME". */
static bool
apply(struct config *c, void *target, size_t i, const char *text, size_t len, bool is_null,
      const char *where)
{
    const struct config_key *k = &c->table[i];
    if (strlen(text) != len) {
        add_problem(c, "%s: contains a NUL character", where);
        c->slots[i].bad = true;
        return false;
    }
    union value v;
    bool oom = false;
    if (parse_value(k, text, is_null, &v, &oom)) {
        store_value(target, k, &v);
        return true;
    }
    if (oom) {
        c->oom = true;
        return false;
    }
    char want[256], got[80];
    expectation(k, want, sizeof want);
    if (k->flags & CONFIG_SECRET) {
        add_problem(c, "%s: %s", where, want);
    } else {
        quote(text, len, got, sizeof got);
        add_problem(c, "%s: %s, got %s", where, want, got);
    }
    c->slots[i].bad = true;
    return false;
}

/* ---- the table --------------------------------------------------------------------- */

static long
find_key(const struct config *c, const char *path, size_t len)
{
    for (size_t i = 0; i < c->nkeys; i++) {
        if (strlen(c->table[i].path) == len && memcmp(c->table[i].path, path, len) == 0)
            return (long)i;
    }
    return -1;
}

static size_t
section_len(const char *path)
{
    const char *dot = strchr(path, '.');
    return dot != NULL ? (size_t)(dot - path) : strlen(path);
}

/* The first row of the section named s[0..len), or -1. */
static long
find_section(const struct config *c, const char *s, size_t len)
{
    for (size_t i = 0; i < c->nkeys; i++) {
        const char *p = c->table[i].path;
        if (section_len(p) == len && memcmp(p, s, len) == 0)
            return (long)i;
    }
    return -1;
}

/* PREFIX + path upper-cased with '.' as '_'; false when there is no prefix or no room. */
static bool
derived_env(const char *prefix, const char *path, char *buf, size_t n)
{
    if (prefix == NULL)
        return false;
    int w = snprintf(buf, n, "%s%s", prefix, path);
    if (w < 0 || (size_t)w >= n)
        return false;
    for (char *p = buf + strlen(prefix); *p; p++) {
        if (*p == '.')
            *p = '_';
        else if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    }
    return true;
}

/* Edit distance, for "did you mean". Strings longer than PATH_KEY_MAX count as far apart. */
static size_t
distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t prev[PATH_KEY_MAX + 1], cur[PATH_KEY_MAX + 1];
    if (la > PATH_KEY_MAX || lb > PATH_KEY_MAX)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

/* " (did you mean smtp.host?)" for the closest key, or "" when none is close. Compares
 * whole paths, and a key whose name exists under another section counts as close. */
static void
suggest_key(const struct config *c, const char *path, char *buf, size_t n)
{
    size_t best = SIZE_MAX;
    const char *pick = NULL;
    size_t plen = strlen(path);
    const char *leaf = path + section_len(path) + (path[section_len(path)] == '.');
    for (size_t i = 0; i < c->nkeys; i++) {
        const char *p = c->table[i].path;
        size_t d = distance(path, plen, p, strlen(p));
        const char *pleaf = p + section_len(p) + 1;
        if (strcmp(leaf, pleaf) == 0 && d > 1)
            d = 2;
        if (d < best) {
            best = d;
            pick = p;
        }
    }
    if (pick != NULL && best <= 2)
        snprintf(buf, n, " (did you mean %s?)", pick);
    else if (n > 0)
        buf[0] = '\0';
}

static void
suggest_section(const struct config *c, const char *s, size_t len, char *buf, size_t n)
{
    size_t best = SIZE_MAX;
    const char *pick = NULL;
    size_t pick_len = 0;
    for (size_t i = 0; i < c->nkeys; i++) {
        const char *p = c->table[i].path;
        size_t d = distance(s, len, p, section_len(p));
        if (d < best) {
            best = d;
            pick = p;
            pick_len = section_len(p);
        }
    }
    if (pick != NULL && best <= 2)
        snprintf(buf, n, " (did you mean %.*s?)", (int)pick_len, pick);
    else if (n > 0)
        buf[0] = '\0';
}

/* ---- reading files ----------------------------------------------------------------- */

/* Reads a whole file (new, NUL-terminated; *len excludes the NUL). NULL with errno set on
 * failure; EFBIG when it is larger than max. */
static char *
slurp(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *data = NULL;
    size_t used = 0, cap = 0;
    int saved = 0;
    for (;;) {
        if (used + 4096 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 8192;
            char *p = realloc(data, ncap);
            if (p == NULL) {
                saved = ENOMEM;
                goto fail;
            }
            data = p;
            cap = ncap;
        }
        size_t got = fread(data + used, 1, cap - used - 1, f);
        used += got;
        if (used > max) {
            saved = EFBIG;
            goto fail;
        }
        if (got == 0) {
            if (ferror(f)) {
                saved = errno ? errno : EIO;
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    data[used] = '\0';
    *len = used;
    return data;
fail:
    fclose(f);
    free(data);
    errno = saved;
    return NULL;
}

struct reader {
    struct config *c;
    void *target;
    const char *file;
    const char *text; /* the whole file, for positions libyaml gives as offsets */
    size_t len;
    yaml_parser_t parser;
    bool broken;       /* a syntax error ended the parse */
    int *section_line; /* per first row of a section: line of its first mapping, 0 if none */
};

static void
syntax_problem(struct reader *r)
{
    yaml_parser_t *p = &r->parser;
    const char *problem = p->problem != NULL ? p->problem : "cannot parse";
    if (p->error == YAML_MEMORY_ERROR) {
        r->c->oom = true;
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset rather than a mark. */
        size_t line = 1, column = 1;
        for (size_t i = 0; i < p->problem_offset && i < r->len; i++) {
            if (r->text[i] == '\n') {
                line++;
                column = 1;
            } else {
                column++;
            }
        }
        add_problem(r->c, "%s:%zu:%zu: invalid text: %s", r->file, line, column, problem);
        return;
    }
    if (p->context != NULL)
        add_problem(r->c, "%s:%zu:%zu: syntax error: %s (%s at %zu:%zu)", r->file,
                    p->problem_mark.line + 1, p->problem_mark.column + 1, problem, p->context,
                    p->context_mark.line + 1, p->context_mark.column + 1);
    else
        add_problem(r->c, "%s:%zu:%zu: syntax error: %s", r->file, p->problem_mark.line + 1,
                    p->problem_mark.column + 1, problem);
}

/* The next event (the caller deletes it), or false once the parse is broken. */
static bool
next_event(struct reader *r, yaml_event_t *ev)
{
    if (r->broken)
        return false;
    if (!yaml_parser_parse(&r->parser, ev)) {
        syntax_problem(r);
        r->broken = true;
        return false;
    }
    return true;
}

/* Consumes the rest of the node that ev starts (ev itself stays the caller's). */
static bool
skip_node(struct reader *r, const yaml_event_t *ev)
{
    if (ev->type != YAML_MAPPING_START_EVENT && ev->type != YAML_SEQUENCE_START_EVENT)
        return true;
    int depth = 1;
    while (depth > 0) {
        yaml_event_t e;
        if (!next_event(r, &e))
            return false;
        if (e.type == YAML_MAPPING_START_EVENT || e.type == YAML_SEQUENCE_START_EVENT)
            depth++;
        else if (e.type == YAML_MAPPING_END_EVENT || e.type == YAML_SEQUENCE_END_EVENT)
            depth--;
        yaml_event_delete(&e);
    }
    return true;
}

/* Reads the next node only to skip it (the value of a key already rejected). */
static bool
skip_next_node(struct reader *r)
{
    yaml_event_t ev;
    if (!next_event(r, &ev))
        return false;
    bool ok = skip_node(r, &ev);
    yaml_event_delete(&ev);
    return ok;
}

static const char *
node_kind(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_SEQUENCE_START_EVENT:
        return "a sequence";
    case YAML_ALIAS_EVENT:
        return "an alias";
    case YAML_SCALAR_EVENT:
        return "a scalar";
    default:
        return "something else";
    }
}

static bool
is_null_scalar(const yaml_event_t *ev)
{
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)ev->data.scalar.value;
    return ev->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static size_t
line_of(const yaml_event_t *ev)
{
    return ev->start_mark.line + 1;
}

static size_t
column_of(const yaml_event_t *ev)
{
    return ev->start_mark.column + 1;
}

/* One "key: value" inside a section; key is the scalar event of the key. */
static bool
read_entry(struct reader *r, const char *section, size_t slen, const yaml_event_t *key)
{
    struct config *c = r->c;
    char typed[PATH_KEY_MAX * 2];
    char path[PATH_KEY_MAX * 2 + 2];
    sanitize((const char *)key->data.scalar.value, key->data.scalar.length, typed, sizeof typed);
    snprintf(path, sizeof path, "%.*s.%s", (int)slen, section, typed);
    long i = strlen(typed) == key->data.scalar.length ? find_key(c, path, strlen(path)) : -1;
    if (i < 0) {
        char hint[PATH_KEY_MAX + 32];
        suggest_key(c, path, hint, sizeof hint);
        add_problem(c, "%s:%zu:%zu: %s: unknown key%s", r->file, line_of(key), column_of(key), path,
                    hint);
        return skip_next_node(r);
    }
    struct slot *s = &c->slots[i];
    if (s->file_line != 0) {
        add_problem(c, "%s:%zu:%zu: %s: duplicate key (first at line %d)", r->file, line_of(key),
                    column_of(key), path, s->file_line);
        s->bad = true;
        return skip_next_node(r);
    }
    s->file_line = (int)line_of(key);
    s->file_column = (int)column_of(key);

    yaml_event_t v;
    if (!next_event(r, &v))
        return false;
    bool ok = true;
    char where[PATH_KEY_MAX * 4];
    snprintf(where, sizeof where, "%s:%zu:%zu: %s", r->file, line_of(&v), column_of(&v), path);
    if (v.type == YAML_SCALAR_EVENT) {
        if (apply(c, r->target, (size_t)i, (const char *)v.data.scalar.value, v.data.scalar.length,
                  is_null_scalar(&v), where)) {
            s->origin.source = CONFIG_SOURCE_FILE;
            s->origin.line = s->file_line;
            s->origin.column = s->file_column;
        }
    } else if (v.type == YAML_ALIAS_EVENT) {
        add_problem(c, "%s: aliases are not supported; write the value", where);
        s->bad = true;
    } else {
        add_problem(c, "%s: expected a single value, got %s", where, node_kind(&v));
        s->bad = true;
        ok = skip_node(r, &v);
    }
    yaml_event_delete(&v);
    return ok;
}

/* The mapping of one section, after its MAPPING_START. */
static bool
read_section(struct reader *r, const char *section, size_t slen)
{
    for (;;) {
        yaml_event_t k;
        if (!next_event(r, &k))
            return false;
        if (k.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&k);
            return true;
        }
        bool ok;
        if (k.type == YAML_SCALAR_EVENT) {
            ok = read_entry(r, section, slen, &k);
        } else {
            add_problem(r->c, "%s:%zu:%zu: %.*s: expected a key name, got %s", r->file, line_of(&k),
                        column_of(&k), (int)slen, section, node_kind(&k));
            ok = skip_node(r, &k) && skip_next_node(r);
        }
        yaml_event_delete(&k);
        if (!ok)
            return false;
    }
}

/* "section:" and its value; key is the scalar event of the section name. */
static bool
read_top_entry(struct reader *r, const yaml_event_t *key)
{
    struct config *c = r->c;
    const char *name = (const char *)key->data.scalar.value;
    size_t len = key->data.scalar.length;
    char shown[PATH_KEY_MAX];
    sanitize(name, len, shown, sizeof shown);
    long first = strlen(name) == len ? find_section(c, name, len) : -1;
    if (first < 0) {
        char hint[PATH_KEY_MAX + 32];
        suggest_section(c, name, len, hint, sizeof hint);
        add_problem(c, "%s:%zu:%zu: %s: unknown section%s", r->file, line_of(key), column_of(key),
                    shown, hint);
        return skip_next_node(r);
    }
    if (r->section_line[first] != 0) {
        add_problem(c, "%s:%zu:%zu: %s: duplicate section (first at line %d)", r->file,
                    line_of(key), column_of(key), shown, r->section_line[first]);
        return skip_next_node(r);
    }
    r->section_line[first] = (int)line_of(key);

    yaml_event_t v;
    if (!next_event(r, &v))
        return false;
    bool ok = true;
    if (v.type == YAML_MAPPING_START_EVENT) {
        ok = read_section(r, name, len);
    } else if (!is_null_scalar(&v)) { /* "section:" with nothing under it is fine */
        add_problem(c, "%s:%zu:%zu: %s: expected a mapping of keys, got %s", r->file, line_of(&v),
                    column_of(&v), shown, node_kind(&v));
        ok = skip_node(r, &v);
    }
    yaml_event_delete(&v);
    return ok;
}

/* The root node of the document, whose first event is ev. */
static bool
read_root(struct reader *r, const yaml_event_t *ev)
{
    if (is_null_scalar(ev))
        return true; /* an empty document: nothing set */
    if (ev->type != YAML_MAPPING_START_EVENT) {
        add_problem(r->c, "%s:%zu:%zu: expected a mapping of sections at the top level, got %s",
                    r->file, line_of(ev), column_of(ev), node_kind(ev));
        return skip_node(r, ev);
    }
    for (;;) {
        yaml_event_t k;
        if (!next_event(r, &k))
            return false;
        if (k.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&k);
            return true;
        }
        bool ok;
        if (k.type == YAML_SCALAR_EVENT) {
            ok = read_top_entry(r, &k);
        } else {
            add_problem(r->c, "%s:%zu:%zu: expected a section name, got %s", r->file, line_of(&k),
                        column_of(&k), node_kind(&k));
            ok = skip_node(r, &k) && skip_next_node(r);
        }
        yaml_event_delete(&k);
        if (!ok)
            return false;
    }
}

static void
read_stream(struct reader *r)
{
    int documents = 0;
    for (;;) {
        yaml_event_t ev;
        if (!next_event(r, &ev))
            return;
        yaml_event_type_t type = ev.type;
        if (type == YAML_DOCUMENT_START_EVENT && ++documents > 1)
            add_problem(r->c, "%s:%zu:%zu: expected a single YAML document", r->file, line_of(&ev),
                        column_of(&ev));
        yaml_event_delete(&ev);
        if (type == YAML_STREAM_END_EVENT)
            return;
        if (type != YAML_DOCUMENT_START_EVENT)
            continue;
        if (!next_event(r, &ev))
            return;
        bool ok = documents > 1 ? skip_node(r, &ev) : read_root(r, &ev);
        yaml_event_delete(&ev);
        if (!ok)
            return;
    }
}

static void
read_file(struct config *c, void *target, const char *path, bool optional)
{
    size_t len = 0;
    char *text = slurp(path, CONFIG_FILE_MAX, &len);
    if (text == NULL) {
        if (optional && errno == ENOENT)
            return;
        if (errno == EFBIG)
            add_problem(c, "%s: cannot read: larger than %zu bytes", path, CONFIG_FILE_MAX);
        else
            add_problem(c, "%s: cannot read: %s", path, strerror(errno));
        return;
    }
    c->file = strdup(path);
    struct reader r = {.c = c, .target = target, .file = path, .text = text, .len = len};
    r.section_line = calloc(c->nkeys ? c->nkeys : 1, sizeof *r.section_line);
    if (c->file == NULL || r.section_line == NULL || !yaml_parser_initialize(&r.parser)) {
        c->oom = true;
        free(r.section_line);
        free(text);
        return;
    }
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, len);
    read_stream(&r);
    yaml_parser_delete(&r.parser);
    free(r.section_line);
    free(text);
}

/* ---- the environment --------------------------------------------------------------- */

static void
read_env_key(struct config *c, void *target, size_t i)
{
    const struct config_key *k = &c->table[i];
    char name[CONFIG_ENV_NAME_MAX] = "";
    const char *value = NULL;
    char *owned = NULL; /* the contents of a _FILE variable's file */
    size_t len = 0;

    if (k->env != NULL) {
        const char *direct = getenv(k->env);
        char file_var[CONFIG_ENV_NAME_MAX];
        const char *file = NULL;
        if ((k->flags & CONFIG_FILE_ENV) &&
            snprintf(file_var, sizeof file_var, "%s_FILE", k->env) < (int)sizeof file_var)
            file = getenv(file_var);
        if (direct != NULL && file != NULL) {
            add_problem(c, "environment: %s: set only one of %s and %s", file_var, k->env,
                        file_var);
            c->slots[i].bad = true;
            return;
        }
        if (file != NULL) {
            owned = slurp(file, SECRET_FILE_MAX, &len);
            if (owned == NULL) {
                if (errno == ENOMEM)
                    c->oom = true;
                else if (errno == EFBIG)
                    add_problem(c, "environment: %s: cannot read %s: larger than %zu bytes",
                                file_var, file, SECRET_FILE_MAX);
                else
                    add_problem(c, "environment: %s: cannot read %s: %s", file_var, file,
                                strerror(errno));
                c->slots[i].bad = true;
                return;
            }
            while (len > 0 && (owned[len - 1] == '\n' || owned[len - 1] == '\r'))
                owned[--len] = '\0';
            value = owned;
            snprintf(name, sizeof name, "%s", file_var);
        } else if (direct != NULL) {
            value = direct;
            len = strlen(direct);
            snprintf(name, sizeof name, "%s", k->env);
        }
    }
    if (value == NULL && !(k->flags & CONFIG_SECRET) &&
        derived_env(c->env_prefix, k->path, name, sizeof name)) {
        value = getenv(name);
        len = value != NULL ? strlen(value) : 0;
    }
    if (value == NULL)
        return;

    char where[CONFIG_ENV_NAME_MAX + 16];
    snprintf(where, sizeof where, "environment: %s", name);
    /* An environment value is never a YAML null: "" is the empty string. */
    if (apply(c, target, i, value, len, false, where)) {
        struct config_origin *o = &c->slots[i].origin;
        o->source = CONFIG_SOURCE_ENV;
        o->line = o->column = 0;
        snprintf(o->env, sizeof o->env, "%s", name);
    }
    free(owned);
}

/* ---- the public side --------------------------------------------------------------- */

struct config *
config_new(const struct config_key *table, const char *env_prefix)
{
    struct config *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->table = table;
    while (table[c->nkeys].path != NULL)
        c->nkeys++;
    c->slots = calloc(c->nkeys ? c->nkeys : 1, sizeof *c->slots);
    c->env_prefix = env_prefix != NULL ? strdup(env_prefix) : NULL;
    if (c->slots == NULL || (env_prefix != NULL && c->env_prefix == NULL)) {
        config_free(c);
        return NULL;
    }
    return c;
}

void
config_free(struct config *c)
{
    if (c == NULL)
        return;
    free_problems(c);
    free(c->slots);
    free(c->env_prefix);
    free(c->file);
    free(c);
}

size_t
config_load(struct config *c, void *target, const char *path, bool optional)
{
    free_problems(c);
    free(c->file);
    c->file = NULL;
    memset(c->slots, 0, c->nkeys * sizeof *c->slots);

    for (size_t i = 0; i < c->nkeys; i++) {
        const struct config_key *k = &c->table[i];
        union value v = {0};
        bool oom = false;
        if (k->def == NULL) {
            if (k->type == CONFIG_STRING)
                store_value(target, k, &v);
            else
                add_problem(c, "%s: a %s key needs a default", k->path,
                            k->type == CONFIG_ENUM ? "enum" : "non-string");
        } else if (parse_value(k, k->def, false, &v, &oom)) {
            store_value(target, k, &v);
        } else if (oom) {
            c->oom = true;
        } else {
            add_problem(c, "%s: invalid default \"%s\"", k->path, k->def);
        }
    }
    if (path != NULL)
        read_file(c, target, path, optional);
    for (size_t i = 0; i < c->nkeys; i++)
        read_env_key(c, target, i);
    return c->nproblems;
}

void
config_problem(struct config *c, const char *key, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    /* A reason may quote a value: keep the problem on one line, as config_report promises. */
    for (char *p = reason; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    long i = find_key(c, key, strlen(key));
    if (i < 0) {
        add_problem(c, "%s: %s", key, reason);
        return;
    }
    struct slot *s = &c->slots[i];
    if (s->bad)
        return; /* one problem per key: the first one is the one to fix */
    s->bad = true;
    switch (s->origin.source) {
    case CONFIG_SOURCE_FILE:
        add_problem(c, "%s:%d:%d: %s: %s", c->file, s->origin.line, s->origin.column, key, reason);
        return;
    case CONFIG_SOURCE_ENV:
        add_problem(c, "environment: %s: %s", s->origin.env, reason);
        return;
    case CONFIG_SOURCE_DEFAULT:
        add_problem(c, "%s: %s", key, reason);
        return;
    }
}

size_t
config_problem_count(const struct config *c)
{
    return c->nproblems;
}

const char *
config_problem_at(const struct config *c, size_t i)
{
    return i < c->nproblems ? c->problems[i] : NULL;
}

int
config_report(const struct config *c, FILE *out, struct err *e)
{
    if (c->oom)
        return err_set(e, ERR_INTERNAL, "out of memory while loading the configuration");
    if (c->nproblems == 0)
        return ERR_OK;
    for (size_t i = 0; out != NULL && i < c->nproblems; i++)
        fprintf(out, "%s\n", c->problems[i]);
    if (out != NULL)
        fflush(out);
    return err_set(e, ERR_CONFIG, "%s", c->problems[0]);
}

const char *
config_file(const struct config *c)
{
    return c->file;
}

const struct config_origin *
config_origin(const struct config *c, const char *key)
{
    long i = find_key(c, key, strlen(key));
    return i < 0 ? NULL : &c->slots[i].origin;
}

void
config_origin_describe(const struct config *c, const char *key, char *buf, size_t n)
{
    const struct config_origin *o = c != NULL ? config_origin(c, key) : NULL;
    if (o == NULL || o->source == CONFIG_SOURCE_DEFAULT)
        snprintf(buf, n, "default");
    else if (o->source == CONFIG_SOURCE_FILE)
        snprintf(buf, n, "%s:%d:%d", c->file, o->line, o->column);
    else
        snprintf(buf, n, "env %s", o->env);
}

/* Writes s as a YAML double-quoted scalar; returns the characters written. */
static int
print_quoted(FILE *out, const char *s)
{
    int n = 0;
    n += fprintf(out, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            n += fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            n += fprintf(out, "\\x%02X", *p);
        else
            n += fprintf(out, "%c", *p);
    }
    n += fprintf(out, "\"");
    return n;
}

/* Writes " value" (or nothing for an unset string); returns the characters written. */
static int
print_value(FILE *out, const struct config_key *k, const void *target)
{
    const char *p = (const char *)target + k->offset;
    switch (k->type) {
    case CONFIG_STRING: {
        const char *s = *(char *const *)(const void *)p;
        if (s == NULL)
            return 0;
        if ((k->flags & CONFIG_SECRET) && s[0] != '\0')
            return fprintf(out, " \"****\"");
        if (k->mask == NULL)
            return fprintf(out, " ") + print_quoted(out, s);
        char *masked = k->mask(s);
        int n = fprintf(out, " ") + print_quoted(out, masked != NULL ? masked : "****");
        free(masked);
        return n;
    }
    case CONFIG_INT:
        return fprintf(out, " %d", *(const int *)(const void *)p);
    case CONFIG_BOOL:
        return fprintf(out, " %s", *(const bool *)(const void *)p ? "true" : "false");
    case CONFIG_DURATION: {
        char d[32];
        config_format_duration(*(const long long *)(const void *)p, d, sizeof d);
        return fprintf(out, " %s", d);
    }
    case CONFIG_ENUM: {
        int idx;
        memcpy(&idx, p, sizeof idx);
        for (int i = 0; k->choices != NULL && k->choices[i] != NULL; i++) {
            if (i == idx)
                return fprintf(out, " %s", k->choices[i]);
        }
        return fprintf(out, " %d", idx);
    }
    }
    return 0;
}

void
config_print(const struct config *c, const struct config_key *table, const void *target, FILE *out)
{
    for (size_t i = 0; table[i].path != NULL; i++) {
        size_t slen = section_len(table[i].path);
        bool printed = false;
        for (size_t j = 0; j < i && !printed; j++)
            printed = section_len(table[j].path) == slen &&
                      memcmp(table[j].path, table[i].path, slen) == 0;
        if (printed)
            continue;
        fprintf(out, "%s%.*s:\n", i > 0 ? "\n" : "", (int)slen, table[i].path);
        for (size_t j = i; table[j].path != NULL; j++) {
            const struct config_key *k = &table[j];
            if (section_len(k->path) != slen || memcmp(k->path, table[i].path, slen) != 0)
                continue;
            int n = fprintf(out, "  %s:", k->path + slen + 1);
            n += print_value(out, k, target);
            char from[CONFIG_ENV_NAME_MAX + PATH_KEY_MAX + 64];
            config_origin_describe(c, k->path, from, sizeof from);
            fprintf(out, "%*s# %s%s\n", n < COMMENT_COLUMN ? COMMENT_COLUMN - n : 1, "",
                    strcmp(from, "default") == 0 ? "" : "from ", from);
        }
    }
}

static const char *
type_name(enum config_type t)
{
    switch (t) {
    case CONFIG_STRING:
        return "string";
    case CONFIG_INT:
        return "integer";
    case CONFIG_BOOL:
        return "boolean";
    case CONFIG_DURATION:
        return "duration";
    case CONFIG_ENUM:
        return "one of";
    }
    return "value";
}

void
config_print_keys(const struct config_key *table, const char *env_prefix, FILE *out)
{
    for (const struct config_key *k = table; k->path != NULL; k++) {
        fprintf(out, "%s (%s", k->path, type_name(k->type));
        if (k->type == CONFIG_ENUM) {
            for (int i = 0; k->choices != NULL && k->choices[i] != NULL; i++)
                fprintf(out, "%s%s", i ? "|" : " ", k->choices[i]);
        } else if (k->type == CONFIG_INT && bounded(k)) {
            fprintf(out, " %lld..%lld", k->min, k->max);
        } else if (k->type == CONFIG_DURATION && bounded(k)) {
            char lo[32], hi[32];
            config_format_duration(k->min, lo, sizeof lo);
            config_format_duration(k->max, hi, sizeof hi);
            fprintf(out, " %s..%s", lo, hi);
        }
        if (k->def != NULL)
            fprintf(out, ", default %s", k->def);
        char derived[CONFIG_ENV_NAME_MAX];
        const char *sep = "; env ";
        if (k->env != NULL) {
            fprintf(out, "%s%s", sep, k->env);
            sep = ", ";
            if (k->flags & CONFIG_FILE_ENV) {
                fprintf(out, "%s%s_FILE", sep, k->env);
            }
        }
        if (!(k->flags & CONFIG_SECRET) &&
            derived_env(env_prefix, k->path, derived, sizeof derived))
            fprintf(out, "%s%s", sep, derived);
        fprintf(out, ")\n    %s\n", k->help != NULL ? k->help : "");
    }
}

void
config_free_values(const struct config_key *table, void *target)
{
    if (table == NULL || target == NULL)
        return;
    for (const struct config_key *k = table; k->path != NULL; k++) {
        if (k->type != CONFIG_STRING)
            continue;
        char **sp = (char **)(void *)((char *)target + k->offset);
        free(*sp);
        *sp = NULL;
    }
}
