/* Unit tests for worker/prompt: template loading and its errors, rendering per part (HTML
 * escaping, sections, fallbacks), hostile values, and a golden message checked byte for
 * byte and by Python's email parser (tests/unit/parse_eml.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#include "buf.h"
#include "err.h"
#include "mime.h"
#include "prompt.h"

#define GOLDEN TEST_DATA_DIR "/golden_prompt.eml"
#define PARSE_EML SOURCE_DIR "/tests/unit/parse_eml.py"

/* ---- helpers ---------------------------------------------------------------------------- */

/* The fixed input of the golden message. */
static struct prompt_input
golden_input(void)
{
    struct prompt_input in = {
        .stage = "loyalty_hold",
        .member_name = "Zoë O'Brien <VIP> & Co",
        .member_email = "zoe.obrien@example.com",
        .order_id = "ord_42",
        .order_number = "SO-1042",
        .total = "129.00",
        .currency = "EUR",
        .pending_intents = 2,
        .resume_url = "https://shop.example/checkout/resume?order=SO-1042&token=v1.abc123",
        .unsubscribe_url = "https://shop.example/unsubscribe?token=v1.def456",
        .sender_email = "checkout@shop.example",
        .sender_name = "Shop Example",
        .message_id = "rw.ord_42.1@shop.example",
        .date = 1772528400, /* 2026-03-03 09:00:00 UTC */
    };
    return in;
}

static struct prompt_templates *
load_ok(const char *dir)
{
    struct err e = {0};
    struct prompt_templates *t = prompt_templates_load(dir, &e);
    if (t == NULL)
        fail_msg("prompt_templates_load: %s", e.msg);
    return t;
}

static char *
render_ok(const struct prompt_templates *t, const struct prompt_input *in)
{
    struct buf out;
    struct err e = {0};
    buf_init(&out, 0);
    if (prompt_render(t, in, &out, &e) != ERR_OK)
        fail_msg("prompt_render: %s", e.msg);
    return buf_steal(&out);
}

static char *
render_default(const struct prompt_input *in)
{
    struct prompt_templates *t = load_ok(NULL);
    char *msg = render_ok(t, in);
    prompt_templates_free(t);
    return msg;
}

/* Writes data to dir/name and leaves that path in path. */
static void
temp_file(char *path, size_t size, const char *dir, const char *name, const char *data)
{
    snprintf(path, size, "%s/%s", dir, name);
    support_write_file(path, data);
}

/* The decoded body of the part of type type ("text/plain", "text/html") (new; free()). */
static char *
part_body(const char *msg, const char *type)
{
    char head[160];
    snprintf(head, sizeof head,
             "Content-Type: %s; charset=UTF-8\r\nContent-Transfer-Encoding: "
             "quoted-printable\r\n\r\n",
             type);
    const char *p = strstr(msg, head);
    assert_non_null(p);
    p += strlen(head);
    const char *end = strstr(p, "\r\n--=_rw_");
    assert_non_null(end);
    struct buf out;
    buf_init(&out, 0);
    for (; p < end; p++) {
        if (p[0] == '=' && p[1] == '\r' && p[2] == '\n') {
            p += 2;
        } else if (p[0] == '=' && support_hex_digit(p[1]) >= 0 && support_hex_digit(p[2]) >= 0) {
            buf_putc(&out, (char)(support_hex_digit(p[1]) * 16 + support_hex_digit(p[2])));
            p += 2;
        } else {
            buf_putc(&out, *p);
        }
    }
    return buf_steal(&out);
}

/* The header section (new; free()), after checking every line ends in CRLF. */
static char *
header_section(const char *msg)
{
    for (const char *p = msg; *p != '\0'; p++) {
        if (*p == '\n')
            assert_true(p > msg && p[-1] == '\r');
        if (*p == '\r')
            assert_true(p[1] == '\n');
    }
    const char *end = strstr(msg, "\r\n\r\n");
    assert_non_null(end);
    return strndup(msg, (size_t)(end - msg) + 2);
}

