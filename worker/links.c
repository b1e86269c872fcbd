/* links: resume and unsubscribe URLs with signed tokens (token.h) and the claims in them,
 * query strings built with percent-encoding (RFC 3986). */
#include "links.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "enc.h"

#define CLAIM_MEMBERS 6

struct links {
    const struct settings *s;      /* borrowed */
    const struct token_ring *ring; /* borrowed from s; NULL when links are unsigned */
};

struct param {
    const char *name;
    const char *value;
};

/* ---- claims ----------------------------------------------------------------------------- */

/* Switches without default, so -Wswitch flags a new value with no name. */
const char *
links_status_str(enum links_status status)
{
    switch (status) {
    case LINKS_OK:
    case LINKS_MALFORMED:
    case LINKS_UNKNOWN_KEY:
    case LINKS_BAD_SIGNATURE:
        return token_status_str((enum token_status)status);
    case LINKS_EXPIRED:
        return "expired";
    case LINKS_WRONG_PURPOSE:
        return "wrong_purpose";
    }
    return "malformed";
}

const char *
links_purpose_str(enum links_purpose purpose)
{
    switch (purpose) {
    case LINKS_PURPOSE_ANY:
        return "any";
    case LINKS_PURPOSE_RESUME:
        return "resume";
    case LINKS_PURPOSE_UNSUBSCRIBE:
        return "unsubscribe";
    }
    return "any";
}

bool
links_purpose_parse(const char *s, enum links_purpose *out)
{
    if (s == NULL)
        return false;
    if (strcmp(s, "resume") == 0)
        *out = LINKS_PURPOSE_RESUME;
    else if (strcmp(s, "unsubscribe") == 0)
        *out = LINKS_PURPOSE_UNSUBSCRIBE;
    else
        return false;
    return true;
}

static bool
field_valid(const char *s)
{
    size_t n = strnlen(s, LINKS_FIELD_MAX + 1);
    if (n == 0 || n > LINKS_FIELD_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7E)
            return false;
    return true;
}

static bool
times_valid(long long iat, long long exp)
{
    return iat >= 0 && iat <= exp && exp <= LINKS_EXP_MAX;
}

static int
claims_check(const struct links_claims *c, struct err *e)
{
    if (c->purpose != LINKS_PURPOSE_RESUME && c->purpose != LINKS_PURPOSE_UNSUBSCRIBE)
        return err_set(e, ERR_DATA, "token: purpose must be resume or unsubscribe");
    if (!field_valid(c->order_id) || !field_valid(c->orchestration_id) || !field_valid(c->stage))
        return err_set(e, ERR_DATA,
                       "token: order, orchestration and stage must be 1 to %d "
                       "printable ASCII characters",
                       LINKS_FIELD_MAX);
    if (!times_valid(c->issued_at, c->expires_at))
        return err_set(e, ERR_DATA, "token: times out of range (iat %lld, exp %lld)", c->issued_at,
                       c->expires_at);
    return ERR_OK;
}

int
links_sign(const struct token_ring *r, const struct links_claims *c, struct buf *out, struct err *e)
{
    if (r == NULL || token_ring_count(r) == 0)
        return err_set(e, ERR_INTERNAL, "token: no key to sign with");
    int rc = claims_check(c, e);
    if (rc != ERR_OK)
        return rc;
    /* The members in the documented order (json_pack inserts in order). */
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "purpose", links_purpose_str(c->purpose),
                          "order", c->order_id, "orch", c->orchestration_id, "stage", c->stage,
                          "iat", (json_int_t)c->issued_at, "exp", (json_int_t)c->expires_at);
    if (o == NULL)
        return err_set(e, ERR_INTERNAL, "token: out of memory");
    rc = token_sign(r, o, out, e);
    json_decref(o);
    return rc;
}

static bool
copy_field(json_t *o, const char *name, char dst[LINKS_FIELD_MAX + 1])
{
    const char *s = json_string_value(json_object_get(o, name));
    if (s == NULL || !field_valid(s))
        return false;
    memcpy(dst, s, strlen(s) + 1);
    return true;
}

