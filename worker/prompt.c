/* prompt: the recovery email for one orchestration. Per stage there are three templates
 * (subject, text, HTML), built in and replaceable file by file from an operator directory:
 *
 *   <dir>/<stage>.subject   <dir>/<stage>.txt   <dir>/<stage>.html
 *   stage: every stage of transition.h but completed (payment, verification, ...)
 *
 * Template syntax, deliberately tiny (a subset of Mustache):
 *   {{name}}            a value: member_name, order_number, order_total, stage_title,
 *                       stage_description, pending_intents (a number), pending_actions
 *                       ("1 pending loyalty action", "2 pending loyalty actions"),
 *                       resume_url, unsubscribe_url
 *   {{#section}} ... {{/section}}
 *                       kept only when the section is on: "unsubscribe" (an unsubscribe URL
 *                       is configured) or "pending_intents" (the count is above zero).
 *                       Different sections may nest; a section never nests in itself.
 *   Spaces inside the braces are ignored. A section tag alone on its line removes that whole
 *   line, so sections can sit on lines of their own. There is no escape for a literal "{{".
 * In the HTML template every value is HTML-escaped (URLs included, as attribute values); in
 * the text template values go in as they are (the part is quoted-printable encoded); the
 * subject is one line (trailing line breaks in the file are dropped) and goes through the
 * MIME header encoder. Every template is parsed at load, so a typo stops start-up rather
 * than a send. */
#include "prompt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mime.h"
#include "transition.h"

/* A template larger than this is a mistake (a wrong file), not a template. */
#define TEMPLATE_MAX_BYTES ((size_t)256 * 1024)
/* Short values from the database are cut to these many bytes before they reach the copy. */
#define ORDER_FIELD_MAX 128

enum part { PART_SUBJECT, PART_TEXT, PART_HTML, PART_COUNT };

struct stage_copy {
    const char *title; /* NULL: no prompt at this stage */
    const char *description;
};

_Static_assert(TRANSITION_STAGE_COUNT == 5, "each stage but completed has its copy below");

/* The stage names (and so the template file names) are transition_stage_name()'s. */
static const struct stage_copy STAGES[TRANSITION_STAGE_COUNT] = {
    [TRANSITION_STAGE_PAYMENT] = {"Payment confirmation",
                                  "Confirm your payment to complete the order."},
    [TRANSITION_STAGE_VERIFICATION] = {"Identity verification",
                                       "Verify your identity so we can release your order."},
    [TRANSITION_STAGE_LOYALTY_HOLD] = {"Loyalty hold",
                                       "Confirm your loyalty rewards to finish checkout."},
    [TRANSITION_STAGE_FULFILLMENT] = {"Fulfillment",
                                      "Confirm your delivery details so we can fulfil your "
                                      "order."},
};

static const char *const PART_EXT[PART_COUNT] = {"subject", "txt", "html"};

enum var {
    VAR_MEMBER_NAME,
    VAR_ORDER_NUMBER,
    VAR_ORDER_TOTAL,
    VAR_STAGE_TITLE,
    VAR_STAGE_DESCRIPTION,
    VAR_PENDING_INTENTS,
    VAR_PENDING_ACTIONS,
    VAR_RESUME_URL,
    VAR_UNSUBSCRIBE_URL,
    VAR_COUNT
};

static const char *const VAR_NAMES[VAR_COUNT] = {
    "member_name",     "order_number",    "order_total", "stage_title",     "stage_description",
    "pending_intents", "pending_actions", "resume_url",  "unsubscribe_url",
};

enum section { SEC_UNSUBSCRIBE, SEC_PENDING_INTENTS, SEC_COUNT };

static const char *const SECTION_NAMES[SEC_COUNT] = {"unsubscribe", "pending_intents"};

/* ---- Built-in templates: one of each part, shared by every stage (the stage copy comes in
 * through {{stage_title}} and {{stage_description}}). ---------------------------------- */

static const char DEFAULT_SUBJECT[] = "Finish your checkout for order {{order_number}}";

static const char DEFAULT_TEXT[] =
    "Hi {{member_name}},\n"
    "\n"
    "Your order {{order_number}} is waiting for one last step.\n"
    "\n"
    "{{stage_title}}: {{stage_description}}\n"
    "\n"
    "Order: {{order_number}}\n"
    "Total: {{order_total}}\n"
    "{{#pending_intents}}\n"
    "You have {{pending_actions}} on this order.\n"
    "{{/pending_intents}}\n"
    "\n"
    "Resume your checkout here:\n"
    "{{resume_url}}\n"
    "{{#unsubscribe}}\n"
    "\n"
    "You receive this because you started a checkout. To stop these reminders:\n"
    "{{unsubscribe_url}}\n"
    "{{/unsubscribe}}\n";

