/* mime: RFC 5322 message builder with RFC 2045-2047 MIME (quoted-printable bodies,
 * multipart/alternative, RFC 2047 encoded words), RFC 3834 Auto-Submitted and RFC 2369 /
 * RFC 8058 List-Unsubscribe. Every header value passes through one cleaner and one folding
 * writer, so CR, LF and other controls from data never reach the header section. */
#include "mime.h"

#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "enc.h"

/* RFC 5322 §2.1.1: lines SHOULD be at most 78 characters, MUST be at most 998. */
#define HDR_WIDTH 78
#define LINE_MAX_OCTETS 998

/* RFC 2045 §6.7: an encoded line is at most 76 characters, so 75 plus the '=' of a soft
 * break. */
#define QP_WIDTH 75

/* RFC 2047 §2: an encoded word is at most 75 characters. "=?UTF-8?B?" and "?=" take 12,
 * leaving 63 for base64, i.e. 60 characters carrying 45 octets. */
#define EW_PREFIX "=?UTF-8?B?"
#define EW_OVERHEAD 12
#define EW_MAX_RAW 45

_Static_assert(sizeof "List-Unsubscribe: " - 1 + MIME_LIST_UNSUBSCRIBE_MAX <= LINE_MAX_OCTETS,
               "a List-Unsubscribe value cannot be folded: its line must fit whole");

#define ADDR_MAX 254

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* ---- UTF-8 ------------------------------------------------------------------------------ */

static bool
is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes available), 0 when the bytes there
 * do not start one. *cp receives the code point. Follows the Unicode table 3-7 ranges, so
 * overlongs, surrogates and values past U+10FFFF are refused. */
static size_t
utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        if (n < 2 || !is_cont(s[1]))
            return 0;
        *cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || !is_cont(s[1]) || !is_cont(s[2]))
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F))
            return 0;
        *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || !is_cont(s[1]) || !is_cont(s[2]) || !is_cont(s[3]))
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
            return 0;
        *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
              ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return 4;
    }
    return 0;
}

bool
mime_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_seq(p + i, len - i, &cp);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* The longest prefix of s[0..len) of at most max bytes that ends on a character boundary.
 * s must be valid UTF-8. */
static size_t
utf8_prefix(const char *s, size_t len, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_seq(p + i, len - i, &cp);
        if (n == 0)
            n = 1; /* not expected: callers pass cleaned text */
        if (i + n > max)
            break;
        i += n;
    }
    return i;
}

/* ---- Cleaning --------------------------------------------------------------------------- */

/* Code points that must not survive into a one-line value: C0 (TAB included, since a header
 * is folded only by us), DEL, C1 (NEL is a line break to some software) and the Unicode line
 * and paragraph separators. */
static bool
is_line_breaking_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029;
}

void
mime_clean_text(struct buf *out, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t len = strlen((const char *)p);
    size_t used = 0;
    bool pending_space = false;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_seq(p + i, len - i, &cp);
        const char *bytes = (const char *)p + i;
        size_t nbytes = n;
        i += n != 0 ? n : 1;
        if (n == 0) {
            bytes = REPLACEMENT;
            nbytes = sizeof REPLACEMENT - 1;
        } else if (cp == ' ' || is_line_breaking_control(cp)) {
            /* Collapsing keeps a folded header from ever holding a whitespace-only line
             * (RFC 5322 §3.2.2) and turns "x\r\nBcc: y" into the harmless "x Bcc: y". */
            pending_space = used > 0;
            continue;
        }
        size_t need = nbytes + (pending_space ? 1 : 0);
        if (used + need > max)
            break;
        if (pending_space)
            buf_putc(out, ' ');
        buf_append(out, bytes, nbytes);
        used += need;
        pending_space = false;
    }
}

bool
mime_has_controls(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7F)
            return true;
    }
    return false;
}

void
mime_html_escape(struct buf *out, const char *s)
{
    if (s == NULL)
        return;
    const char *run = s;
    for (const char *p = s; *p != '\0'; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        buf_append(out, run, (size_t)(p - run));
        buf_puts(out, rep);
        run = p + 1;
    }
    buf_puts(out, run);
}

/* ---- Validation ------------------------------------------------------------------------- */

