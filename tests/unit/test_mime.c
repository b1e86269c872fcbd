/* Unit tests for common/mime: header injection, encoded words, folding, truncation,
 * quoted-printable round trips, address validation and the message layout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "support.h"

#include "buf.h"
#include "err.h"
#include "mime.h"

#define T_DATE 1772528400 /* 2026-03-03 09:00:00 UTC, a Tuesday */

/* ---- helpers ---------------------------------------------------------------------------- */

static struct mime_message
sample_message(void)
{
    struct mime_message m = {
        .from_name = "Shop Example",
        .from_addr = "checkout@shop.example",
        .to_name = "Jane Doe",
        .to_addr = "jane@example.com",
        .subject = "Finish your checkout",
        .message_id = "rw.1.2@shop.example",
        .date = T_DATE,
        .text_body = "Hello\n",
        .html_body = "<p>Hello</p>\n",
    };
    return m;
}

static char *
build_ok(const struct mime_message *m)
{
    struct buf out;
    struct err e = {0};
    buf_init(&out, 0);
    int rc = mime_build(m, &out, &e);
    if (rc != ERR_OK)
        fail_msg("mime_build: %s", e.msg);
    char *s = buf_steal(&out);
    assert_non_null(s);
    return s;
}

/* Every line ends in CRLF (no bare CR or LF) and holds at most 998 octets. Returns the
 * length of the header section (up to and including the blank line). */
static size_t
assert_wire_shape(const char *msg)
{
    size_t header_len = 0;
    size_t line_start = 0;
    size_t len = strlen(msg);
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\r') {
            assert_true(i + 1 < len && msg[i + 1] == '\n');
        } else if (msg[i] == '\n') {
            assert_true(i > 0 && msg[i - 1] == '\r');
            size_t line_len = i - 1 - line_start;
            assert_true(line_len <= 998);
            if (line_len == 0 && header_len == 0)
                header_len = i + 1;
            line_start = i + 1;
        }
    }
    assert_int_equal(line_start, len); /* ends with CRLF */
    assert_true(header_len > 0);
    return header_len;
}

/* Asserts that no line of the header section starts with prefix (case-insensitive). */
static void
assert_no_header_line(const char *msg, const char *prefix)
{
    size_t header_len = assert_wire_shape(msg);
    size_t n = strlen(prefix);
    for (size_t i = 0; i < header_len; i++) {
        if ((i == 0 || msg[i - 1] == '\n') && strncasecmp(msg + i, prefix, n) == 0)
            fail_msg("header line starts with %s", prefix);
    }
}

/* Asserts every header line is at most max characters. */
static void
assert_header_width(const char *msg, size_t max)
{
    size_t header_len = assert_wire_shape(msg);
    size_t start = 0;
    for (size_t i = 0; i + 1 < header_len; i++) {
        if (msg[i] == '\r') {
            if (i - start > max)
                fail_msg("header line of %zu characters: %.*s", i - start, (int)(i - start),
                         msg + start);
            start = i + 2;
        }
    }
}

/* The unfolded value of header name (new; free()), NULL when absent. */
static char *
header_value(const char *msg, const char *name)
{
    size_t n = strlen(name);
    const char *end = strstr(msg, "\r\n\r\n");
    if (end == NULL)
        end = msg + strlen(msg);
    for (const char *p = msg; p != NULL && p < end; p = strstr(p, "\r\n")) {
        if (p != msg)
            p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            char *out = malloc(strlen(v) + 1);
            size_t o = 0;
            for (; *v != '\0'; v++) {
                if (v[0] == '\r' && v[1] == '\n') {
                    if (v[2] != ' ' && v[2] != '\t')
                        break;
                    v++; /* unfold: drop CRLF, keep the whitespace */
                    continue;
                }
                out[o++] = *v;
            }
            out[o] = '\0';
            return out;
        }
    }
    return NULL;
}

static int
b64_value(char c)
{
    const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(tab, c);
    return c != '\0' && p != NULL ? (int)(p - tab) : -1;
}

static void
b64_decode(struct buf *out, const char *s, size_t n)
{
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        int v = b64_value(s[i]);
        assert_true(v >= 0);
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_putc(out, (char)((acc >> bits) & 0xFF));
        }
    }
}