static const char DEFAULT_HTML[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"UTF-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>{{stage_title}}</title>\n"
    "</head>\n"
    "<body style=\"margin:0;padding:24px;background:#ffffff;color:#222222;"
    "font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5;\">\n"
    "<p>Hi {{member_name}},</p>\n"
    "<p>Your order {{order_number}} is waiting for one last step.</p>\n"
    "<h1 style=\"font-size:20px;margin:24px 0 8px;\">{{stage_title}}</h1>\n"
    "<p>{{stage_description}}</p>\n"
    "<table role=\"presentation\" style=\"border-collapse:collapse;margin:0 0 16px;\">\n"
    "<tr><td style=\"padding:2px 16px 2px 0;\">Order</td><td>{{order_number}}</td></tr>\n"
    "<tr><td style=\"padding:2px 16px 2px 0;\">Total</td><td>{{order_total}}</td></tr>\n"
    "</table>\n"
    "{{#pending_intents}}\n"
    "<p>You have {{pending_actions}} on this order.</p>\n"
    "{{/pending_intents}}\n"
    "<p><a href=\"{{resume_url}}\" style=\"display:inline-block;padding:12px 20px;"
    "background:#1a56db;color:#ffffff;text-decoration:none;border-radius:4px;\">"
    "Resume checkout</a></p>\n"
    "<p style=\"font-size:14px;color:#555555;\">If the button does not work, copy this link "
    "into your browser:<br>{{resume_url}}</p>\n"
    "{{#unsubscribe}}\n"
    "<p style=\"font-size:12px;color:#777777;\">You receive this because you started a "
    "checkout. <a href=\"{{unsubscribe_url}}\" style=\"color:#777777;\">Unsubscribe from "
    "these reminders</a>.</p>\n"
    "{{/unsubscribe}}\n"
    "</body>\n"
    "</html>\n";

static const char *const DEFAULTS[PART_COUNT] = {DEFAULT_SUBJECT, DEFAULT_TEXT, DEFAULT_HTML};

/* ---- Parsed templates ------------------------------------------------------------------- */

enum node_kind { NODE_TEXT, NODE_VAR, NODE_OPEN, NODE_CLOSE };

struct node {
    enum node_kind kind;
    int id;     /* enum var for NODE_VAR, enum section for NODE_OPEN / NODE_CLOSE */
    size_t off; /* NODE_TEXT: the text is src[off, off + len) */
    size_t len;
};

struct tmpl {
    char *src; /* owned; NODE_TEXT nodes point into it */
    struct node *nodes;
    size_t count;
    size_t cap;
};

struct prompt_templates {
    struct tmpl tpl[TRANSITION_STAGE_COUNT][PART_COUNT]; /* empty where no copy */
};

/* Collects every template error of one load, so an operator fixes them in one edit. */
struct load_errors {
    struct buf msg;
    int count;
};

static void load_error(struct load_errors *le, const char *label, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
load_error(struct load_errors *le, const char *label, size_t line, const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (le->count++ > 0)
        buf_puts(&le->msg, "; ");
    if (line > 0)
        buf_printf(&le->msg, "%s:%zu: %s", label, line, detail);
    else
        buf_printf(&le->msg, "%s: %s", label, detail);
}

static bool
add_node(struct tmpl *t, enum node_kind kind, int id, size_t off, size_t len)
{
    if (kind == NODE_TEXT && len == 0)
        return true;
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct node *n = realloc(t->nodes, cap * sizeof *n);
        if (n == NULL)
            return false;
        t->nodes = n;
        t->cap = cap;
    }
    t->nodes[t->count++] = (struct node){kind, id, off, len};
    return true;
}

static void
template_clear(struct tmpl *t)
{
    free(t->src);
    free(t->nodes);
    *t = (struct tmpl){0};
}

/* Advances *line over the line breaks in src[*counted, to), so line numbers cost one pass. */
static void
count_lines(const char *src, size_t *counted, size_t to, size_t *line)
{
    for (; *counted < to; (*counted)++)
        *line += src[*counted] == '\n';
}

/* Where the "}}" closing a tag whose inside starts at src + in is; NULL when the line or the
 * text ends first. A tag never spans lines, so a stray "{{" is reported where it is. */
static const char *
find_tag_close(const char *src, size_t in)
{
    for (const char *p = src + in; *p != '\0' && *p != '\n'; p++) {
        if (p[0] == '}' && p[1] == '}')
            return p;
    }
    return NULL;
}

static int
lookup(const char *const *names, int count, const char *s, size_t len)
{
    for (int i = 0; i < count; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
            return i;
    }
    return -1;
}

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims spaces and tabs around s[*off, *off + *len). */
static void
trim(const char *s, size_t *off, size_t *len)
{
    while (*len > 0 && is_blank(s[*off])) {
        (*off)++;
        (*len)--;
    }
    while (*len > 0 && is_blank(s[*off + *len - 1]))
        (*len)--;
}

/* When the tag src[open, close) is alone on its line, widens it to the whole line (line
 * break included) so that rendering leaves no empty line behind. */
static void
standalone_extent(const char *src, size_t *open, size_t *close)
{
    size_t start = *open;
    while (start > 0 && src[start - 1] != '\n') {
        if (!is_blank(src[start - 1]))
            return;
        start--;
    }
    size_t end = *close;
    while (is_blank(src[end]) || src[end] == '\r')
        end++;
    if (src[end] != '\n' && src[end] != '\0')
        return;
    *open = start;
    *close = src[end] == '\n' ? end + 1 : end;
}

/* The section state while parsing: which sections are open, innermost last. */
struct section_stack {
    int id[SEC_COUNT];
    size_t line[SEC_COUNT];
    int depth;
};

/* Parses one {{...}} tag whose inside is src[in, in + len); appends its node. Returns false
 * (after reporting) on an unknown name or a section mismatch. */
static bool
parse_tag(struct tmpl *t, struct section_stack *st, size_t in, size_t len, size_t line,
          const char *label, struct load_errors *le)
{
    const char *src = t->src;
    trim(src, &in, &len);
    char sigil = len > 0 ? src[in] : '\0';
    if (sigil != '#' && sigil != '/') {
        int v = lookup(VAR_NAMES, VAR_COUNT, src + in, len);
        if (v < 0) {
            load_error(le, label, line, "unknown placeholder {{%.*s}}", (int)(len > 64 ? 64 : len),
                       src + in);
            return false;
        }
        if (!add_node(t, NODE_VAR, v, 0, 0)) {
            load_error(le, label, 0, "out of memory");
            return false;
        }
        return true;
    }
    in++;
    len--;
    trim(src, &in, &len);
    int s = lookup(SECTION_NAMES, SEC_COUNT, src + in, len);
    if (s < 0) {
        load_error(le, label, line, "unknown section {{%c%.*s}}", sigil, (int)(len > 64 ? 64 : len),
                   src + in);
        return false;
    }
    if (sigil == '#') {
        for (int i = 0; i < st->depth; i++) {
            if (st->id[i] == s) {
                load_error(le, label, line, "{{#%s}} inside {{#%s}}", SECTION_NAMES[s],
                           SECTION_NAMES[s]);
                return false;
            }
        }
        st->id[st->depth] = s;
        st->line[st->depth] = line;
        st->depth++;
    } else {
        if (st->depth == 0 || st->id[st->depth - 1] != s) {
            load_error(le, label, line, "{{/%s}} does not close the innermost open section",
                       SECTION_NAMES[s]);
            return false;
        }
        st->depth--;
    }
    if (!add_node(t, sigil == '#' ? NODE_OPEN : NODE_CLOSE, s, 0, 0)) {
        load_error(le, label, 0, "out of memory");
        return false;
    }
    return true;
}

/* Splits t->src into nodes. Reports the first error of this template to le. */
static bool
parse_template(struct tmpl *t, const char *label, struct load_errors *le)
{
    const char *src = t->src;
    struct section_stack st = {.depth = 0};
    size_t pos = 0;
    size_t line = 1;
    size_t counted = 0;
    for (;;) {
        const char *open = strstr(src + pos, "{{");
        if (open == NULL)
            break;
        size_t o = (size_t)(open - src);
        count_lines(src, &counted, o, &line);
        const char *close = find_tag_close(src, o + 2);
        if (close == NULL) {
            load_error(le, label, line, "unterminated {{");
            return false;
        }
        size_t c = (size_t)(close - src) + 2;
        size_t in = o + 2;
        size_t in_len = (size_t)(close - src) - in;
        size_t text_end = o;
        size_t tag_end = c;
        size_t t_in = in, t_len = in_len;
        trim(src, &t_in, &t_len);
        if (t_len > 0 && (src[t_in] == '#' || src[t_in] == '/'))
            standalone_extent(src, &text_end, &tag_end);
        if (!add_node(t, NODE_TEXT, 0, pos, text_end - pos)) {
            load_error(le, label, 0, "out of memory");
            return false;
        }
        if (!parse_tag(t, &st, in, in_len, line, label, le))
            return false;
        pos = tag_end;
    }
    if (!add_node(t, NODE_TEXT, 0, pos, strlen(src + pos))) {
        load_error(le, label, 0, "out of memory");
        return false;
    }
    if (st.depth > 0) {
        load_error(le, label, st.line[st.depth - 1], "{{#%s}} is never closed",
                   SECTION_NAMES[st.id[st.depth - 1]]);
        return false;
    }
    return true;
}

/* ---- Loading ---------------------------------------------------------------------------- */

/* Reads path into a new string. Returns 1 when read, 0 when the file does not exist (the
 * built-in applies), -1 after reporting any other failure. */
static int
read_template_file(const char *path, char **out, struct load_errors *le)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        load_error(le, path, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    char *data = malloc(TEMPLATE_MAX_BYTES + 1);
    if (data == NULL) {
        fclose(f);
        load_error(le, path, 0, "out of memory");
        return -1;
    }
    size_t n = fread(data, 1, TEMPLATE_MAX_BYTES + 1, f);
    const char *why = NULL;
    if (ferror(f))
        why = strerror(errno);
    else if (n > TEMPLATE_MAX_BYTES)
        why = "larger than 256 KiB";
    else if (memchr(data, '\0', n) != NULL)
        why = "contains a NUL byte";
    else if (!mime_utf8_valid(data, n))
        why = "not valid UTF-8";
    fclose(f);
    if (why != NULL) {
        load_error(le, path, 0, "cannot read: %s", why);
        free(data);
        return -1;
    }
    data[n] = '\0';
    *out = data;
    return 1;
}

/* A subject is one line: the line break that ends the file is not part of it. */
static void
chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || is_blank(s[n - 1])))
        s[--n] = '\0';
}

