/* libFuzzer target: worker/prompt (template loading and rendering into a MIME message). The
 * input is cut at NUL bytes into fields:
 *
 *   0 control: byte 0 the stage (% 4), byte 1 which of fields 1-3 become override files
 *     (1 subject, 2 text, 4 HTML; all when absent), byte 2 flags (1 unsubscribe URL,
 *     2 no member name, 4 no sender name, 8 override every stage, not just this one),
 *     bytes 3-6 pending_intents (little-endian, signed)
 *   1 <stage>.subject   2 <stage>.txt   3 <stage>.html
 *   4 member name  5 order number  6 total  7 currency  8 resume URL  9 unsubscribe URL
 *   10 sender name  11 member email
 *
 * The templates are written to a temporary override directory and loaded with
 * prompt_templates_load; when they load, prompt_render runs and the message must keep the
 * wire invariants of fuzz_check_message. Values never add markup to the HTML part (it
 * holds no more '<', '>', '"' or '\'' than the template) nor lines to the text part. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fuzz_util.h"
#include "prompt.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const STAGE_NAMES[4] = {"payment", "verification", "loyalty_hold",
                                           "fulfillment"};
static const char *const EXT[3] = {"subject", "txt", "html"};

static char dir[64];

static void
file_path(char *buf, size_t n, int stage, int part)
{
    snprintf(buf, n, "%s/%s.%s", dir, STAGE_NAMES[stage], EXT[part]);
}

static void
cleanup(void)
{
    char path[160];
    for (int s = 0; s < 4; s++) {
        for (int p = 0; p < 3; p++) {
            file_path(path, sizeof path, s, p);
            unlink(path);
        }
    }
    rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("TZ", "UTC", 1);
    tzset();
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz_template.XXXXXX",
             tmp != NULL && strlen(tmp) < 32 ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        abort();
    atexit(cleanup);
    return 0;
}

static void
put_file(int stage, int part, const char *text)
{
    char path[160];
    file_path(path, sizeof path, stage, part);
    if (text == NULL) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "wb");
    size_t n = strlen(text);
    if (f == NULL || fwrite(text, 1, n, f) != n || fclose(f) != 0)
        abort();
}

static size_t
count_char(const char *s, size_t n, char c)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == c;
    return k;
}

/* Line ends as quoted-printable counts them: CRLF, CR and LF are one each. */
static size_t
count_line_ends(const char *s)
{
    size_t k = 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] == '\r' || s[i] == '\n') {
            k++;
            if (s[i] == '\r' && s[i + 1] == '\n')
                i++;
        }
    }
    return k;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_fields ff;
    fuzz_fields_split(&ff, data, size);
    int stage = fuzz_byte(&ff, 0, 0, 0) % 4;
    uint8_t mask = fuzz_byte(&ff, 0, 1, 7);
    uint8_t flags = fuzz_byte(&ff, 0, 2, 0);
    int32_t pending = 2;
    if (ff.n > 0 && ff.len[0] >= 7) {
        uint32_t u = 0;
        for (size_t i = 6; i >= 3; i--)
            u = (u << 8) | fuzz_byte(&ff, 0, i, 0);
        memcpy(&pending, &u, sizeof pending);
    }

    const char *tmpl[3];
    for (int p = 0; p < 3; p++)
        tmpl[p] = (mask & (1u << p)) && (size_t)(p + 1) < ff.n ? ff.f[p + 1] : NULL;
    for (int s = 0; s < 4; s++) {
        bool mine = s == stage || (flags & 8);
        for (int p = 0; p < 3; p++)
            put_file(s, p, mine ? tmpl[p] : NULL);
    }

    struct err e;
    err_clear(&e);
    struct prompt_templates *t = prompt_templates_load(dir, &e);
    if (t == NULL) {
        FUZZ_REQUIRE(e.code == ERR_CONFIG && e.msg[0] != '\0', "templates: %s", e.msg);
        fuzz_fields_free(&ff);
        return 0;
    }

    struct prompt_input in = {
        .stage = STAGE_NAMES[stage],
        .member_name = (flags & 2) ? NULL : fuzz_field(&ff, 4, "Jane Doe"),
        .member_email = fuzz_field(&ff, 11, "jane@example.com"),
        .order_id = "5f0c2a",
        .order_number = fuzz_field(&ff, 5, "SO-1001"),
        .total = fuzz_field(&ff, 6, "129.00"),
        .currency = fuzz_field(&ff, 7, "EUR"),
        .pending_intents = pending,
        .resume_url = fuzz_field(&ff, 8, "https://shop.example/checkout/resume?t=v1.k1.abc"),
        .unsubscribe_url =
            (flags & 1) ? fuzz_field(&ff, 9, "https://shop.example/unsubscribe?t=v1.k1.x") : NULL,
        .sender_email = "checkout@shop.example",
        .sender_name = (flags & 4) ? NULL : fuzz_field(&ff, 10, "Shop Example"),
        .message_id = "rw.5f0c2a.1@shop.example",
        .date = 1772528400,
    };
    struct buf out;
    buf_init(&out, 0);
    err_clear(&e);
    int rc = prompt_render(t, &in, &out, &e);
    if (rc != ERR_OK) {
        FUZZ_REQUIRE(rc == ERR_DATA && e.msg[0] != '\0', "prompt_render: %s", e.msg);
        FUZZ_REQUIRE(out.len == 0 && !out.failed, "prompt_render appended before failing");
    } else {
        FUZZ_REQUIRE(!out.failed, "prompt_render OK on a failed buffer");
        struct buf parts[2];
        buf_init(&parts[0], 0);
        buf_init(&parts[1], 0);
        fuzz_check_message(out.data, out.len, parts);
        if (tmpl[1] != NULL) {
            size_t got = count_char(buf_str(&parts[0]), parts[0].len, '\n');
            size_t max = count_line_ends(tmpl[1]);
            FUZZ_REQUIRE(got <= max, "text part has %zu lines, its template %zu", got, max);
        }
        if (tmpl[2] != NULL) {
            static const char markup[] = "<>\"'";
            for (size_t k = 0; k < 4; k++) {
                size_t got = count_char(buf_str(&parts[1]), parts[1].len, markup[k]);
                size_t max = count_char(tmpl[2], strlen(tmpl[2]), markup[k]);
                FUZZ_REQUIRE(got <= max, "HTML part has %zu '%c', its template %zu", got, markup[k],
                             max);
            }
        }
        buf_free(&parts[0]);
        buf_free(&parts[1]);
    }
    buf_free(&out);
    prompt_templates_free(t);
    fuzz_fields_free(&ff);
    return 0;
}
