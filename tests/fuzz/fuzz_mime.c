/* libFuzzer target: common/mime. The input is cut at NUL bytes into fields:
 *
 *   0 control: byte 0 flags (1 text only, 2 List-Unsubscribe, 4 one-click POST,
 *              8 no From name, 16 no To name), bytes 1-8 the date (little-endian
 *              seconds), byte 9 a small limit for mime_clean_text
 *   1 From name   2 From address   3 To name   4 To address   5 Subject
 *   6 Message-ID  7 text body      8 HTML body 9 List-Unsubscribe value
 *
 * A missing field takes a valid default, so mutations start from a message that builds.
 * Checked: the header writers, quoted-printable and HTML escaping each decode back to what
 * went in, and every built message keeps the wire invariants in fuzz_check_message. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "buf.h"
#include "err.h"
#include "fuzz_util.h"
#include "mime.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("TZ", "UTC", 1);
    tzset();
    return 0;
}

/* Length of the well-formed UTF-8 sequence at s[i], 0 when none starts there. */
static size_t
seq_len(const unsigned char *s, size_t i, size_t n)
{
    unsigned char c = s[i];
    size_t want = c < 0x80                   ? 1
                  : (c >= 0xC2 && c <= 0xDF) ? 2
                  : (c >= 0xE0 && c <= 0xEF) ? 3
                  : (c >= 0xF0 && c <= 0xF4) ? 4
                                             : 0;
    if (want == 0 || i + want > n || !mime_utf8_valid((const char *)s + i, want))
        return 0;
    return want;
}

/* What a quoted-printable body decodes to: line ends made CRLF (CRLF, CR and LF each one
 * line end) and each byte that starts no UTF-8 character made U+FFFD. */
static void
normalise_body(const char *text, struct buf *out)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t n = strlen(text);
    for (size_t i = 0; i < n;) {
        if (p[i] == '\r' || p[i] == '\n') {
            i += (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') ? 2 : 1;
            buf_puts(out, "\r\n");
            continue;
        }
        size_t k = seq_len(p, i, n);
        if (k == 0) {
            buf_puts(out, "\xEF\xBF\xBD");
            i++;
        } else {
            buf_append(out, p + i, k);
            i += k;
        }
    }
}

static void
require_equal(const struct buf *got, const struct buf *want, const char *what)
{
    FUZZ_REQUIRE(got->len == want->len && memcmp(buf_str(got), buf_str(want), got->len) == 0,
                 "%s: decoded %zu bytes \"%.200s\", expected %zu bytes \"%.200s\"", what, got->len,
                 buf_str(got), want->len, buf_str(want));
}

/* mime_clean_text: one line of valid UTF-8 within max, spaces single and inside. */
static void
check_clean(const char *s, size_t max)
{
    struct buf b;
    buf_init(&b, 0);
    mime_clean_text(&b, s, max);
    const char *v = buf_str(&b);
    FUZZ_REQUIRE(b.len <= max, "clean text of %zu bytes, max %zu", b.len, max);
    FUZZ_REQUIRE(mime_utf8_valid(v, b.len), "clean text is not valid UTF-8");
    FUZZ_REQUIRE(!fuzz_has_line_controls(v, b.len), "clean text holds a control");
    FUZZ_REQUIRE(b.len == 0 || (v[0] != ' ' && v[b.len - 1] != ' '), "clean text not trimmed");
    FUZZ_REQUIRE(strstr(v, "  ") == NULL, "clean text holds two spaces in a row");
    buf_free(&b);
}

static void
check_header_text(const char *value)
{
    struct buf field, got, want;
    buf_init(&field, 0);
    buf_init(&got, 0);
    buf_init(&want, 0);
    mime_header_text(&field, "Subject", value);
    FUZZ_REQUIRE(!field.failed, "mime_header_text failed");
    fuzz_check_text_header(field.data, field.len, "Subject", &got);
    mime_clean_text(&want, value, MIME_TEXT_MAX);
    require_equal(&got, &want, "Subject");
    buf_free(&field);
    buf_free(&got);
    buf_free(&want);
}

static void
check_header_address(const char *display, const char *addr)
{
    struct buf field, got, want;
    buf_init(&field, 0);
    buf_init(&got, 0);
    buf_init(&want, 0);
    bool ok = mime_header_address(&field, "To", display, addr);
    FUZZ_REQUIRE(ok == addr_valid(addr, 0), "mime_header_address disagrees with validation");
    if (!ok) {
        FUZZ_REQUIRE(field.len == 0, "mime_header_address appended after refusing");
    } else {
        FUZZ_REQUIRE(!field.failed, "mime_header_address failed");
        fuzz_check_address_header(field.data, field.len, "To", addr, &got);
        mime_clean_text(&want, display, MIME_NAME_MAX);
        require_equal(&got, &want, "To display name");
    }
    buf_free(&field);
    buf_free(&got);
    buf_free(&want);
}

