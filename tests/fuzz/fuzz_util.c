/* Shared by the libFuzzer targets (see fuzz_util.h). The checks here are written
 * from the RFCs and mime.h, not from mime.c, so that they can disagree with it. */
#include "fuzz_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "mime.h"

void
fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("invariant broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* ---- fields ----------------------------------------------------------------------------- */

void
fuzz_fields_split(struct fuzz_fields *ff, const uint8_t *data, size_t size)
{
    memset(ff, 0, sizeof *ff);
    ff->copy = malloc(size + 1);
    if (ff->copy == NULL)
        abort();
    if (size > 0)
        memcpy(ff->copy, data, size);
    ff->copy[size] = '\0';
    if (size == 0)
        return;
    size_t start = 0;
    while (ff->n < FUZZ_FIELDS_MAX) {
        size_t n = strlen(ff->copy + start);
        ff->f[ff->n] = ff->copy + start;
        ff->len[ff->n] = n;
        ff->n++;
        if (start + n >= size)
            break;
        start += n + 1;
    }
}

void
fuzz_fields_free(struct fuzz_fields *ff)
{
    free(ff->copy);
    ff->copy = NULL;
}

const char *
fuzz_field(const struct fuzz_fields *ff, size_t i, const char *def)
{
    return i < ff->n ? ff->f[i] : def;
}

uint8_t
fuzz_byte(const struct fuzz_fields *ff, size_t field, size_t i, uint8_t def)
{
    if (field >= ff->n || i >= ff->len[field])
        return def;
    return (uint8_t)ff->f[field][i];
}

/* ---- UTF-8 and controls ----------------------------------------------------------------- */

bool
fuzz_has_line_controls(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F)
            return true;
        /* C1 is U+0080..U+009F: C2 80..C2 9F; U+2028/2029 are E2 80 A8/A9. */
        if (p[i] == 0xC2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F)
            return true;
        if (p[i] == 0xE2 && i + 2 < len && p[i + 1] == 0x80 &&
            (p[i + 2] == 0xA8 || p[i + 2] == 0xA9))
            return true;
    }
    return false;
}

/* ---- lines ------------------------------------------------------------------------------ */

struct line {
    const char *s;
    size_t n; /* without the CRLF */
};

struct lines {
    struct line *v;
    size_t n, cap;
};

static void
lines_push(struct lines *ls, const char *s, size_t n)
{
    if (ls->n == ls->cap) {
        ls->cap = ls->cap ? ls->cap * 2 : 64;
        ls->v = realloc(ls->v, ls->cap * sizeof *ls->v);
        if (ls->v == NULL)
            abort();
    }
    ls->v[ls->n++] = (struct line){s, n};
}

/* Splits text that must end with CRLF and hold no bare CR or LF into its lines. */
static void
split_crlf_lines(const char *s, size_t len, struct lines *ls, const char *what)
{
    memset(ls, 0, sizeof *ls);
    FUZZ_REQUIRE(len >= 2 && s[len - 2] == '\r' && s[len - 1] == '\n', "%s does not end with CRLF",
                 what);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0')
            fuzz_fail("%s holds a NUL at offset %zu", what, i);
        if (s[i] == '\r') {
            FUZZ_REQUIRE(i + 1 < len && s[i + 1] == '\n', "%s: bare CR at offset %zu", what, i);
        } else if (s[i] == '\n') {
            FUZZ_REQUIRE(i > 0 && s[i - 1] == '\r', "%s: bare LF at offset %zu", what, i);
            lines_push(ls, s + start, i - 1 - start);
            start = i + 1;
        }
    }
}

static bool
starts_with(const struct line *l, const char *prefix)
{
    size_t n = strlen(prefix);
    return l->n >= n && memcmp(l->s, prefix, n) == 0;
}

static bool
line_is(const struct line *l, const char *s)
{
    return l->n == strlen(s) && memcmp(l->s, s, l->n) == 0;
}

/* ---- header fields ---------------------------------------------------------------------- */

/* Checks the lines of one header field and returns it unfolded (CRLF before whitespace
 * dropped, the final CRLF dropped) in out. */