/* Decodes an unstructured value (after unfolding) made of plain words and RFC 2047 B words,
 * dropping whitespace between adjacent encoded words as RFC 2047 §6.2 says. Each encoded
 * word is checked for length (<= 75) and for holding whole UTF-8 characters. */
static char *
decode_words(const char *v)
{
    struct buf out;
    buf_init(&out, 0);
    bool prev_encoded = false;
    bool first = true;
    while (*v == ' ')
        v++;
    while (*v != '\0') {
        size_t n = strcspn(v, " ");
        bool encoded =
            n >= 12 && strncmp(v, "=?UTF-8?B?", 10) == 0 && strncmp(v + n - 2, "?=", 2) == 0;
        if (!first && !(encoded && prev_encoded))
            buf_putc(&out, ' ');
        if (encoded) {
            assert_true(n <= 75);
            struct buf word;
            buf_init(&word, 0);
            b64_decode(&word, v + 10, n - 12);
            assert_true(mime_utf8_valid(word.data != NULL ? word.data : "", word.len));
            buf_append(&out, buf_str(&word), word.len);
            buf_free(&word);
        } else {
            buf_append(&out, v, n);
        }
        prev_encoded = encoded;
        first = false;
        v += n;
        while (*v == ' ')
            v++;
    }
    return buf_steal(&out);
}

/* Undoes a quoted-string (the whole phrase, after its leading space). */
static char *
unquote(const char *q)
{
    size_t n = strlen(q);
    assert_true(n >= 2 && q[0] == '"' && q[n - 1] == '"');
    char *out = malloc(n);
    size_t o = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        if (q[i] == '\\')
            i++;
        else
            assert_true(q[i] != '"');
        out[o++] = q[i];
    }
    out[o] = '\0';
    return out;
}

/* Decodes the display name of an address header value "phrase <addr>". */
static char *
decode_display_name(const char *v, const char *addr)
{
    char angle[300];
    snprintf(angle, sizeof angle, " <%s>", addr);
    size_t n = strlen(v);
    size_t an = strlen(angle);
    assert_true(n >= an && strcmp(v + n - an, angle) == 0);
    char *phrase = strndup(v, n - an);
    char *decoded =
        phrase[0] == ' ' && phrase[1] == '"' ? unquote(phrase + 1) : decode_words(phrase);
    free(phrase);
    return decoded;
}

/* Decodes quoted-printable, checking that every encoded line is <= 76 characters and has
 * no trailing whitespace. */
static char *
qp_decode(const char *s)
{
    struct buf out;
    buf_init(&out, 0);
    size_t line_len = 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] == '\r') {
            assert_int_equal(s[i + 1], '\n');
            assert_true(i == 0 || (s[i - 1] != ' ' && s[i - 1] != '\t'));
            buf_puts(&out, "\r\n");
            i++;
            line_len = 0;
            continue;
        }
        line_len++;
        assert_true(line_len <= 76);
        if (s[i] != '=') {
            assert_true(s[i] != '\n');
            buf_putc(&out, s[i]);
            continue;
        }
        if (s[i + 1] == '\r' && s[i + 2] == '\n') { /* soft line break */
            i += 2;
            line_len = 0;
            continue;
        }
        int hi = support_hex_digit(s[i + 1]);
        int lo = hi >= 0 ? support_hex_digit(s[i + 2]) : -1;
        assert_true(hi >= 0 && lo >= 0);
        buf_putc(&out, (char)(hi * 16 + lo));
        i += 2;
        line_len += 2;
    }
    return buf_steal(&out);
}

static char *
qp_encode(const char *text)
{
    struct buf out;
    buf_init(&out, 0);
    mime_qp_encode(&out, text);
    return buf_steal(&out);
}

/* text with every line end (CRLF, CR or LF) as CRLF. */
static char *
crlf(const char *text)
{
    struct buf out;
    buf_init(&out, 0);
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '\r' || *p == '\n') {
            if (p[0] == '\r' && p[1] == '\n')
                p++;
            buf_puts(&out, "\r\n");
        } else {
            buf_putc(&out, *p);
        }
    }
    return buf_steal(&out);
}

/* ---- header injection ------------------------------------------------------------------- */