static void
load_one(struct tmpl *t, const char *dir, enum transition_stage s, enum part p,
         struct load_errors *le)
{
    const char *stage = transition_stage_name(s);
    char label[4096];
    int rc = 0;
    if (dir != NULL) {
        snprintf(label, sizeof label, "%s/%s.%s", dir, stage, PART_EXT[p]);
        rc = read_template_file(label, &t->src, le);
        if (rc < 0)
            return;
    }
    if (rc == 0) {
        snprintf(label, sizeof label, "built-in %s.%s", stage, PART_EXT[p]);
        t->src = strdup(DEFAULTS[p]);
        if (t->src == NULL) {
            load_error(le, label, 0, "out of memory");
            return;
        }
    }
    if (p == PART_SUBJECT)
        chomp(t->src);
    parse_template(t, label, le);
}

struct prompt_templates *
prompt_templates_load(const char *dir, struct err *e)
{
    if (dir != NULL) {
        struct stat sb;
        if (stat(dir, &sb) != 0) {
            err_set(e, ERR_CONFIG, "template directory %s: %s", dir, strerror(errno));
            return NULL;
        }
        if (!S_ISDIR(sb.st_mode)) {
            err_set(e, ERR_CONFIG, "template directory %s: not a directory", dir);
            return NULL;
        }
    }
    struct prompt_templates *t = calloc(1, sizeof *t);
    if (t == NULL) {
        err_set(e, ERR_INTERNAL, "templates: out of memory");
        return NULL;
    }
    struct load_errors le = {.count = 0};
    buf_init(&le.msg, 0);
    for (int s = 0; s < TRANSITION_STAGE_COUNT; s++) {
        for (int p = 0; p < PART_COUNT && STAGES[s].title != NULL; p++)
            load_one(&t->tpl[s][p], dir, (enum transition_stage)s, (enum part)p, &le);
    }
    if (le.count > 0) {
        /* err keeps the first ERR_MSG_MAX bytes: the first errors, in file order. */
        err_set(e, ERR_CONFIG, "templates: %s", buf_str(&le.msg));
        buf_free(&le.msg);
        prompt_templates_free(t);
        return NULL;
    }
    buf_free(&le.msg);
    return t;
}