/* RFC 5322 §3.2.3 atext. */
static bool
is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* s[0..len) is dot-atom-text whose characters satisfy ok: no empty atom, so no leading,
 * trailing or doubled dot. */
static bool
dot_atom_ok(const char *s, size_t len, bool (*ok)(unsigned char))
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!ok(c)) {
            return false;
        }
    }
    return true;
}

bool
mime_message_id_valid(const char *id)
{
    if (id == NULL)
        return false;
    size_t len = strlen(id);
    const char *at = strchr(id, '@');
    if (len > MIME_MESSAGE_ID_MAX || at == NULL || strchr(at + 1, '@') != NULL)
        return false;
    size_t left = (size_t)(at - id);
    return dot_atom_ok(id, left, is_atext) && dot_atom_ok(at + 1, len - left - 1, is_atext);
}

/* A List-Unsubscribe value as RFC 2369 wants it: "<uri>" items separated by ", ", each URI
 * printable ASCII without spaces, quotes or angle brackets. */
static bool
list_unsubscribe_valid(const char *v)
{
    size_t len = strlen(v);
    if (len == 0 || len > MIME_LIST_UNSUBSCRIBE_MAX)
        return false;
    const char *p = v;
    for (;;) {
        if (*p++ != '<')
            return false;
        const char *start = p;
        while (*p > ' ' && *p < 0x7F && *p != '<' && *p != '>' && *p != '"')
            p++;
        if (p == start || *p++ != '>')
            return false;
        if (*p == '\0')
            return true;
        if (p[0] != ',' || p[1] != ' ')
            return false;
        p += 2;
    }
}

/* ---- Header writer ---------------------------------------------------------------------- */

/* Writes one header field word by word, folding before a word that would pass HDR_WIDTH.
 * RFC 5322 folding puts CRLF before existing whitespace, so unfolding gives back the value. */
struct hdr {
    struct buf *out;
    size_t col;     /* characters on the current line */
    bool has_value; /* the field has a word after "Name:" */
    bool overflow;  /* some line passed HDR_WIDTH */
};

static void
hdr_begin(struct hdr *h, struct buf *out, const char *name)
{
    h->out = out;
    buf_puts(out, name);
    buf_putc(out, ':');
    h->col = strlen(name) + 1;
    h->has_value = false;
    h->overflow = false;
}

static void
hdr_fold(struct hdr *h)
{
    buf_puts(h->out, "\r\n");
    h->col = 0;
}

/* Appends " word". Folds first when the word does not fit, unless the line holds only the
 * field name: a field whose first line is "Name:" alone is legal but trips up some readers,
 * so that case is reported as overflow and the caller can encode instead. */
static void
hdr_word(struct hdr *h, const char *w, size_t n)
{
    if (h->has_value && h->col + 1 + n > HDR_WIDTH)
        hdr_fold(h);
    buf_putc(h->out, ' ');
    buf_append(h->out, w, n);
    h->col += 1 + n;
    h->has_value = true;
    if (h->col > HDR_WIDTH)
        h->overflow = true;
}

static void
hdr_end(struct hdr *h)
{
    buf_puts(h->out, "\r\n");
}

/* Lays out words (space-separated, or s as one word when split is false) on a scratch
 * copy of h; on success appends the result and returns true, else leaves h untouched. */
static bool
hdr_try_words(struct hdr *h, const char *s, bool split)
{
    struct buf scratch;
    buf_init(&scratch, 0);
    struct hdr t = *h;
    t.out = &scratch;
    const char *p = s;
    while (*p != '\0') {
        size_t n = split ? strcspn(p, " ") : strlen(p);
        hdr_word(&t, p, n);
        p += n;
        while (*p == ' ')
            p++;
    }
    bool ok = !t.overflow && !scratch.failed;
    if (ok) {
        buf_append(h->out, scratch.data, scratch.len);
        h->col = t.col;
        h->has_value = t.has_value;
    }
    buf_free(&scratch);
    return ok;
}

/* Octets an encoded word can carry if it goes on the current line after one space. */
static size_t
ew_budget(size_t col)
{
    if (col + 1 + EW_OVERHEAD + 4 > HDR_WIDTH)
        return 0;
    size_t b64 = HDR_WIDTH - col - 1 - EW_OVERHEAD;
    size_t raw = b64 / 4 * 3;
    return raw < EW_MAX_RAW ? raw : EW_MAX_RAW;
}