static void
test_mime_crlf_in_name_and_subject_never_starts_a_header(void **state)
{
    (void)state;
    support_use_tz("UTC");
    struct mime_message m = sample_message();
    m.from_name = "Shop\r\nBcc: a@evil.example";
    m.to_name = "Eve\nBcc: b@evil.example\rBcc: c@evil.example";
    m.subject = "Hi\r\nBcc: d@evil.example\r\n\r\nInjected body";
    char *msg = build_ok(&m);
    assert_no_header_line(msg, "Bcc:");
    char *subject = header_value(msg, "Subject");
    assert_string_equal(subject, " Hi Bcc: d@evil.example Injected body");
    char *to = header_value(msg, "To");
    char *name = decode_display_name(to, "jane@example.com");
    assert_string_equal(name, "Eve Bcc: b@evil.example Bcc: c@evil.example");
    free(name);
    free(to);
    free(subject);
    free(msg);
}

static void
test_mime_header_text_drops_every_control(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    mime_header_text(&out, "Subject",
                     "a\tb\x01"
                     "c\x1f"
                     "d\x7f"
                     "e\xc2\x85"
                     "f\xe2\x80\xa8g");
    assert_string_equal(buf_str(&out), "Subject: a b c d e f g\r\n");
    buf_free(&out);
}

static void
test_mime_encoded_word_cannot_smuggle_newlines(void **state)
{
    (void)state;
    /* "=?UTF-8?Q?...=0D=0A...?=" taken literally would decode to CRLF in a reader; it must be
     * encoded so the reader gets back the literal text. */
    const char *evil = "=?UTF-8?Q?x=0D=0ABcc:_e@evil.example?=";
    struct buf out;
    buf_init(&out, 0);
    mime_header_text(&out, "Subject", evil);
    char *v = header_value(buf_str(&out), "Subject");
    assert_string_lacks(v, "=0D=0A");
    char *decoded = decode_words(v);
    assert_string_equal(decoded, evil);
    free(decoded);
    free(v);
    buf_free(&out);
}

/* ---- encoded words, quoting, folding ---------------------------------------------------- */

static void
test_mime_emoji_name_and_subject_encode_and_decode_back(void **state)
{
    (void)state;
    support_use_tz("UTC");
    const char *name = "Zoë 🎉 Müller-Łukasiewicz 日本語の名前 🛒🛒🛒";
    const char *subject = "Your cart 🛒 is waiting — finish checkout for order Ω-42 "
                          "before it expires ⏳ (ünïcödé everywhere, and then some more)";
    struct mime_message m = sample_message();
    m.to_name = name;
    m.from_name = "Bücher & Co";
    m.subject = subject;
    char *msg = build_ok(&m);
    assert_header_width(msg, 78);

    char *v = header_value(msg, "Subject");
    assert_string_contains(v, "=?UTF-8?B?");
    char *decoded = decode_words(v);
    assert_string_equal(decoded, subject);
    free(decoded);
    free(v);

    v = header_value(msg, "To");
    decoded = decode_display_name(v, "jane@example.com");
    assert_string_equal(decoded, name);
    free(decoded);
    free(v);

    v = header_value(msg, "From");
    decoded = decode_display_name(v, "checkout@shop.example");
    assert_string_equal(decoded, "Bücher & Co");
    free(decoded);
    free(v);
    free(msg);
}

static void
test_mime_ascii_subject_folds_at_whitespace(void **state)
{
    (void)state;
    const char *subject = "Finish your checkout for order SO-1042 now, because the items in "
                          "your cart are reserved only for a short while longer";
    struct buf out;
    buf_init(&out, 0);
    mime_header_text(&out, "Subject", subject);
    const char *s = buf_str(&out);
    assert_string_lacks(s, "=?");
    assert_string_contains(s, "\r\n ");
    char *v = header_value(s, "Subject");
    assert_string_equal(v + 1, subject);
    free(v);
    for (const char *line = s; *line != '\0'; line = strstr(line, "\r\n") + 2)
        assert_true((size_t)(strstr(line, "\r\n") - line) <= 78);
    buf_free(&out);
}