void
prompt_templates_free(struct prompt_templates *t)
{
    if (t == NULL)
        return;
    for (int s = 0; s < TRANSITION_STAGE_COUNT; s++) {
        for (int p = 0; p < PART_COUNT; p++)
            template_clear(&t->tpl[s][p]);
    }
    free(t);
}

/* ---- Rendering -------------------------------------------------------------------------- */

struct values {
    const char *var[VAR_COUNT];
    bool section[SEC_COUNT];
};

static void
render(const struct tmpl *t, const struct values *v, bool html, struct buf *out)
{
    int skipping = -1; /* the section being skipped; sections never nest in themselves */
    for (size_t i = 0; i < t->count; i++) {
        const struct node *n = &t->nodes[i];
        if (skipping >= 0) {
            if (n->kind == NODE_CLOSE && n->id == skipping)
                skipping = -1;
            continue;
        }
        switch (n->kind) {
        case NODE_TEXT:
            buf_append(out, t->src + n->off, n->len);
            break;
        case NODE_VAR:
            if (html)
                mime_html_escape(out, v->var[n->id]);
            else
                buf_puts(out, v->var[n->id]);
            break;
        case NODE_OPEN:
            if (!v->section[n->id])
                skipping = n->id;
            break;
        case NODE_CLOSE:
            break;
        }
    }
}