/* How much of s[0..len) the next encoded word takes, given room for max octets: whole
 * characters, and when the text goes on, preferably up to and including a space. RFC 2047
 * §6.2 decoders drop the whitespace between adjacent encoded words, but some (Python's
 * email before gh-128110, for display names) insert a space there; splitting after a space
 * turns their mistake into a doubled space rather than a space inside a word. */
static size_t
ew_chunk(const char *s, size_t len, size_t max)
{
    size_t take = utf8_prefix(s, len, max);
    if (take == len)
        return take;
    for (size_t k = take; k > take / 2; k--) {
        if (s[k - 1] == ' ')
            return k;
    }
    return take;
}

/* Appends s (cleaned UTF-8) as RFC 2047 B encoded words, each holding whole characters and
 * each on a line it fits. Decoders drop the whitespace between adjacent encoded words, so
 * the folds add nothing to the decoded text. */
static void
hdr_encoded(struct hdr *h, const char *s)
{
    size_t len = strlen(s);
    size_t i = 0;
    while (i < len) {
        /* Every word after the first starts a line of its own: filling the rest of a line
         * with a few octets would only add splits. */
        if (i > 0 || ew_budget(h->col) < 4)
            hdr_fold(h);
        size_t take = ew_chunk(s + i, len - i, ew_budget(h->col));
        char word[EW_OVERHEAD + ENC_BASE64_SIZE(EW_MAX_RAW)];
        size_t n = sizeof EW_PREFIX - 1;
        memcpy(word, EW_PREFIX, n);
        n += enc_base64(word + n, s + i, take, 0);
        memcpy(word + n, "?=", 2);
        hdr_word(h, word, n + 2);
        i += take;
    }
}

/* Whether printable ASCII text could go into a header as it is. "=?" is refused because a
 * reader would decode it as an encoded word, which would let a value smuggle in any text. */
static bool
is_plain_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p > 0x7E)
            return false;
    }
    return strstr(s, "=?") == NULL;
}

static bool
is_atom_phrase(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p != ' ' && !is_atext(*p))
            return false;
    }
    return true;
}

static void
quote_string(struct buf *out, const char *s)
{
    buf_putc(out, '"');
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            buf_putc(out, '\\');
        buf_putc(out, *p);
    }
    buf_putc(out, '"');
}

/* Appends a display name (cleaned, non-empty) as atoms, a quoted-string or encoded words. */
static void
hdr_phrase(struct hdr *h, const char *name)
{
    if (is_plain_ascii(name)) {
        if (is_atom_phrase(name) && hdr_try_words(h, name, true))
            return;
        struct buf q;
        buf_init(&q, 0);
        quote_string(&q, name);
        /* A quoted-string is kept on one line: folding inside quotes is legal but
         * poorly supported, and encoded words fold anywhere. */
        bool ok = !q.failed && hdr_try_words(h, buf_str(&q), false);
        buf_free(&q);
        if (ok)
            return;
    }
    hdr_encoded(h, name);
}

void
mime_header_text(struct buf *out, const char *name, const char *value)
{
    struct buf clean;
    buf_init(&clean, 0);
    mime_clean_text(&clean, value, MIME_TEXT_MAX);
    const char *v = buf_str(&clean);
    struct hdr h;
    hdr_begin(&h, out, name);
    if (*v != '\0' && !(is_plain_ascii(v) && hdr_try_words(&h, v, true)))
        hdr_encoded(&h, v);
    hdr_end(&h);
    buf_free(&clean);
}

bool
mime_address_valid(const char *addr)
{
    return addr_valid(addr, 0);
}

bool
mime_header_address(struct buf *out, const char *name, const char *display, const char *addr)
{
    if (!mime_address_valid(addr))
        return false;
    struct buf clean;
    buf_init(&clean, 0);
    mime_clean_text(&clean, display, MIME_NAME_MAX);
    struct hdr h;
    hdr_begin(&h, out, name);
    if (clean.len == 0) {
        hdr_word(&h, addr, strlen(addr));
    } else {
        hdr_phrase(&h, buf_str(&clean));
        char angle[ADDR_MAX + 3];
        int n = snprintf(angle, sizeof angle, "<%s>", addr);
        hdr_word(&h, angle, (size_t)n);
    }
    hdr_end(&h);
    buf_free(&clean);
    return true;
}