static void
unfold_field(const char *field, size_t len, const char *name, size_t width, struct buf *out)
{
    struct lines ls;
    split_crlf_lines(field, len, &ls, name);
    FUZZ_REQUIRE(ls.n >= 1, "%s: empty field", name);
    size_t nlen = strlen(name);
    FUZZ_REQUIRE(ls.v[0].n > nlen && strncasecmp(ls.v[0].s, name, nlen) == 0 &&
                     ls.v[0].s[nlen] == ':',
                 "%s: field does not start with its name: %.*s", name, (int)ls.v[0].n, ls.v[0].s);
    for (size_t i = 0; i < ls.n; i++) {
        const struct line *l = &ls.v[i];
        FUZZ_REQUIRE(l->n <= width, "%s: line %zu has %zu octets (max %zu)", name, i, l->n, width);
        for (size_t j = 0; j < l->n; j++) {
            unsigned char c = (unsigned char)l->s[j];
            FUZZ_REQUIRE((c >= 0x20 && c <= 0x7E) || c == '\t', "%s: octet 0x%02X in a header",
                         name, c);
        }
        if (i > 0) {
            FUZZ_REQUIRE(l->n > 0 && (l->s[0] == ' ' || l->s[0] == '\t'),
                         "%s: line %zu is not a continuation: %.*s", name, i, (int)l->n, l->s);
            bool blank = true;
            for (size_t j = 0; j < l->n; j++)
                blank = blank && (l->s[j] == ' ' || l->s[j] == '\t');
            FUZZ_REQUIRE(!blank, "%s: whitespace-only continuation line", name);
        }
        buf_append(out, l->s, l->n);
    }
    free(ls.v);
    FUZZ_REQUIRE(!out->failed, "%s: out of memory", name);
}

static int
b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes one RFC 2047 "=?UTF-8?B?...?=" word into out; the word must hold whole UTF-8
 * characters. */
static void
decode_encoded_word(const char *w, size_t n, const char *name, struct buf *out)
{
    static const char prefix[] = "=?UTF-8?B?";
    size_t pn = sizeof prefix - 1;
    FUZZ_REQUIRE(n <= 75, "%s: encoded word of %zu characters", name, n);
    FUZZ_REQUIRE(n > pn + 2 && memcmp(w, prefix, pn) == 0 && memcmp(w + n - 2, "?=", 2) == 0,
                 "%s: not an encoded word: %.*s", name, (int)n, w);
    const char *b = w + pn;
    size_t bn = n - pn - 2;
    FUZZ_REQUIRE(bn % 4 == 0 && bn > 0, "%s: base64 length %zu", name, bn);
    unsigned char raw[64];
    size_t o = 0;
    for (size_t i = 0; i < bn; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)b[i + k];
            if (c == '=' && i + 4 == bn && k >= 2) {
                v[k] = 0;
                pad++;
            } else {
                FUZZ_REQUIRE(pad == 0, "%s: base64 padding in the middle", name);
                v[k] = b64_value(c);
                FUZZ_REQUIRE(v[k] >= 0, "%s: bad base64 character 0x%02X", name, c);
            }
        }
        unsigned long x = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) |
                          ((unsigned long)v[2] << 6) | (unsigned long)v[3];
        raw[o++] = (unsigned char)(x >> 16);
        if (pad < 2)
            raw[o++] = (unsigned char)(x >> 8);
        if (pad < 1)
            raw[o++] = (unsigned char)x;
        FUZZ_REQUIRE(o <= sizeof raw - 3 || i + 4 >= bn, "%s: encoded word too long", name);
    }
    FUZZ_REQUIRE(mime_utf8_valid((const char *)raw, o),
                 "%s: an encoded word splits a UTF-8 character", name);
    buf_append(out, raw, o);
}

/* Whether s[0..n) holds "=?", which opens an encoded word. */
static bool
has_ew_start(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '=' && s[i + 1] == '?')
            return true;
    return false;
}

/* Decodes a run of space-separated tokens that are either all encoded words or all plain
 * text into out. */