static void
test_mime_display_name_quoted_when_it_has_specials(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    assert_true(mime_header_address(&out, "To", "John Doe", "john@example.com"));
    assert_true(mime_header_address(&out, "To", "Doe, John \"JD\" \\o/", "john@example.com"));
    assert_true(mime_header_address(&out, "To", "  ", "john@example.com"));
    assert_true(mime_header_address(&out, "To", NULL, "john@example.com"));
    assert_string_equal(buf_str(&out), "To: John Doe <john@example.com>\r\n"
                                       "To: \"Doe, John \\\"JD\\\" \\\\o/\" <john@example.com>\r\n"
                                       "To: john@example.com\r\n"
                                       "To: john@example.com\r\n");
    buf_free(&out);
}

static void
test_mime_header_address_refuses_bad_address(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    assert_false(mime_header_address(&out, "To", "x", "a@b\r\nBcc: c@d"));
    assert_int_equal(out.len, 0);
    buf_free(&out);
}

static void
test_mime_long_name_is_truncated_and_lines_stay_short(void **state)
{
    (void)state;
    support_use_tz("UTC");
    size_t big = 100 * 1024;
    char *ascii = malloc(big + 1);
    char *accented = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        ascii[i] = (char)('a' + i % 26);
    ascii[big] = '\0';
    for (size_t i = 0; i + 2 <= big; i += 2)
        memcpy(accented + i, "\xc3\xa9", 2); /* é */
    accented[big] = '\0';
    char *subject = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        subject[i] = i % 7 == 6 ? ' ' : 'x';
    subject[big] = '\0';

    struct mime_message m = sample_message();
    m.from_name = ascii;
    m.to_name = accented;
    m.subject = subject;
    char *msg = build_ok(&m);
    size_t header_len = assert_wire_shape(msg);
    assert_true(header_len < 4096);
    assert_header_width(msg, 78);

    char *v = header_value(msg, "From");
    char *name = decode_display_name(v, "checkout@shop.example");
    assert_int_equal(strlen(name), MIME_NAME_MAX);
    assert_memory_equal(name, ascii, MIME_NAME_MAX);
    free(name);
    free(v);

    v = header_value(msg, "To");
    name = decode_display_name(v, "jane@example.com");
    assert_int_equal(strlen(name), MIME_NAME_MAX); /* 128 whole "é" */
    assert_true(mime_utf8_valid(name, strlen(name)));
    free(name);
    free(v);

    v = header_value(msg, "Subject");
    assert_true(strlen(v) <= MIME_TEXT_MAX + 200);
    free(v);
    free(msg);
    free(ascii);
    free(accented);
    free(subject);
}

static void
test_mime_clean_text_truncates_on_character_boundary(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    mime_clean_text(&out, "ab\xe2\x82\xac", 4); /* "ab€": € does not fit in 4 bytes */
    assert_string_equal(buf_str(&out), "ab");
    buf_reset(&out);
    mime_clean_text(&out, "  a \r\n\t b  ", 100);
    assert_string_equal(buf_str(&out), "a b");
    buf_reset(&out);
    mime_clean_text(&out, "bad \xff\xc0\xaf end", 100);
    assert_string_equal(buf_str(&out), "bad \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD end");
    buf_reset(&out);
    mime_clean_text(&out, NULL, 100);
    assert_string_equal(buf_str(&out), "");
    buf_free(&out);
}

/* ---- quoted-printable ------------------------------------------------------------------- */

static void
test_mime_qp_round_trips_long_lines_whitespace_equals_and_utf8(void **state)
{
    (void)state;
    const char *cases[] = {
        "",
        "plain",
        "a line that is much longer than seventy-six characters, so it needs soft line "
        "breaks to fit the limit, and then keeps going on and on for a good while longer\n",
        "trailing space \ntrailing tab\t\r\nboth \t \rend with space ",
        "x=1 and y==2, =3D is not an escape here, ends with =",
        "Grüße aus Köln — 日本語 🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉 ✓",
        ".leading dot\n.\nFrom the start\nFrom me\n",
        "\n\n\r\n\r\r",
        "tabs\tinside\tand a very long run of spaces:                                   "
        "                                                                    x",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *enc = qp_encode(cases[i]);
        char *dec = qp_decode(enc);
        char *want = crlf(cases[i]);
        if (strcmp(dec, want) != 0)
            fail_msg("case %zu: decoded %s", i, dec);
        free(want);
        free(dec);
        free(enc);
    }
}