static bool
copy_time(json_t *o, const char *name, long long *dst)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_integer(v))
        return false;
    *dst = json_integer_value(v);
    return true;
}

/* Reads authenticated claims into c (whose kid is already set). */
static bool
claims_from_json(json_t *o, struct links_claims *c)
{
    return json_object_size(o) == CLAIM_MEMBERS &&
           links_purpose_parse(json_string_value(json_object_get(o, "purpose")), &c->purpose) &&
           copy_field(o, "order", c->order_id) && copy_field(o, "orch", c->orchestration_id) &&
           copy_field(o, "stage", c->stage) && copy_time(o, "iat", &c->issued_at) &&
           copy_time(o, "exp", &c->expires_at) && times_valid(c->issued_at, c->expires_at);
}

static enum links_status
check_claims(const struct links_claims *c, time_t now, enum links_purpose want, struct err *e)
{
    if ((long long)now >= c->expires_at) {
        err_set(e, ERR_DATA, "token expired %lld seconds ago", (long long)now - c->expires_at);
        return LINKS_EXPIRED;
    }
    if (want != LINKS_PURPOSE_ANY && c->purpose != want) {
        err_set(e, ERR_DATA, "token is for %s, not %s", links_purpose_str(c->purpose),
                links_purpose_str(want));
        return LINKS_WRONG_PURPOSE;
    }
    return LINKS_OK;
}

static enum links_status
verify(const struct token_ring *r, const char *token, time_t now, enum links_purpose want,
       struct links_claims *c, struct err *e)
{
    json_t *o = NULL;
    enum token_status ts = token_verify(r, token, &o, c->kid, e);
    if (ts != TOKEN_OK)
        return (enum links_status)ts;
    bool ok = claims_from_json(o, c);
    json_decref(o);
    if (!ok) {
        err_set(e, ERR_DATA, "token is malformed: signed payload is not the v1 JSON object");
        return LINKS_MALFORMED;
    }
    return check_claims(c, now, want, e);
}

enum links_status
links_verify(const struct token_ring *r, const char *token, time_t now, enum links_purpose want,
             struct links_claims *out, struct err *e)
{
    struct links_claims c;
    memset(&c, 0, sizeof c);
    enum links_status st = verify(r, token, now, want, &c, e);
    bool authentic = st == LINKS_OK || st == LINKS_EXPIRED || st == LINKS_WRONG_PURPOSE;
    if (out != NULL) {
        if (authentic)
            *out = c;
        else
            memset(out, 0, sizeof *out);
    }
    return st;
}

/* ---- URLs ------------------------------------------------------------------------------- */

struct links *
links_new(const struct settings *s, struct err *e)
{
    struct links *l = calloc(1, sizeof *l);
    if (l == NULL) {
        err_set(e, ERR_INTERNAL, "links: out of memory");
        return NULL;
    }
    l->s = s;
    l->ring = s->link_keys;
    return l;
}

void
links_free(struct links *l)
{
    free(l);
}

bool
links_signed(const struct links *l)
{
    return l->ring != NULL;
}

bool
links_has_unsubscribe(const struct links *l)
{
    return l->s->unsubscribe_url != NULL && l->s->unsubscribe_url[0] != '\0';
}

/* base with params added to its query: before any "#fragment", after '?' when the base has
 * no query yet, after '&' when it has one (nothing when it already ends in '?' or '&'). */
static void
put_url(struct buf *out, const char *base, const struct param *params, size_t n)
{
    size_t head = strcspn(base, "#");
    const char *query = memchr(base, '?', head);
    char sep = '?';
    if (query != NULL)
        sep = base[head - 1] == '?' || base[head - 1] == '&' ? '\0' : '&';
    buf_append(out, base, head);
    for (size_t i = 0; i < n; i++) {
        if (sep != '\0')
            buf_putc(out, sep);
        buf_puts(out, params[i].name);
        buf_putc(out, '=');
        enc_percent_put(out, params[i].value);
        sep = '&';
    }
    buf_puts(out, base + head);
}