static void
decode_words(const char *v, size_t n, const char *name, struct buf *out)
{
    if (n == 0)
        return;
    FUZZ_REQUIRE(v[0] != ' ' && v[n - 1] != ' ', "%s: stray space in the value", name);
    bool encoded = has_ew_start(v, n);
    size_t i = 0;
    bool first = true;
    while (i < n) {
        const char *sp = memchr(v + i, ' ', n - i);
        size_t end = sp != NULL ? (size_t)(sp - v) : n;
        FUZZ_REQUIRE(end > i, "%s: two spaces in a row", name);
        if (encoded) {
            decode_encoded_word(v + i, end - i, name, out);
        } else {
            if (!first)
                buf_putc(out, ' ');
            buf_append(out, v + i, end - i);
        }
        first = false;
        i = end + 1;
    }
}

void
fuzz_check_text_header(const char *field, size_t len, const char *name, struct buf *out)
{
    struct buf u;
    buf_init(&u, 0);
    /* mime_header_text folds at 78 columns, and every piece fits: a plain word too long
     * for a line makes the value encoded, and encoded words are sized to fit. */
    unfold_field(field, len, name, 78, &u);
    const char *v = buf_str(&u) + strlen(name) + 1;
    size_t n = u.len - strlen(name) - 1;
    if (n > 0) {
        FUZZ_REQUIRE(v[0] == ' ', "%s: no space after the colon", name);
        decode_words(v + 1, n - 1, name, out);
        FUZZ_REQUIRE(n > 1, "%s: value is a lone space", name);
    }
    buf_free(&u);
}

static bool
is_atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

void
fuzz_check_address_header(const char *field, size_t len, const char *name, const char *addr,
                          struct buf *display)
{
    struct buf u;
    buf_init(&u, 0);
    unfold_field(field, len, name, 998, &u);
    const char *v = buf_str(&u) + strlen(name) + 1;
    size_t n = u.len - strlen(name) - 1;
    FUZZ_REQUIRE(n > 1 && v[0] == ' ', "%s: empty value", name);
    v++;
    n--;
    /* The address: the whole value, or the angle-addr that ends it. */
    const char *a = v;
    size_t an = n;
    const char *phrase = NULL;
    size_t pn = 0;
    if (v[n - 1] == '>') {
        const char *lt = NULL;
        for (size_t i = n; i-- > 0;) {
            if (v[i] == '<') {
                lt = v + i;
                break;
            }
        }
        FUZZ_REQUIRE(lt != NULL && lt > v + 1 && lt[-1] == ' ', "%s: bad angle-addr", name);
        a = lt + 1;
        an = (size_t)(v + n - 1 - a);
        phrase = v;
        pn = (size_t)(lt - 1 - v);
    }
    char abuf[300];
    FUZZ_REQUIRE(an < sizeof abuf, "%s: address of %zu octets", name, an);
    memcpy(abuf, a, an);
    abuf[an] = '\0';
    FUZZ_REQUIRE(addr_valid(abuf, 0), "%s: address not valid: %s", name, abuf);
    if (addr != NULL)
        FUZZ_REQUIRE(strcmp(abuf, addr) == 0, "%s: address %s, wanted %s", name, abuf, addr);
    if (phrase == NULL) {
        buf_free(&u);
        return;
    }
    FUZZ_REQUIRE(pn > 0, "%s: empty display name", name);
    if (phrase[0] == '"') {
        /* One quoted-string: the whole phrase. */
        FUZZ_REQUIRE(pn >= 2 && phrase[pn - 1] == '"', "%s: unterminated quoted-string", name);
        for (size_t i = 1; i + 1 < pn; i++) {
            if (phrase[i] == '\\') {
                FUZZ_REQUIRE(i + 2 < pn, "%s: quoted-string ends in a backslash", name);
                i++;
            } else {
                FUZZ_REQUIRE(phrase[i] != '"', "%s: unescaped quote in a quoted-string", name);
            }
            buf_putc(display, phrase[i]);
        }
    } else if (has_ew_start(phrase, pn)) {
        decode_words(phrase, pn, name, display);
    } else {
        for (size_t i = 0; i < pn; i++)
            FUZZ_REQUIRE(phrase[i] == ' ' || is_atext((unsigned char)phrase[i]),
                         "%s: special 0x%02X in an unquoted display name", name,
                         (unsigned char)phrase[i]);
        decode_words(phrase, pn, name, display);
    }
    buf_free(&u);
}