/* The stage of that name when it has a prompt, else -1. */
static int
find_stage(const char *name)
{
    enum transition_stage s = transition_stage_parse(name);
    return s != TRANSITION_STAGE_INVALID && STAGES[s].title != NULL ? (int)s : -1;
}

/* Only http(s) links, and nothing that could leave an attribute value or the angle brackets
 * of List-Unsubscribe even before escaping. */
static bool
url_ok(const char *url)
{
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
        return false;
    if (strlen(url) > PROMPT_URL_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)url; *p != '\0'; p++) {
        if (*p <= ' ' || *p >= 0x7F || strchr("<>\"'\\`", *p) != NULL)
            return false;
    }
    return true;
}

static int
check_input(const struct prompt_input *in, struct err *e)
{
    const struct {
        const char *value;
        const char *what;
    } required[] = {
        {in->member_email, "member email"},
        {in->order_number, "order number"},
        {in->total, "total"},
        {in->currency, "currency"},
        {in->resume_url, "resume URL"},
        {in->sender_email, "sender email"},
        {in->message_id, "message id"},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (required[i].value == NULL)
            return err_set(e, ERR_DATA, "prompt: missing %s", required[i].what);
    }
    if (find_stage(in->stage) < 0)
        return err_set(e, ERR_DATA, "prompt: unknown stage");
    if (!url_ok(in->resume_url))
        return err_set(e, ERR_DATA, "prompt: resume URL is not a plain http(s) URL");
    if (in->unsubscribe_url != NULL && !url_ok(in->unsubscribe_url))
        return err_set(e, ERR_DATA, "prompt: unsubscribe URL is not a plain http(s) URL");
    return ERR_OK;
}

/* The rendered pieces of one message; every buffer is owned and freed by parts_free. */
struct parts {
    struct buf name, number, total, pending, actions, list_unsub;
    struct buf subject, text, html;
};

/* The buffers of p, for the loops below. */
#define PARTS_NBUF 9
static void
parts_list(struct parts *p, struct buf *all[PARTS_NBUF])
{
    struct buf *list[PARTS_NBUF] = {&p->name,    &p->number,  &p->total,
                                    &p->pending, &p->actions, &p->list_unsub,
                                    &p->subject, &p->text,    &p->html};
    memcpy(all, list, sizeof list);
}

static void
parts_init(struct parts *p)
{
    struct buf *all[PARTS_NBUF];
    parts_list(p, all);
    for (size_t i = 0; i < PARTS_NBUF; i++)
        buf_init(all[i], 0);
}

static bool
parts_failed(struct parts *p)
{
    struct buf *all[PARTS_NBUF];
    parts_list(p, all);
    for (size_t i = 0; i < PARTS_NBUF; i++) {
        if (all[i]->failed)
            return true;
    }
    return false;
}

static void
parts_free(struct parts *p)
{
    struct buf *all[PARTS_NBUF];
    parts_list(p, all);
    for (size_t i = 0; i < PARTS_NBUF; i++)
        buf_free(all[i]);
}

/* Database values become single clean lines before they reach any part, so a name with a
 * line break cannot reshape the text part either. */