static void
assert_no_header_line(const char *msg, const char *prefix)
{
    char *h = header_section(msg);
    size_t n = strlen(prefix);
    for (const char *p = h; p != NULL; p = strstr(p, "\r\n")) {
        if (p != h)
            p += 2;
        if (strncasecmp(p, prefix, n) == 0)
            fail_msg("a header line starts with %s", prefix);
    }
    free(h);
}

static bool
python_available(void)
{
    return system("command -v python3 >/dev/null 2>&1") == 0;
}

/* Appends s to b as one single-quoted shell word. */
static void
shell_quote(struct buf *b, const char *s)
{
    buf_putc(b, '\'');
    for (; *s != '\0'; s++) {
        if (*s == '\'')
            buf_puts(b, "'\\''");
        else
            buf_putc(b, *s);
    }
    buf_putc(b, '\'');
}

/* Runs parse_eml.py on path with the given "--option", "value" pairs (NULL-terminated);
 * returns its exit status. */
static int
run_parse_eml(const char *path, ...)
{
    struct buf cmd;
    buf_init(&cmd, 0);
    buf_puts(&cmd, "python3 ");
    shell_quote(&cmd, PARSE_EML);
    buf_putc(&cmd, ' ');
    shell_quote(&cmd, path);
    va_list ap;
    va_start(ap, path);
    const char *arg;
    while ((arg = va_arg(ap, const char *)) != NULL) {
        buf_putc(&cmd, ' ');
        shell_quote(&cmd, arg);
    }
    va_end(ap);
    assert_false(cmd.failed);
    int status = system(buf_str(&cmd));
    buf_free(&cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- golden message --------------------------------------------------------------------- */

/* UPDATE_GOLDEN=1 rewrites the golden file from the current output (review the diff). */
static void
test_prompt_golden_file_matches_byte_for_byte(void **state)
{
    (void)state;
    support_use_tz("UTC");
    struct prompt_input in = golden_input();
    char *msg = render_default(&in);
    if (getenv("UPDATE_GOLDEN") != NULL)
        support_write_file(GOLDEN, msg);
    char *want = support_read_file(GOLDEN);
    if (want == NULL)
        fail_msg("cannot read %s (UPDATE_GOLDEN=1 writes it)", GOLDEN);
    assert_string_equal(msg, want);
    free(want);
    free(msg);
}

static void
test_prompt_golden_file_parses_with_python_email(void **state)
{
    (void)state;
    if (!python_available())
        skip();
    int rc = run_parse_eml(
        GOLDEN, "--from-name", "Shop Example", "--from-addr", "checkout@shop.example", "--to-name",
        "Zoë O'Brien <VIP> & Co", "--to-addr", "zoe.obrien@example.com", "--subject",
        "Finish your checkout for order SO-1042", "--message-id", "rw.ord_42.1@shop.example",
        "--list-unsubscribe", "https://shop.example/unsubscribe?token=v1.def456", "--text-contains",
        "Hi Zoë O'Brien <VIP> & Co,", "--text-contains", "Loyalty hold", "--text-contains",
        "Total: 129.00 EUR", "--text-contains", "You have 2 pending loyalty actions",
        "--html-contains", "Hi Zoë O&#39;Brien &lt;VIP&gt; &amp; Co,", "--html-contains",
        "href=\"https://shop.example/checkout/resume?order=SO-1042&amp;token=v1.abc123\"",
        "--html-lacks", "<VIP>", (const char *)NULL);
    assert_int_equal(rc, 0);
}

/* ---- hostile values --------------------------------------------------------------------- */

static void
test_prompt_crlf_and_bcc_in_values_never_reach_headers(void **state)
{
    (void)state;
    support_use_tz("UTC");
    struct prompt_input in = golden_input();
    in.member_name = "Mallory\r\nBcc: a@evil.example";
    in.sender_name = "Shop\nBcc: b@evil.example";
    in.order_number = "SO-1\r\nBcc: c@evil.example\r\n\r\nbody";
    char *msg = render_default(&in);
    assert_no_header_line(msg, "Bcc:");
    assert_string_contains(msg, "\r\nSubject: Finish your checkout for order SO-1 Bcc:");
    char *text = part_body(msg, "text/plain");
    assert_string_contains(text, "Hi Mallory Bcc: a@evil.example,\r\n");
    free(text);

    if (python_available()) {
        char *dir = support_temp_dir("test_prompt");
        char path[4200];
        temp_file(path, sizeof path, dir, "message.eml", msg);
        int rc = run_parse_eml(
            path, "--from-name", "Shop Bcc: b@evil.example", "--from-addr", "checkout@shop.example",
            "--to-name", "Mallory Bcc: a@evil.example", "--to-addr", "zoe.obrien@example.com",
            "--subject", "Finish your checkout for order SO-1 Bcc: c@evil.example body",
            "--message-id", "rw.ord_42.1@shop.example", "--list-unsubscribe",
            "https://shop.example/unsubscribe?token=v1.def456", (const char *)NULL);
        assert_int_equal(rc, 0);
        support_temp_dir_remove(dir);
    }
    free(msg);
}

static void
test_prompt_emoji_name_and_subject_decode_in_python(void **state)
{
    (void)state;
    support_use_tz("UTC");
    if (!python_available())
        skip();
    struct prompt_input in = golden_input();
    in.member_name = "Zoë 🎉";
    in.order_number = "SO-🛒-7";
    in.sender_name = "Bücher & Co";
    char *msg = render_default(&in);
    assert_string_contains(msg, "\r\nSubject: =?UTF-8?B?");
    char *dir = support_temp_dir("test_prompt");
    char path[4200];
    temp_file(path, sizeof path, dir, "message.eml", msg);
    int rc = run_parse_eml(
        path, "--from-name", "Bücher & Co", "--from-addr", "checkout@shop.example", "--to-name",
        "Zoë 🎉", "--to-addr", "zoe.obrien@example.com", "--subject",
        "Finish your checkout for order SO-🛒-7", "--message-id", "rw.ord_42.1@shop.example",
        "--list-unsubscribe", "https://shop.example/unsubscribe?token=v1.def456", "--text-contains",
        "Hi Zoë 🎉,", "--html-contains", "Order</td><td>SO-🛒-7</td>", (const char *)NULL);
    assert_int_equal(rc, 0);
    support_temp_dir_remove(dir);
    free(msg);
}

static void
test_prompt_markup_in_name_escaped_in_html_raw_in_text(void **state)
{
    (void)state;
    support_use_tz("UTC");
    struct prompt_input in = golden_input();
    in.member_name = "<script>alert('x')</script> \"Bob\" & <b>";
    char *msg = render_default(&in);
    char *html = part_body(msg, "text/html");
    char *text = part_body(msg, "text/plain");
    assert_string_contains(html, "Hi &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; "
                                 "&quot;Bob&quot; &amp; &lt;b&gt;,");
    assert_string_lacks(html, "<script>");
    assert_string_lacks(html, "<b>");
    assert_string_contains(text, "Hi <script>alert('x')</script> \"Bob\" & <b>,");
    free(text);
    free(html);
    free(msg);
}

static void
test_prompt_long_name_is_truncated(void **state)
{
    (void)state;
    support_use_tz("UTC");
    size_t big = 100 * 1024;
    char *name = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        name[i] = i % 10 == 9 ? ' ' : 'n';
    name[big] = '\0';
    struct prompt_input in = golden_input();
    in.member_name = name;
    char *msg = render_default(&in);
    assert_true(strlen(msg) < 16 * 1024);
    char *h = header_section(msg);
    for (const char *p = h; *p != '\0'; p = strstr(p, "\r\n") + 2)
        assert_true((size_t)(strstr(p, "\r\n") - p) <= 78);
    free(h);
    free(msg);
    free(name);
}

static void
test_prompt_javascript_url_is_err_data(void **state)
{
    (void)state;
    struct prompt_templates *t = load_ok(NULL);
    const char *bad[] = {"javascript:alert(1)", "https://x.example/\"onmouseover=\"x",
                         "https://x.example/a b", "https://x.example/\r\nBcc: y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct prompt_input in = golden_input();
        in.resume_url = bad[i];
        struct buf out;
        struct err e = {0};
        buf_init(&out, 0);
        assert_int_equal(prompt_render(t, &in, &out, &e), ERR_DATA);
        assert_int_equal(out.len, 0);
        in = golden_input();
        in.unsubscribe_url = bad[i];
        assert_int_equal(prompt_render(t, &in, &out, &e), ERR_DATA);
        buf_free(&out);
    }
    prompt_templates_free(t);
}

static void
test_prompt_bad_email_is_err_data(void **state)
{
    (void)state;
    struct prompt_templates *t = load_ok(NULL);
    struct prompt_input in = golden_input();
    in.member_email = "zoe@example.com\r\nBcc: x@evil.example";
    struct buf out;
    struct err e = {0};
    buf_init(&out, 0);
    assert_int_equal(prompt_render(t, &in, &out, &e), ERR_DATA);
    assert_string_contains(e.msg, "recipient");
    assert_int_equal(out.len, 0);
    in = golden_input();
    in.sender_email = "not an address";
    assert_int_equal(prompt_render(t, &in, &out, &e), ERR_DATA);
    in = golden_input();
    in.member_email = NULL;
    assert_int_equal(prompt_render(t, &in, &out, &e), ERR_DATA);
    buf_free(&out);
    prompt_templates_free(t);
}

static void
test_prompt_unknown_stage_is_err_data(void **state)
{
    (void)state;
    struct prompt_templates *t = load_ok(NULL);
    struct prompt_input in = golden_input();
    in.stage = "shipping";
    struct buf out;
    struct err e = {0};
    buf_init(&out, 0);
    assert_int_equal(prompt_render(t, &in, &out, &e), ERR_DATA);
    in.stage = NULL;
    assert_int_equal(prompt_render(t, &in, &out, &e), ERR_DATA);
    buf_free(&out);
    prompt_templates_free(t);
}

/* ---- copy and sections ------------------------------------------------------------------ */

static void
test_prompt_member_name_falls_back_to_there(void **state)
{
    (void)state;
    support_use_tz("UTC");
    const char *names[] = {NULL, "", " \r\n "};
    for (size_t i = 0; i < 3; i++) {
        struct prompt_input in = golden_input();
        in.member_name = names[i];
        char *msg = render_default(&in);
        char *text = part_body(msg, "text/plain");
        assert_true(strncmp(text, "Hi there,\r\n", 11) == 0);
        assert_string_contains(msg, "\r\nTo: zoe.obrien@example.com\r\n");
        free(text);
        free(msg);
    }
}

static void
test_prompt_stage_copy_per_stage(void **state)
{
    (void)state;
    support_use_tz("UTC");
    const char *stages[][2] = {
        {"payment", "Payment confirmation"},
        {"verification", "Identity verification"},
        {"loyalty_hold", "Loyalty hold"},
        {"fulfillment", "Fulfillment"},
    };
    for (size_t i = 0; i < 4; i++) {
        struct prompt_input in = golden_input();
        in.stage = stages[i][0];
        char *msg = render_default(&in);
        char *text = part_body(msg, "text/plain");
        char line[128];
        snprintf(line, sizeof line, "\r\n%s: ", stages[i][1]);
        assert_string_contains(text, line);
        free(text);
        free(msg);
    }
}

static void
test_prompt_pending_intents_line_only_when_positive(void **state)
{
    (void)state;
    support_use_tz("UTC");
    struct prompt_input in = golden_input();
    in.pending_intents = 0;
    char *msg = render_default(&in);
    char *text = part_body(msg, "text/plain");
    char *html = part_body(msg, "text/html");
    assert_string_lacks(text, "pending");
    assert_string_lacks(html, "pending");
    assert_string_contains(text, "Total: 129.00 EUR\r\n\r\nResume your checkout here:");
    free(html);
    free(text);
    free(msg);

    in.pending_intents = 3;
    msg = render_default(&in);
    text = part_body(msg, "text/plain");
    assert_string_contains(text, "Total: 129.00 EUR\r\nYou have 3 pending loyalty actions "
                                 "on this order.\r\n\r\nResume");
    free(text);
    free(msg);

    /* one is singular, in both parts */
    in.pending_intents = 1;
    msg = render_default(&in);
    text = part_body(msg, "text/plain");
    html = part_body(msg, "text/html");
    assert_string_contains(text, "You have 1 pending loyalty action on this order.");
    assert_string_contains(html, "<p>You have 1 pending loyalty action on this order.</p>");
    assert_string_lacks(text, "action(s)");
    free(html);
    free(text);
    free(msg);
}

static void
test_prompt_unsubscribe_only_when_configured(void **state)
{
    (void)state;
    support_use_tz("UTC");
    struct prompt_input in = golden_input();
    in.unsubscribe_url = NULL;
    char *msg = render_default(&in);
    assert_string_lacks(msg, "List-Unsubscribe");
    char *text = part_body(msg, "text/plain");
    char *html = part_body(msg, "text/html");
    assert_string_lacks(text, "reminders");
    assert_string_lacks(html, "nsubscribe");
    free(html);
    free(text);
    free(msg);

    /* RFC 8058 one-click needs HTTPS: a plain http link gets no List-Unsubscribe-Post. */
    in.unsubscribe_url = "http://shop.example/u?t=1";
    msg = render_default(&in);
    assert_string_contains(msg, "\r\nList-Unsubscribe: <http://shop.example/u?t=1>\r\n");
    assert_string_lacks(msg, "List-Unsubscribe-Post");
    free(msg);

    in.unsubscribe_url = "https://shop.example/u?t=1";
    msg = render_default(&in);
    assert_string_contains(msg, "\r\nList-Unsubscribe: <https://shop.example/u?t=1>\r\n"
                                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
    free(msg);
}

/* ---- template directory ----------------------------------------------------------------- */

static void
test_prompt_override_file_replaces_builtin(void **state)
{
    (void)state;
    support_use_tz("UTC");
    char *dir = support_temp_dir("test_prompt");
    char path[4200];
    temp_file(path, sizeof path, dir, "verification.subject",
              "Action needed: {{ order_number }}\n");
    temp_file(path, sizeof path, dir, "verification.txt",
              "Dear {{member_name}}\n"
              "  {{#unsubscribe}}  \n"
              "Opt out: {{unsubscribe_url}}\n"
              "{{/unsubscribe}}\n"
              "{{#pending_intents}}{{pending_intents}} pending{{/pending_intents}}.\n");
    struct prompt_templates *t = load_ok(dir);
    struct prompt_input in = golden_input();
    in.stage = "verification";
    char *msg = render_ok(t, &in);
    assert_string_contains(msg, "\r\nSubject: Action needed: SO-1042\r\n");
    char *text = part_body(msg, "text/plain");
    assert_string_equal(text, "Dear Zoë O'Brien <VIP> & Co\r\n"
                              "Opt out: https://shop.example/unsubscribe?token=v1.def456\r\n"
                              "2 pending.\r\n");
    free(text);
    char *html = part_body(msg, "text/html"); /* not overridden: the built-in */
    assert_string_contains(html, "<h1 style=\"font-size:20px;margin:24px 0 8px;\">Identity "
                                 "verification</h1>");
    free(html);
    free(msg);

    in.stage = "payment"; /* no override for payment at all */
    msg = render_ok(t, &in);
    assert_string_contains(msg, "\r\nSubject: Finish your checkout for order SO-1042\r\n");
    free(msg);
    prompt_templates_free(t);
    support_temp_dir_remove(dir);
}

/* Loads dir expecting ERR_CONFIG whose message holds every string in want (NULL-ended). */
static void
assert_load_fails(const char *dir, ...)
{
    struct err e = {0};
    struct prompt_templates *t = prompt_templates_load(dir, &e);
    assert_null(t);
    assert_int_equal(e.code, ERR_CONFIG);
    va_list ap;
    va_start(ap, dir);
    const char *want;
    while ((want = va_arg(ap, const char *)) != NULL) {
        if (strstr(e.msg, want) == NULL)
            fail_msg("error %s lacks %s", e.msg, want);
    }
    va_end(ap);
}

static void
test_prompt_unknown_placeholder_in_override_is_config_error(void **state)
{
    (void)state;
    char *dir = support_temp_dir("test_prompt");
    char path[4200];
    temp_file(path, sizeof path, dir, "payment.html", "<p>Hi</p>\n<p>\n{{member_nmae}}</p>\n");
    char where[4300];
    snprintf(where, sizeof where, "%s:3:", path);
    assert_load_fails(dir, where, "unknown placeholder {{member_nmae}}", (const char *)NULL);
    support_temp_dir_remove(dir);
}

static void
test_prompt_unterminated_tag_is_config_error(void **state)
{
    (void)state;
    char *dir = support_temp_dir("test_prompt");
    char path[4200];
    temp_file(path, sizeof path, dir, "fulfillment.subject", "Order {{order_number");
    assert_load_fails(dir, "fulfillment.subject:1: unterminated {{", (const char *)NULL);
    temp_file(path, sizeof path, dir, "fulfillment.subject", "Order {{order_number\n}}");
    assert_load_fails(dir, "fulfillment.subject:1: unterminated {{", (const char *)NULL);
    support_temp_dir_remove(dir);
}

static void
test_prompt_section_mistakes_are_config_errors(void **state)
{
    (void)state;
    char *dir = support_temp_dir("test_prompt");
    char path[4200];
    temp_file(path, sizeof path, dir, "payment.txt", "a\n{{#unsubscribe}}\nb\n");
    assert_load_fails(dir, "payment.txt:2: {{#unsubscribe}} is never closed", (const char *)NULL);
    temp_file(path, sizeof path, dir, "payment.txt", "a {{/pending_intents}}");
    assert_load_fails(dir, "payment.txt:1:", "does not close", (const char *)NULL);
    temp_file(path, sizeof path, dir, "payment.txt",
              "{{#unsubscribe}}{{#unsubscribe}}{{/unsubscribe}}{{/unsubscribe}}");
    assert_load_fails(dir, "{{#unsubscribe}} inside {{#unsubscribe}}", (const char *)NULL);
    temp_file(path, sizeof path, dir, "payment.txt", "{{#vip}}x{{/vip}}");
    assert_load_fails(dir, "unknown section {{#vip}}", (const char *)NULL);
    support_temp_dir_remove(dir);
}

static void
test_prompt_every_template_error_is_reported_at_once(void **state)
{
    (void)state;
    char *dir = support_temp_dir("test_prompt");
    char path[4200];
    temp_file(path, sizeof path, dir, "payment.txt", "{{nope}}");
    temp_file(path, sizeof path, dir, "fulfillment.html", "{{also_nope}}");
    assert_load_fails(dir, "payment.txt:1: unknown placeholder {{nope}}",
                      "fulfillment.html:1: unknown placeholder {{also_nope}}", (const char *)NULL);
    support_temp_dir_remove(dir);
}

static void
test_prompt_unreadable_override_is_config_error(void **state)
{
    (void)state;
    char *dir = support_temp_dir("test_prompt");
    char path[4200];
    snprintf(path, sizeof path, "%s/loyalty_hold.html", dir);
    assert_int_equal(mkdir(path, 0700), 0); /* a directory where a file should be */
    assert_load_fails(dir, path, "cannot read", (const char *)NULL);
    support_temp_dir_remove(dir);

    dir = support_temp_dir("test_prompt");
    temp_file(path, sizeof path, dir, "payment.txt", "bad \xff byte");
    assert_load_fails(dir, "payment.txt: cannot read: not valid UTF-8", (const char *)NULL);
    support_temp_dir_remove(dir);
}

static void
test_prompt_missing_template_dir_is_config_error(void **state)
{
    (void)state;
    assert_load_fails("/nonexistent/recovery-templates", "/nonexistent/recovery-templates",
                      (const char *)NULL);
}

static void
test_prompt_message_id_names_the_due_occurrence_at_the_sender_domain(void **state)
{
    (void)state;
    char b[MIME_MESSAGE_ID_MAX + 1];
    const char *id = "3f2a4c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f";
    prompt_message_id(b, id, "1717236000123456", "shop@mail.example");
    assert_string_equal(b, "recovery.3f2a4c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f.1717236000123456@"
                           "mail.example");
    prompt_message_id(b, id, NULL, "no-domain");
    assert_string_equal(b, "recovery.3f2a4c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f.0@localhost");
}

static void
test_prompt_message_id_keeps_the_longest_allowed_domain_whole(void **state)
{
    (void)state;
    char sender[1 + 180 + 1 + 1], out[MIME_MESSAGE_ID_MAX + 1];
    sender[0] = 'x';
    sender[1] = '@';
    memset(sender + 2, 'd', 180);
    sender[182] = '\0';
    prompt_message_id(out, "3f2a4c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f", "18446744073709551615", sender);
    assert_int_equal(strlen(out), PROMPT_MESSAGE_ID_LOCAL_MAX + 1 + 180);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_golden_file_matches_byte_for_byte),
        cmocka_unit_test(test_prompt_golden_file_parses_with_python_email),
        cmocka_unit_test(test_prompt_crlf_and_bcc_in_values_never_reach_headers),
        cmocka_unit_test(test_prompt_emoji_name_and_subject_decode_in_python),
        cmocka_unit_test(test_prompt_markup_in_name_escaped_in_html_raw_in_text),
        cmocka_unit_test(test_prompt_long_name_is_truncated),
        cmocka_unit_test(test_prompt_javascript_url_is_err_data),
        cmocka_unit_test(test_prompt_bad_email_is_err_data),
        cmocka_unit_test(test_prompt_unknown_stage_is_err_data),
        cmocka_unit_test(test_prompt_member_name_falls_back_to_there),
        cmocka_unit_test(test_prompt_stage_copy_per_stage),
        cmocka_unit_test(test_prompt_pending_intents_line_only_when_positive),
        cmocka_unit_test(test_prompt_unsubscribe_only_when_configured),
        cmocka_unit_test(test_prompt_override_file_replaces_builtin),
        cmocka_unit_test(test_prompt_unknown_placeholder_in_override_is_config_error),
        cmocka_unit_test(test_prompt_unterminated_tag_is_config_error),
        cmocka_unit_test(test_prompt_section_mistakes_are_config_errors),
        cmocka_unit_test(test_prompt_every_template_error_is_reported_at_once),
        cmocka_unit_test(test_prompt_unreadable_override_is_config_error),
        cmocka_unit_test(test_prompt_missing_template_dir_is_config_error),
        cmocka_unit_test(test_prompt_message_id_names_the_due_occurrence_at_the_sender_domain),
        cmocka_unit_test(test_prompt_message_id_keeps_the_longest_allowed_domain_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