/* List-Unsubscribe folds between its items; a single URI cannot be folded. */
static void
header_list_unsubscribe(struct buf *out, const char *value)
{
    struct hdr h;
    hdr_begin(&h, out, "List-Unsubscribe");
    for (const char *p = value; *p != '\0';) {
        size_t n = strcspn(p, " ");
        hdr_word(&h, p, n);
        p += n;
        while (*p == ' ')
            p++;
    }
    hdr_end(&h);
}

/* ---- Quoted-printable ------------------------------------------------------------------- */

static const char HEX[] = "0123456789ABCDEF";

static size_t
qp_escape(char *tok, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tok[3 * i] = '=';
        tok[3 * i + 1] = HEX[s[i] >> 4];
        tok[3 * i + 2] = HEX[s[i] & 15];
    }
    return 3 * n;
}

static bool
is_line_end(unsigned char c)
{
    return c == '\0' || c == '\r' || c == '\n';
}

/* Encodes the character s[0..n) (one UTF-8 sequence or one byte) into tok; returns its
 * length. Besides RFC 2045's rules ('=' and non-printables always, whitespace before a line
 * end), a '.' or the "F" of "From " opening a line is encoded, so neither SMTP dot handling
 * nor mbox "From " quoting can alter the text. */
static size_t
qp_token(char *tok, const unsigned char *s, size_t n, bool line_start)
{
    unsigned char c = s[0];
    if (n == 1 && (c == ' ' || c == '\t')) {
        if (is_line_end(s[1]))
            return qp_escape(tok, s, 1);
    } else if (n > 1 || c == '=' || c < 0x20 || c > 0x7E) {
        return qp_escape(tok, s, n);
    }
    if (line_start && (c == '.' || (c == 'F' && strncmp((const char *)s, "From ", 5) == 0)))
        return qp_escape(tok, s, 1);
    tok[0] = (char)c;
    return 1;
}

void
mime_qp_encode(struct buf *out, const char *text)
{
    const unsigned char *p = (const unsigned char *)(text != NULL ? text : "");
    size_t len = strlen((const char *)p);
    /* Lines are assembled here and appended whole: one buffer append per line, not per
     * character (this loop runs over every byte of every message). */
    char line[QP_WIDTH + 16];
    size_t col = 0;
    size_t i = 0;
    while (i < len) {
        /* Fast path for what the general path below would copy as is: printable ASCII other
         * than '=' and space, not at the start of a line, with room left on it. */
        while (col > 0 && col + 1 < QP_WIDTH && p[i] > 0x20 && p[i] < 0x7F && p[i] != '=')
            line[col++] = (char)p[i++];
        if (i >= len)
            break;
        if (p[i] == '\r' || p[i] == '\n') {
            i += (p[i] == '\r' && p[i + 1] == '\n') ? 2 : 1;
            line[col++] = '\r';
            line[col++] = '\n';
            buf_append(out, line, col);
            col = 0;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_seq(p + i, len - i, &cp);
        const unsigned char *ch = p + i;
        size_t chlen = n;
        i += n != 0 ? n : 1;
        if (n == 0) {
            ch = (const unsigned char *)REPLACEMENT;
            chlen = sizeof REPLACEMENT - 1;
        }
        /* ch points into text (except for U+FFFD), so qp_token can look at what follows. */
        char tok[12];
        size_t tlen = qp_token(tok, ch, chlen, col == 0);
        /* The last character of a line needs no room for a soft break after it. */
        size_t width = is_line_end(p[i]) ? QP_WIDTH + 1 : QP_WIDTH;
        if (col + tlen > width) {
            memcpy(line + col, "=\r\n", 3);
            buf_append(out, line, col + 3);
            col = 0;
            tlen = qp_token(tok, ch, chlen, true);
        }
        memcpy(line + col, tok, tlen);
        col += tlen;
    }
    if (col > 0)
        buf_append(out, line, col);
}

/* ---- Message ---------------------------------------------------------------------------- */

/* RFC 5322 §3.3 date-time. strftime_l with the C locale keeps day and month names English
 * whatever LC_TIME says, and is safe while other threads build messages. */
static bool
format_date(time_t t, char *out, size_t size)
{
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL)
        return false;
    locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (c == (locale_t)0)
        return false;
    size_t n = strftime_l(out, size, "%a, %d %b %Y %H:%M:%S %z", &tm, c);
    freelocale(c);
    return n > 0;
}