static void
check_qp(const char *text)
{
    struct buf qp, got, want;
    buf_init(&qp, 0);
    buf_init(&got, 0);
    buf_init(&want, 0);
    mime_qp_encode(&qp, text);
    FUZZ_REQUIRE(!qp.failed, "mime_qp_encode failed");
    fuzz_qp_decode(buf_str(&qp), qp.len, &got);
    normalise_body(text, &want);
    require_equal(&got, &want, "quoted-printable");
    buf_free(&qp);
    buf_free(&got);
    buf_free(&want);
}

static void
check_html_escape(const char *s)
{
    static const char *const ent[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"};
    static const char raw[] = "&<>\"'";
    struct buf esc, got;
    buf_init(&esc, 0);
    buf_init(&got, 0);
    mime_html_escape(&esc, s);
    const char *e = buf_str(&esc);
    for (size_t i = 0; i < esc.len; i++) {
        FUZZ_REQUIRE(e[i] != '<' && e[i] != '>' && e[i] != '"' && e[i] != '\'',
                     "unescaped 0x%02X in HTML", (unsigned char)e[i]);
        if (e[i] != '&') {
            buf_putc(&got, e[i]);
            continue;
        }
        size_t k = 0;
        while (k < 5 && strncmp(e + i, ent[k], strlen(ent[k])) != 0)
            k++;
        FUZZ_REQUIRE(k < 5, "bare '&' in escaped HTML");
        buf_putc(&got, raw[k]);
        i += strlen(ent[k]) - 1;
    }
    FUZZ_REQUIRE(strcmp(buf_str(&got), s) == 0, "HTML escaping does not round-trip");
    buf_free(&esc);
    buf_free(&got);
}

static void
check_build(const struct mime_message *m)
{
    struct buf out;
    struct err e;
    err_clear(&e);
    buf_init(&out, 0);
    int rc = mime_build(m, &out, &e);
    if (rc != ERR_OK) {
        FUZZ_REQUIRE(rc == ERR_DATA, "mime_build: %s", e.msg);
        FUZZ_REQUIRE(out.len == 0 && !out.failed, "mime_build appended before failing");
        FUZZ_REQUIRE(e.msg[0] != '\0', "mime_build failed without a message");
        buf_free(&out);
        return;
    }
    FUZZ_REQUIRE(addr_valid(m->from_addr, 0) && addr_valid(m->to_addr, 0) &&
                     mime_message_id_valid(m->message_id),
                 "mime_build accepted an invalid address or id");
    struct buf parts[2], want;
    buf_init(&parts[0], 0);
    buf_init(&parts[1], 0);
    buf_init(&want, 0);
    fuzz_check_message(out.data, out.len, parts);

    normalise_body(m->text_body, &want);
    if (m->html_body == NULL && want.len >= 2 && memcmp(want.data + want.len - 2, "\r\n", 2) == 0)
        want.len -= 2; /* the line break the message ends with */
    require_equal(&parts[0], &want, "text part");
    if (m->html_body != NULL) {
        buf_reset(&want);
        normalise_body(m->html_body, &want);
        require_equal(&parts[1], &want, "HTML part");
    }
    buf_free(&want);
    buf_free(&parts[0]);
    buf_free(&parts[1]);
    buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_fields ff;
    fuzz_fields_split(&ff, data, size);
    uint8_t flags = fuzz_byte(&ff, 0, 0, 0);
    int64_t date = 1772528400; /* 2026-03-03 09:00:00 UTC */
    if (ff.n > 0 && ff.len[0] >= 9) {
        uint64_t u = 0;
        for (int i = 8; i >= 1; i--)
            u = (u << 8) | fuzz_byte(&ff, 0, (size_t)i, 0);
        memcpy(&date, &u, sizeof date);
    }

    struct mime_message m = {
        .from_name = (flags & 8) ? NULL : fuzz_field(&ff, 1, "Shop Example"),
        .from_addr = fuzz_field(&ff, 2, "checkout@shop.example"),
        .to_name = (flags & 16) ? NULL : fuzz_field(&ff, 3, "Jane Doe"),
        .to_addr = fuzz_field(&ff, 4, "jane@example.com"),
        .subject = fuzz_field(&ff, 5, "Finish your checkout"),
        .message_id = fuzz_field(&ff, 6, "rw.1.2@shop.example"),
        .date = (time_t)date,
        .text_body = fuzz_field(&ff, 7, "Hello\n"),
        .html_body = (flags & 1) ? NULL : fuzz_field(&ff, 8, "<p>Hello</p>\n"),
        .list_unsubscribe = (flags & 2) ? fuzz_field(&ff, 9, "<https://shop.example/u?t=x>") : NULL,
        .list_unsubscribe_post = (flags & 4) != 0,
    };

    check_clean(m.subject, MIME_TEXT_MAX);
    check_clean(m.to_name, fuzz_byte(&ff, 0, 9, 16));
    check_header_text(m.subject);
    check_header_address(m.to_name, m.to_addr);
    check_header_address(m.from_name, m.from_addr);
    check_qp(m.text_body);
    if (m.html_body != NULL) {
        check_qp(m.html_body);
        check_html_escape(m.html_body);
    }
    check_build(&m);

    fuzz_fields_free(&ff);
    return 0;
}