static int
copy_claim(char *dst, const char *src, const char *what, struct err *e)
{
    size_t n = src != NULL ? strlen(src) : 0;
    if (n == 0 || n > LINKS_FIELD_MAX)
        return err_set(e, ERR_DATA, "links: %s must be 1 to %d characters", what, LINKS_FIELD_MAX);
    memcpy(dst, src, n + 1);
    return ERR_OK;
}

/* Signs a token for t into tok (a fresh buffer the caller frees). */
static int
sign(const struct links *l, const struct links_target *t, enum links_purpose purpose, time_t now,
     long long ttl_ms, struct buf *tok, struct err *e)
{
    struct links_claims c;
    memset(&c, 0, sizeof c);
    c.purpose = purpose;
    c.issued_at = (long long)now;
    c.expires_at = (long long)now + ttl_ms / 1000;
    int rc = copy_claim(c.order_id, t->order_id, "order id", e);
    if (rc == ERR_OK)
        rc = copy_claim(c.orchestration_id, t->orchestration_id, "orchestration id", e);
    if (rc == ERR_OK)
        rc = copy_claim(c.stage, t->stage, "stage", e);
    if (rc == ERR_OK)
        rc = links_sign(l->ring, &c, tok, e);
    return rc;
}

/* The buffer fails once, at the first append that does not fit (buf.h). */
static int
finish(const struct buf *out, const char *what, struct err *e)
{
    if (!out->failed)
        return ERR_OK;
    return err_set(e, ERR_DATA, "links: %s does not fit its buffer", what);
}

int
links_resume_url(const struct links *l, const struct links_target *t, time_t now, struct buf *out,
                 struct err *e)
{
    if (t->order_id == NULL || t->order_id[0] == '\0')
        return err_set(e, ERR_DATA, "links: resume link without an order id");
    struct buf tok;
    buf_init(&tok, TOKEN_MAX);
    struct param params[2] = {{"order", t->order_id}, {"token", NULL}};
    size_t n = 1;
    if (l->ring != NULL) {
        int rc = sign(l, t, LINKS_PURPOSE_RESUME, now, l->s->resume_link_ttl_ms, &tok, e);
        if (rc != ERR_OK) {
            buf_free(&tok);
            return rc;
        }
        params[n++].value = buf_str(&tok);
    }
    put_url(out, l->s->resume_url, params, n);
    buf_free(&tok);
    return finish(out, "resume link", e);
}

int
links_unsubscribe_url(const struct links *l, const struct links_target *t, time_t now,
                      struct buf *out, struct err *e)
{
    if (!links_has_unsubscribe(l))
        return ERR_OK;
    if (l->ring == NULL)
        return err_set(e, ERR_CONFIG,
                       "links: an unsubscribe URL needs RESUME_LINK_SECRET "
                       "(email.resume_link_secret) to sign its token");
    struct buf tok;
    buf_init(&tok, TOKEN_MAX);
    int rc = sign(l, t, LINKS_PURPOSE_UNSUBSCRIBE, now, l->s->unsubscribe_link_ttl_ms, &tok, e);
    if (rc == ERR_OK) {
        struct param p = {"token", buf_str(&tok)};
        put_url(out, l->s->unsubscribe_url, &p, 1);
        rc = finish(out, "unsubscribe link", e);
    }
    buf_free(&tok);
    return rc;
}

enum links_status
links_verify_unsubscribe(const struct links *l, const char *token, time_t now,
                         struct links_claims *out, struct err *e)
{
    if (l->ring == NULL) {
        err_set(e, ERR_DATA, "links: no key ring to verify with");
        if (out != NULL)
            memset(out, 0, sizeof *out);
        return LINKS_UNKNOWN_KEY;
    }
    return links_verify(l->ring, token, now, LINKS_PURPOSE_UNSUBSCRIBE, out, e);
}