/* ---- quoted-printable ------------------------------------------------------------------- */

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Checks and decodes qp lines; the text between them is CRLF. */
static void
qp_decode_lines(const struct line *v, size_t n, struct buf *out)
{
    for (size_t li = 0; li < n; li++) {
        const struct line *l = &v[li];
        FUZZ_REQUIRE(l->n <= 76, "quoted-printable line of %zu octets", l->n);
        if (l->n > 0) {
            FUZZ_REQUIRE(l->s[0] != '.', "quoted-printable line starts with '.'");
            FUZZ_REQUIRE(!starts_with(l, "From "), "quoted-printable line starts with \"From \"");
            char last = l->s[l->n - 1];
            FUZZ_REQUIRE(last != ' ' && last != '\t', "trailing whitespace in quoted-printable");
        }
        bool soft = false;
        for (size_t i = 0; i < l->n; i++) {
            unsigned char c = (unsigned char)l->s[i];
            FUZZ_REQUIRE((c >= 0x20 && c <= 0x7E) || c == '\t', "octet 0x%02X in quoted-printable",
                         c);
            if (c != '=') {
                buf_putc(out, (char)c);
                continue;
            }
            if (i + 1 == l->n) {
                soft = true;
                break;
            }
            FUZZ_REQUIRE(i + 2 < l->n && hex_value(l->s[i + 1]) >= 0 && hex_value(l->s[i + 2]) >= 0,
                         "'=' not followed by two upper-case hex digits");
            buf_putc(out, (char)(hex_value(l->s[i + 1]) * 16 + hex_value(l->s[i + 2])));
            i += 2;
        }
        if (soft)
            FUZZ_REQUIRE(li + 1 < n, "soft line break on the last line");
        else if (li + 1 < n)
            buf_puts(out, "\r\n");
    }
}

void
fuzz_qp_decode(const char *qp, size_t len, struct buf *out)
{
    /* Add the CRLF the encoder leaves off, so the split can insist on CRLF everywhere. */
    struct buf t;
    buf_init(&t, 0);
    buf_append(&t, qp, len);
    buf_puts(&t, "\r\n");
    FUZZ_REQUIRE(!t.failed, "out of memory");
    struct lines ls;
    split_crlf_lines(t.data, t.len, &ls, "quoted-printable text");
    qp_decode_lines(ls.v, ls.n, out);
    free(ls.v);
    buf_free(&t);
}

/* ---- whole messages --------------------------------------------------------------------- */

static const char *const HEADER_NAMES[] = {
    "Date",
    "From",
    "To",
    "Subject",
    "Message-ID",
    "MIME-Version",
    "Auto-Submitted",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Content-Type",
    "Content-Transfer-Encoding",
};
#define NHEADERS (sizeof HEADER_NAMES / sizeof HEADER_NAMES[0])
static const bool HEADER_REQUIRED[NHEADERS] = {true, true,  true,  true, true, true,
                                               true, false, false, true, false};

struct field {
    const char *s; /* from the name to the CRLF ending its last line, included */
    size_t len;
};

/* Reads the header block lines[from, ...) up to its empty line, which must exist; checks
 * every name against names[0..count) (each at most once) and returns the index of the line
 * after the empty one. */