static void
test_mime_qp_encodes_equals_trailing_space_and_line_starts(void **state)
{
    (void)state;
    char *enc = qp_encode("a=b \n.x\nFrom y\n\xc3\xa9");
    assert_string_equal(enc, "a=3Db=20\r\n=2Ex\r\n=46rom y\r\n=C3=A9");
    free(enc);
}

static void
test_mime_qp_never_splits_a_character_across_soft_breaks(void **state)
{
    (void)state;
    char text[400] = "";
    for (int i = 0; i < 40; i++)
        strcat(text, i % 3 == 0 ? "\xe2\x82\xac" : "\xf0\x9f\x8e\x89"); /* € and 🎉 */
    char *enc = qp_encode(text);
    for (const char *p = enc; (p = strstr(p, "=\r\n")) != NULL; p += 3) {
        /* the escape after a soft break starts a character, never a continuation byte */
        assert_true(p[3] == '=' && (p[4] == 'E' || p[4] == 'F'));
    }
    char *dec = qp_decode(enc);
    assert_string_equal(dec, text);
    free(dec);
    free(enc);
}

static void
test_mime_qp_replaces_invalid_utf8(void **state)
{
    (void)state;
    char *enc = qp_encode("a\xff"
                          "b\xed\xa0\x80"
                          "c");
    char *dec = qp_decode(enc);
    assert_string_equal(dec, "a\xEF\xBF\xBD"
                             "b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                             "c");
    free(dec);
    free(enc);
}

/* ---- validation ------------------------------------------------------------------------- */

static void
test_mime_bad_address_is_err_data(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "jane",
        "jane@",
        "@example.com",
        "a@b@example.com",
        "jane doe@example.com",
        "<jane@example.com>",
        "jane@example.com\r\nBcc: x@y",
        "\"jane\"@example.com",
        "jäne@example.com",
        "jane@exa_mple.com",
        "jane..doe@example.com",
        ".jane@example.com",
        "jane@example..com",
        "jane@[127.0.0.1]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mime_message m = sample_message();
        m.to_addr = bad[i];
        struct buf out;
        struct err e = {0};
        buf_init(&out, 0);
        assert_int_equal(mime_build(&m, &out, &e), ERR_DATA);
        assert_int_equal(e.code, ERR_DATA);
        assert_int_equal(out.len, 0);
        buf_free(&out);
    }
    struct mime_message m = sample_message();
    m.from_addr = NULL;
    struct err e = {0};
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(mime_build(&m, &out, &e), ERR_DATA);
    assert_string_contains(e.msg, "sender");
    buf_free(&out);
}

static void
test_mime_bad_message_id_is_err_data(void **state)
{
    (void)state;
    const char *bad[] = {"", "noat", "a b@c", "<a@b>", "a\"b@c", "a@b@c", "a@b\r\nX: y", "a@"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mime_message m = sample_message();
        m.message_id = bad[i];
        struct buf out;
        struct err e = {0};
        buf_init(&out, 0);
        assert_int_equal(mime_build(&m, &out, &e), ERR_DATA);
        buf_free(&out);
    }
    assert_true(mime_message_id_valid("rw.ord_42.3@shop.example"));
}

static void
test_mime_bad_list_unsubscribe_is_err_data(void **state)
{
    (void)state;
    const char *bad[] = {"https://x.example/u", "<https://x.example/u>\r\nBcc: y@z", "<>",
                         "<https://x.example/u> <mailto:u@x.example>", "<https://x/u v>"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mime_message m = sample_message();
        m.list_unsubscribe = bad[i];
        struct buf out;
        struct err e = {0};
        buf_init(&out, 0);
        assert_int_equal(mime_build(&m, &out, &e), ERR_DATA);
        buf_free(&out);
    }
}