static void
fill_values(const struct prompt_input *in, int stage, struct parts *p, struct values *v)
{
    mime_clean_text(&p->name, in->member_name, MIME_NAME_MAX);
    if (p->name.len == 0)
        buf_puts(&p->name, "there");
    mime_clean_text(&p->number, in->order_number, ORDER_FIELD_MAX);
    mime_clean_text(&p->total, in->total, ORDER_FIELD_MAX);
    buf_putc(&p->total, ' ');
    mime_clean_text(&p->total, in->currency, ORDER_FIELD_MAX);
    long pending = in->pending_intents > 0 ? in->pending_intents : 0L;
    buf_printf(&p->pending, "%ld", pending);
    buf_printf(&p->actions, "%ld pending loyalty action%s", pending, pending == 1 ? "" : "s");

    v->var[VAR_MEMBER_NAME] = buf_str(&p->name);
    v->var[VAR_ORDER_NUMBER] = buf_str(&p->number);
    v->var[VAR_ORDER_TOTAL] = buf_str(&p->total);
    v->var[VAR_STAGE_TITLE] = STAGES[stage].title;
    v->var[VAR_STAGE_DESCRIPTION] = STAGES[stage].description;
    v->var[VAR_PENDING_INTENTS] = buf_str(&p->pending);
    v->var[VAR_PENDING_ACTIONS] = buf_str(&p->actions);
    v->var[VAR_RESUME_URL] = in->resume_url;
    v->var[VAR_UNSUBSCRIBE_URL] = in->unsubscribe_url != NULL ? in->unsubscribe_url : "";
    v->section[SEC_UNSUBSCRIBE] = in->unsubscribe_url != NULL;
    v->section[SEC_PENDING_INTENTS] = in->pending_intents > 0;
}

int
prompt_render(const struct prompt_templates *t, const struct prompt_input *in, struct buf *out,
              struct err *e)
{
    int rc = check_input(in, e);
    if (rc != ERR_OK)
        return rc;
    int stage = find_stage(in->stage);
    const struct tmpl *tpl = t->tpl[stage];

    struct parts p;
    struct values v;
    parts_init(&p);
    fill_values(in, stage, &p, &v);
    render(&tpl[PART_SUBJECT], &v, false, &p.subject);
    render(&tpl[PART_TEXT], &v, false, &p.text);
    render(&tpl[PART_HTML], &v, true, &p.html);
    /* RFC 2369: the https URI first (RFC 8058's one-click applies to it), then a mailto. */
    if (in->unsubscribe_url != NULL)
        buf_printf(&p.list_unsub, "<%s>", in->unsubscribe_url);
    if (in->unsubscribe_mailto != NULL && mime_address_valid(in->unsubscribe_mailto))
        buf_printf(&p.list_unsub, "%s<mailto:%s?subject=unsubscribe>",
                   in->unsubscribe_url != NULL ? ", " : "", in->unsubscribe_mailto);
    if (parts_failed(&p)) {
        rc = err_set(e, ERR_INTERNAL, "prompt: out of memory rendering templates");
        goto done;
    }

    struct mime_message m = {
        .from_name = in->sender_name,
        .from_addr = in->sender_email,
        .to_name = in->member_name,
        .to_addr = in->member_email,
        .subject = buf_str(&p.subject),
        .message_id = in->message_id,
        .date = in->date,
        .text_body = buf_str(&p.text),
        .html_body = buf_str(&p.html),
        .list_unsubscribe = p.list_unsub.len > 0 ? buf_str(&p.list_unsub) : NULL,
        /* RFC 8058 one-click needs an HTTPS URI. */
        .list_unsubscribe_post =
            in->unsubscribe_url != NULL && strncmp(in->unsubscribe_url, "https://", 8) == 0,
    };
    rc = mime_build(&m, out, e);
    if (rc != ERR_OK)
        err_prefix(e, "prompt");
done:
    parts_free(&p);
    return rc;
}

void
prompt_message_id(char out[MIME_MESSAGE_ID_MAX + 1], const char *orchestration_id,
                  const char *due_us, const char *sender_email)
{
    const char *at = sender_email != NULL ? strrchr(sender_email, '@') : NULL;
    const char *domain = at != NULL && at[1] != '\0' ? at + 1 : "localhost";
    snprintf(out, MIME_MESSAGE_ID_MAX + 1, "recovery.%s.%s@%s", orchestration_id,
             due_us != NULL ? due_us : "0", domain);
}