static size_t
read_headers(const struct lines *ls, size_t from, const char *const *names, size_t count,
             struct field *fields, const char *what)
{
    size_t i = from;
    int cur = -1;
    for (; i < ls->n; i++) {
        const struct line *l = &ls->v[i];
        if (l->n == 0)
            break;
        for (size_t j = 0; j < l->n; j++) {
            unsigned char c = (unsigned char)l->s[j];
            FUZZ_REQUIRE((c >= 0x20 && c <= 0x7E) || c == '\t', "%s: octet 0x%02X", what, c);
        }
        if (l->s[0] == ' ' || l->s[0] == '\t') {
            FUZZ_REQUIRE(cur >= 0, "%s: continuation line before any field", what);
            fields[cur].len = (size_t)(l->s + l->n + 2 - fields[cur].s);
            continue;
        }
        const char *colon = memchr(l->s, ':', l->n);
        FUZZ_REQUIRE(colon != NULL, "%s: line is neither a field nor a continuation: %.*s", what,
                     (int)l->n, l->s);
        size_t nlen = (size_t)(colon - l->s);
        cur = -1;
        for (size_t k = 0; k < count; k++) {
            if (strlen(names[k]) == nlen && strncasecmp(names[k], l->s, nlen) == 0)
                cur = (int)k;
        }
        FUZZ_REQUIRE(cur >= 0, "%s: a header we never write: %.*s", what, (int)l->n, l->s);
        FUZZ_REQUIRE(fields[cur].s == NULL, "%s: %s twice", what, names[cur]);
        FUZZ_REQUIRE(strncmp(l->s, names[cur], nlen) == 0, "%s: %.*s spelt differently", what,
                     (int)nlen, l->s);
        fields[cur].s = l->s;
        fields[cur].len = l->n + 2;
    }
    FUZZ_REQUIRE(i < ls->n, "%s: no empty line ends the header section", what);
    return i + 1;
}

/* The unfolded value of a field (after "Name:"), in out. */
static void
field_value(const struct field *f, struct buf *out)
{
    for (size_t i = 0; i < f->len; i++) {
        if (f->s[i] == '\r' || f->s[i] == '\n')
            continue;
        buf_putc(out, f->s[i]);
    }
    const char *colon = strchr(buf_str(out), ':');
    size_t skip = colon != NULL ? (size_t)(colon - buf_str(out)) + 1 : 0;
    memmove(out->data, out->data + skip, out->len - skip + 1);
    out->len -= skip;
}

static void
check_part_headers(const struct lines *ls, size_t *i, const char *type, const char *what)
{
    static const char *const names[] = {"Content-Type", "Content-Transfer-Encoding"};
    struct field f[2] = {{0}};
    *i = read_headers(ls, *i, names, 2, f, what);
    FUZZ_REQUIRE(f[0].s != NULL && f[1].s != NULL, "%s: part headers missing", what);
    struct buf v;
    buf_init(&v, 0);
    field_value(&f[0], &v);
    char want[64];
    snprintf(want, sizeof want, " %s; charset=UTF-8", type);
    FUZZ_REQUIRE(strcmp(buf_str(&v), want) == 0, "%s: Content-Type%s", what, buf_str(&v));
    buf_reset(&v);
    field_value(&f[1], &v);
    FUZZ_REQUIRE(strcmp(buf_str(&v), " quoted-printable") == 0, "%s: Content-Transfer-Encoding%s",
                 what, buf_str(&v));
    buf_free(&v);
}