/* A boundary derived from the message id, so a message is rebuilt byte for byte (a resend
 * keeps its bytes). "=_" can never occur in quoted-printable output, where '=' is always
 * followed by two hex digits or a line break, so the boundary cannot occur in a part. */
static void
make_boundary(char *out, size_t size, const char *message_id)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)message_id; *p != '\0'; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    snprintf(out, size, "=_rw_%016llx", (unsigned long long)h);
}

static int
check_message(const struct mime_message *m, struct err *e)
{
    if (!mime_address_valid(m->from_addr))
        return err_set(e, ERR_DATA, "mime: sender address is not an acceptable mailbox");
    if (!mime_address_valid(m->to_addr))
        return err_set(e, ERR_DATA, "mime: recipient address is not an acceptable mailbox");
    if (!mime_message_id_valid(m->message_id))
        return err_set(e, ERR_DATA, "mime: message id is not an acceptable id-left@id-right");
    if (m->list_unsubscribe != NULL && !list_unsubscribe_valid(m->list_unsubscribe))
        return err_set(e, ERR_DATA, "mime: List-Unsubscribe value is not a list of <uri>");
    return ERR_OK;
}

static void
put_text_part_headers(struct buf *out, const char *type)
{
    buf_printf(out, "Content-Type: %s; charset=UTF-8\r\n", type);
    buf_puts(out, "Content-Transfer-Encoding: quoted-printable\r\n");
}

static bool
ends_with_crlf(const struct buf *b, size_t from)
{
    return b->len >= from + 2 && memcmp(b->data + b->len - 2, "\r\n", 2) == 0;
}

static void
put_body(const struct mime_message *m, struct buf *out)
{
    if (m->html_body == NULL) {
        put_text_part_headers(out, "text/plain");
        buf_puts(out, "\r\n");
        size_t start = out->len;
        mime_qp_encode(out, m->text_body);
        if (!ends_with_crlf(out, start))
            buf_puts(out, "\r\n");
        return;
    }
    char boundary[32];
    make_boundary(boundary, sizeof boundary, m->message_id);
    /* '=' is a tspecial (RFC 2045 §5.1), so the boundary parameter is quoted. */
    buf_printf(out, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n", boundary);
    /* Plainest first: clients show the last part they can render (RFC 2046 §5.1.4). */
    buf_printf(out, "--%s\r\n", boundary);
    put_text_part_headers(out, "text/plain");
    buf_puts(out, "\r\n");
    mime_qp_encode(out, m->text_body);
    buf_printf(out, "\r\n--%s\r\n", boundary);
    put_text_part_headers(out, "text/html");
    buf_puts(out, "\r\n");
    mime_qp_encode(out, m->html_body);
    buf_printf(out, "\r\n--%s--\r\n", boundary);
}

int
mime_build(const struct mime_message *m, struct buf *out, struct err *e)
{
    int rc = check_message(m, e);
    if (rc != ERR_OK)
        return rc;
    char date[64];
    if (!format_date(m->date, date, sizeof date))
        return err_set(e, ERR_DATA, "mime: date %lld cannot be formatted", (long long)m->date);

    buf_printf(out, "Date: %s\r\n", date);
    mime_header_address(out, "From", m->from_name, m->from_addr);
    mime_header_address(out, "To", m->to_name, m->to_addr);
    mime_header_text(out, "Subject", m->subject);
    buf_printf(out, "Message-ID: <%s>\r\n", m->message_id);
    buf_puts(out, "MIME-Version: 1.0\r\n");
    /* RFC 3834: keeps vacation responders from answering. */
    buf_puts(out, "Auto-Submitted: auto-generated\r\n");
    if (m->list_unsubscribe != NULL) {
        header_list_unsubscribe(out, m->list_unsubscribe);
        if (m->list_unsubscribe_post)
            buf_puts(out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
    }
    put_body(m, out);
    if (out->failed)
        return err_set(e, ERR_INTERNAL, "mime: message buffer limit reached or out of memory");
    return ERR_OK;
}
