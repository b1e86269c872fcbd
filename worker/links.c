/* links: resume and unsubscribe URLs with signed tokens (token.h), query strings built
 * with percent-encoding (RFC 3986). */
#include "links.h"

#include <stdlib.h>
#include <string.h>

#include "enc.h"

struct links {
    const struct settings *s; /* borrowed */
    struct token_ring *ring;  /* owned; NULL when links are unsigned */
};

struct param {
    const char *name;
    const char *value;
};

struct links *
links_new(const struct settings *s, struct err *e)
{
    struct links *l = calloc(1, sizeof *l);
    if (l == NULL) {
        err_set(e, ERR_INTERNAL, "links: out of memory");
        return NULL;
    }
    l->s = s;
    if (s->resume_link_secret != NULL && s->resume_link_secret[0] != '\0') {
        if (token_ring_parse(s->resume_link_secret, &l->ring, e) != ERR_OK) {
            err_prefix(e, "email.resume_link_secret");
            free(l);
            return NULL;
        }
    }
    return l;
}

void
links_free(struct links *l)
{
    if (l == NULL)
        return;
    token_ring_free(l->ring);
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
    if (n == 0 || n > TOKEN_FIELD_MAX)
        return err_set(e, ERR_DATA, "links: %s must be 1 to %d characters", what, TOKEN_FIELD_MAX);
    memcpy(dst, src, n + 1);
    return ERR_OK;
}

/* Signs a token for t into tok (a fresh buffer the caller frees). */
static int
sign(const struct links *l, const struct links_target *t, enum token_purpose purpose, time_t now,
     long long ttl_ms, struct buf *tok, struct err *e)
{
    struct token_claims c;
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
        rc = token_sign(l->ring, &c, tok, e);
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
        int rc = sign(l, t, TOKEN_PURPOSE_RESUME, now, l->s->resume_link_ttl_ms, &tok, e);
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
    int rc = sign(l, t, TOKEN_PURPOSE_UNSUBSCRIBE, now, l->s->unsubscribe_link_ttl_ms, &tok, e);
    if (rc == ERR_OK) {
        struct param p = {"token", buf_str(&tok)};
        put_url(out, l->s->unsubscribe_url, &p, 1);
        rc = finish(out, "unsubscribe link", e);
    }
    buf_free(&tok);
    return rc;
}

enum token_status
links_verify_unsubscribe(const struct links *l, const char *token, time_t now,
                         struct token_claims *out, struct err *e)
{
    if (l->ring == NULL) {
        err_set(e, ERR_DATA, "links: no key ring to verify with");
        if (out != NULL)
            memset(out, 0, sizeof *out);
        return TOKEN_UNKNOWN_KEY;
    }
    return token_verify(l->ring, token, now, TOKEN_PURPOSE_UNSUBSCRIBE, out, e);
}