static void
test_mime_html_escape_escapes_markup_and_quotes(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    mime_html_escape(&out, "<a href=\"x\">Tom & Jerry's</a>");
    assert_string_equal(buf_str(&out),
                        "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
    buf_free(&out);
}

static void
test_mime_has_controls_flags_c0_and_del_but_not_tab(void **state)
{
    (void)state;
    assert_false(mime_has_controls("plain text\twith tab, ünïcödé"));
    assert_true(mime_has_controls("a\rb"));
    assert_true(mime_has_controls("a\nb"));
    assert_true(mime_has_controls("a\x1b[31m"));
    assert_true(mime_has_controls("a\x7f"));
}

/* ---- message layout --------------------------------------------------------------------- */

static void
test_mime_multipart_layout_and_headers(void **state)
{
    (void)state;
    support_use_tz("UTC");
    struct mime_message m = sample_message();
    m.list_unsubscribe = "<https://shop.example/u?t=1>, <mailto:unsub@shop.example>";
    m.list_unsubscribe_post = true;
    char *msg = build_ok(&m);
    size_t header_len = assert_wire_shape(msg);
    const char *want_headers =
        "Date: Tue, 03 Mar 2026 09:00:00 +0000\r\n"
        "From: Shop Example <checkout@shop.example>\r\n"
        "To: Jane Doe <jane@example.com>\r\n"
        "Subject: Finish your checkout\r\n"
        "Message-ID: <rw.1.2@shop.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Auto-Submitted: auto-generated\r\n"
        "List-Unsubscribe: <https://shop.example/u?t=1>, <mailto:unsub@shop.example>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        "Content-Type: multipart/alternative;\r\n"
        " boundary=\"=_rw_";
    assert_memory_equal(msg, want_headers, strlen(want_headers));
    const char *b = strstr(msg, "boundary=\"") + 10;
    size_t blen = strcspn(b, "\"");
    char delim[64];
    snprintf(delim, sizeof delim, "\r\n--%.*s", (int)blen, b);
    const char *plain = strstr(msg, delim);
    assert_non_null(plain);
    assert_true((size_t)(plain - msg) == header_len - 2);
    const char *html = strstr(plain + 1, delim);
    assert_non_null(html);
    assert_string_contains(plain, "Content-Type: text/plain; charset=UTF-8\r\n"
                                  "Content-Transfer-Encoding: quoted-printable\r\n\r\nHello");
    assert_string_contains(html, "Content-Type: text/html; charset=UTF-8\r\n"
                                 "Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>Hello");
    assert_true(strstr(plain, "text/plain") < strstr(plain, "text/html"));
    char close[64];
    snprintf(close, sizeof close, "\r\n--%.*s--\r\n", (int)blen, b);
    assert_string_equal(msg + strlen(msg) - strlen(close), close);
    free(msg);
}

static void
test_mime_boundary_text_in_body_cannot_close_a_part(void **state)
{
    (void)state;
    support_use_tz("UTC");
    struct mime_message m = sample_message();
    char *first = build_ok(&m);
    const char *b = strstr(first, "boundary=\"") + 10;
    char boundary[64];
    snprintf(boundary, sizeof boundary, "%.*s", (int)strcspn(b, "\""), b);
    char body[256];
    snprintf(body, sizeof body, "--%s\n--%s--\n", boundary, boundary);
    m.text_body = body;
    m.html_body = body;
    char *msg = build_ok(&m);
    int count = 0;
    for (const char *p = msg; (p = strstr(p, boundary)) != NULL; p++)
        count++;
    assert_int_equal(count, 4); /* the parameter, two delimiters, the close delimiter */
    free(msg);
    free(first);
}

static void
test_mime_text_only_message_is_single_part(void **state)
{
    (void)state;
    support_use_tz("UTC");
    struct mime_message m = sample_message();
    m.html_body = NULL;
    m.text_body = "Line one\nLine two";
    char *msg = build_ok(&m);
    assert_wire_shape(msg);
    assert_string_lacks(msg, "multipart");
    assert_string_contains(msg, "Content-Type: text/plain; charset=UTF-8\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                                "Line one\r\nLine two\r\n");
    free(msg);
}

static void
test_mime_date_uses_numeric_zone_and_english_names(void **state)
{
    (void)state;
    support_use_tz("EST5");
    struct mime_message m = sample_message();
    char *msg = build_ok(&m);
    assert_memory_equal(msg, "Date: Tue, 03 Mar 2026 04:00:00 -0500\r\n", 39);
    free(msg);
    support_use_tz("UTC");
}

/* Each header line is a continuation (leading space) or one of the fields mime_build writes. */
static void
assert_known_header_lines(const char *msg)
{
    static const char *const names[] = {
        "Date: ",         "From: ",           "To: ",           "Subject:", "Message-ID: ",
        "MIME-Version: ", "Auto-Submitted: ", "Content-Type: ", NULL,
    };
    size_t header_len = assert_wire_shape(msg);
    for (size_t i = 0; i + 2 < header_len; i = (size_t)(strstr(msg + i, "\r\n") - msg) + 2) {
        if (msg[i] == ' ')
            continue;
        bool known = false;
        for (size_t k = 0; names[k] != NULL && !known; k++)
            known = strncmp(msg + i, names[k], strlen(names[k])) == 0;
        if (!known)
            fail_msg("unexpected header line: %.40s", msg + i);
    }
}

static void
test_mime_random_bytes_never_break_the_header_section(void **state)
{
    (void)state;
    support_use_tz("UTC");
    uint32_t seed = 12345;
    char fields[3][301];
    for (int iter = 0; iter < 3000; iter++) {
        for (int f = 0; f < 3; f++) {
            seed = seed * 1103515245u + 12345u;
            size_t len = (seed >> 16) % 300;
            for (size_t i = 0; i < len; i++) {
                seed = seed * 1103515245u + 12345u;
                /* bias towards the bytes that matter: CR, LF, ':', '=', '?', '"', high bytes */
                unsigned r = (seed >> 16) & 0xFF;
                const char hot[] = "\r\n:=?\"\\<> \t\x7f\xc3\xa9\xf0\x9f";
                fields[f][i] = r < 128 ? hot[r % (sizeof hot - 1)] : (char)r;
            }
            fields[f][len] = '\0';
        }
        struct mime_message m = sample_message();
        m.from_name = fields[0];
        m.to_name = fields[1];
        m.subject = fields[2];
        char *msg = build_ok(&m);
        assert_known_header_lines(msg);
        assert_header_width(msg, 78);
        free(msg);
    }
}

static void
test_mime_build_is_deterministic(void **state)
{
    (void)state;
    support_use_tz("UTC");
    struct mime_message m = sample_message();
    char *a = build_ok(&m);
    char *b = build_ok(&m);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mime_crlf_in_name_and_subject_never_starts_a_header),
        cmocka_unit_test(test_mime_header_text_drops_every_control),
        cmocka_unit_test(test_mime_encoded_word_cannot_smuggle_newlines),
        cmocka_unit_test(test_mime_emoji_name_and_subject_encode_and_decode_back),
        cmocka_unit_test(test_mime_ascii_subject_folds_at_whitespace),
        cmocka_unit_test(test_mime_display_name_quoted_when_it_has_specials),
        cmocka_unit_test(test_mime_header_address_refuses_bad_address),
        cmocka_unit_test(test_mime_long_name_is_truncated_and_lines_stay_short),
        cmocka_unit_test(test_mime_clean_text_truncates_on_character_boundary),
        cmocka_unit_test(test_mime_qp_round_trips_long_lines_whitespace_equals_and_utf8),
        cmocka_unit_test(test_mime_qp_encodes_equals_trailing_space_and_line_starts),
        cmocka_unit_test(test_mime_qp_never_splits_a_character_across_soft_breaks),
        cmocka_unit_test(test_mime_qp_replaces_invalid_utf8),
        cmocka_unit_test(test_mime_bad_address_is_err_data),
        cmocka_unit_test(test_mime_bad_message_id_is_err_data),
        cmocka_unit_test(test_mime_bad_list_unsubscribe_is_err_data),
        cmocka_unit_test(test_mime_html_escape_escapes_markup_and_quotes),
        cmocka_unit_test(test_mime_has_controls_flags_c0_and_del_but_not_tab),
        cmocka_unit_test(test_mime_multipart_layout_and_headers),
        cmocka_unit_test(test_mime_boundary_text_in_body_cannot_close_a_part),
        cmocka_unit_test(test_mime_text_only_message_is_single_part),
        cmocka_unit_test(test_mime_date_uses_numeric_zone_and_english_names),
        cmocka_unit_test(test_mime_random_bytes_never_break_the_header_section),
        cmocka_unit_test(test_mime_build_is_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