void
fuzz_check_message(const char *msg, size_t len, struct buf parts[2])
{
    FUZZ_REQUIRE(strlen(msg) == len, "message holds a NUL");
    struct lines ls;
    split_crlf_lines(msg, len, &ls, "message");
    for (size_t i = 0; i < ls.n; i++)
        FUZZ_REQUIRE(ls.v[i].n <= 998, "line %zu has %zu octets", i, ls.v[i].n);

    struct field fields[NHEADERS] = {{0}};
    size_t body = read_headers(&ls, 0, HEADER_NAMES, NHEADERS, fields, "header section");
    for (size_t k = 0; k < NHEADERS; k++)
        FUZZ_REQUIRE(!HEADER_REQUIRED[k] || fields[k].s != NULL, "no %s header", HEADER_NAMES[k]);

    /* What a reader sees in the fields that carry data. */
    struct buf d;
    buf_init(&d, 0);
    fuzz_check_text_header(fields[3].s, fields[3].len, "Subject", &d);
    FUZZ_REQUIRE(mime_utf8_valid(d.data ? d.data : "", d.len) &&
                     !fuzz_has_line_controls(buf_str(&d), d.len),
                 "Subject decodes to invalid UTF-8 or controls");
    for (size_t k = 1; k <= 2; k++) {
        buf_reset(&d);
        fuzz_check_address_header(fields[k].s, fields[k].len, HEADER_NAMES[k], NULL, &d);
        FUZZ_REQUIRE(mime_utf8_valid(d.data ? d.data : "", d.len) &&
                         !fuzz_has_line_controls(buf_str(&d), d.len),
                     "%s decodes to invalid UTF-8 or controls", HEADER_NAMES[k]);
    }
    buf_reset(&d);
    field_value(&fields[4], &d);
    FUZZ_REQUIRE(d.len > 3 && d.data[0] == ' ' && d.data[1] == '<' && d.data[d.len - 1] == '>',
                 "Message-ID%s", buf_str(&d));
    d.data[d.len - 1] = '\0';
    FUZZ_REQUIRE(mime_message_id_valid(d.data + 2), "Message-ID%s", d.data);

    buf_reset(&d);
    field_value(&fields[9], &d);
    struct buf scratch[2];
    buf_init(&scratch[0], 0);
    buf_init(&scratch[1], 0);
    if (parts == NULL)
        parts = scratch;
    if (strncmp(buf_str(&d), " multipart/alternative;", 23) == 0) {
        FUZZ_REQUIRE(fields[10].s == NULL, "Content-Transfer-Encoding on a multipart");
        const char *b = strstr(buf_str(&d), "boundary=\"");
        FUZZ_REQUIRE(b != NULL, "multipart without a boundary");
        b += 10;
        const char *q = strchr(b, '"');
        FUZZ_REQUIRE(q != NULL && q > b && q[1] == '\0', "bad boundary parameter");
        char delim[96], close[96];
        FUZZ_REQUIRE((size_t)(q - b) < 70, "boundary too long");
        snprintf(delim, sizeof delim, "--%.*s", (int)(q - b), b);
        snprintf(close, sizeof close, "--%.*s--", (int)(q - b), b);
        /* The boundary may appear only as the three delimiter lines. */
        size_t at[3], nat = 0;
        for (size_t i = body; i < ls.n; i++) {
            if (starts_with(&ls.v[i], delim)) {
                FUZZ_REQUIRE(nat < 3, "boundary occurs more than three times");
                at[nat++] = i;
            }
        }
        FUZZ_REQUIRE(nat == 3 && at[0] == body && line_is(&ls.v[at[0]], delim) &&
                         line_is(&ls.v[at[1]], delim) && line_is(&ls.v[at[2]], close) &&
                         at[2] == ls.n - 1,
                     "multipart structure broken");
        size_t i = at[0] + 1;
        check_part_headers(&ls, &i, "text/plain", "text part");
        FUZZ_REQUIRE(i <= at[1], "text part runs into the delimiter");
        qp_decode_lines(ls.v + i, at[1] - i, &parts[0]);
        i = at[1] + 1;
        check_part_headers(&ls, &i, "text/html", "HTML part");
        FUZZ_REQUIRE(i <= at[2], "HTML part runs into the delimiter");
        qp_decode_lines(ls.v + i, at[2] - i, &parts[1]);
    } else {
        FUZZ_REQUIRE(strcmp(buf_str(&d), " text/plain; charset=UTF-8") == 0, "Content-Type%s",
                     buf_str(&d));
        buf_reset(&d);
        FUZZ_REQUIRE(fields[10].s != NULL, "no Content-Transfer-Encoding");
        field_value(&fields[10], &d);
        FUZZ_REQUIRE(strcmp(buf_str(&d), " quoted-printable") == 0, "Content-Transfer-Encoding%s",
                     buf_str(&d));
        /* The encoded text, and a CRLF ending the message when the text did not. */
        qp_decode_lines(ls.v + body, ls.n - body, &parts[0]);
    }
    FUZZ_REQUIRE(!parts[0].failed && !parts[1].failed, "out of memory");
    buf_free(&scratch[0]);
    buf_free(&scratch[1]);
    buf_free(&d);
    free(ls.v);
}
