/* token: v1 tokens, base64url(JSON object) signed with HMAC-SHA256 under a rotating key ring
 * (format in token.h). */
#include "token.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "enc.h"

#define VERSION_PREFIX "v1."
#define MAC_B64_LEN 43 /* 32 bytes in unpadded base64url */

struct token_key {
    char kid[TOKEN_KID_MAX + 1];
    unsigned char *secret; /* owned; wiped before it is freed */
    size_t len;
};

struct token_ring {
    size_t n;
    struct token_key key[TOKEN_RING_MAX];
};

/* ---- names ------------------------------------------------------------------------------ */

/* A switch without default, so -Wswitch flags a new value with no name. */
const char *
token_status_str(enum token_status status)
{
    switch (status) {
    case TOKEN_OK:
        return "ok";
    case TOKEN_MALFORMED:
        return "malformed";
    case TOKEN_UNKNOWN_KEY:
        return "unknown_key";
    case TOKEN_BAD_SIGNATURE:
        return "bad_signature";
    }
    return "malformed";
}

/* ---- primitives ------------------------------------------------------------------------- */

bool
token_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                  unsigned char out[TOKEN_MAC_LEN])
{
    unsigned int out_len = 0;
    if (key_len > INT_MAX)
        return false;
    /* HMAC() wants a non-NULL key even when it is empty. */
    static const unsigned char empty[1];
    const void *k = key_len > 0 ? key : empty;
    if (HMAC(EVP_sha256(), k, (int)key_len, msg, msg_len, out, &out_len) == NULL)
        return false;
    return out_len == TOKEN_MAC_LEN;
}

/* ---- key ring --------------------------------------------------------------------------- */

static bool
is_kid_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static bool
kid_valid(const char *s, size_t n)
{
    if (n == 0 || n > TOKEN_KID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_kid_char(s[i]))
            return false;
    return true;
}

/* Whether spec starts with "<kid>:", which makes it a ring rather than one plain secret. */
static bool
starts_with_kid(const char *spec)
{
    size_t n = 0;
    while (n <= TOKEN_KID_MAX && is_kid_char(spec[n]))
        n++;
    return n >= 1 && n <= TOKEN_KID_MAX && spec[n] == ':';
}

static const struct token_key *
ring_find(const struct token_ring *r, const char *kid, size_t kid_len)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strlen(r->key[i].kid) == kid_len && memcmp(r->key[i].kid, kid, kid_len) == 0)
            return &r->key[i];
    }
    return NULL;
}

/* Adds one key. named: whether the operator wrote the kid (so messages may name it). */
static int
ring_add(struct token_ring *r, const char *kid, size_t kid_len, const char *secret, size_t len,
         bool named, struct err *e)
{
    char who[TOKEN_KID_MAX + 16] = "";
    if (named)
        snprintf(who, sizeof who, "key \"%.*s\": ", (int)kid_len, kid);
    if (r->n == TOKEN_RING_MAX)
        return err_set(e, ERR_CONFIG, "more than %d keys", TOKEN_RING_MAX);
    if (ring_find(r, kid, kid_len) != NULL)
        return err_set(e, ERR_CONFIG, "key id \"%.*s\" appears twice", (int)kid_len, kid);
    if (len < TOKEN_SECRET_MIN)
        return err_set(e, ERR_CONFIG,
                       "%smust be at least %d characters (try: openssl rand -hex 32)", who,
                       TOKEN_SECRET_MIN);
    if (len > TOKEN_SECRET_MAX)
        return err_set(e, ERR_CONFIG, "%smust be at most %d characters", who, TOKEN_SECRET_MAX);
    struct token_key *k = &r->key[r->n];
    k->secret = malloc(len);
    if (k->secret == NULL)
        return err_set(e, ERR_INTERNAL, "out of memory");
    memcpy(k->secret, secret, len);
    k->len = len;
    memcpy(k->kid, kid, kid_len);
    k->kid[kid_len] = '\0';
    r->n++;
    return ERR_OK;
}

/* "kid:secret" entries separated by ','; position counts from 1 for messages. */
static int
parse_entry(struct token_ring *r, const char *entry, size_t len, size_t position, struct err *e)
{
    if (len == 0)
        return err_set(e, ERR_CONFIG, "entry %zu is empty (stray ',')", position);
    const char *colon = memchr(entry, ':', len);
    if (colon == NULL)
        return err_set(e, ERR_CONFIG, "entry %zu is not kid:secret", position);
    size_t kid_len = (size_t)(colon - entry);
    /* The text before ':' is not quoted: in a mistyped entry it may be part of a secret. */
    if (!kid_valid(entry, kid_len))
        return err_set(e, ERR_CONFIG, "entry %zu: the key id must be 1 to %d of A-Z a-z 0-9 _ -",
                       position, TOKEN_KID_MAX);
    return ring_add(r, entry, kid_len, colon + 1, len - kid_len - 1, true, e);
}

static int
parse_entries(struct token_ring *r, const char *spec, struct err *e)
{
    size_t position = 1;
    for (const char *p = spec;; position++) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        int rc = parse_entry(r, p, len, position, e);
        if (rc != ERR_OK)
            return rc;
        if (comma == NULL)
            return ERR_OK;
        p = comma + 1;
    }
}

int
token_ring_parse(const char *spec, struct token_ring **out, struct err *e)
{
    *out = NULL;
    if (spec == NULL || spec[0] == '\0')
        return err_set(e, ERR_CONFIG, "is empty");
    struct token_ring *r = calloc(1, sizeof *r);
    if (r == NULL)
        return err_set(e, ERR_INTERNAL, "out of memory");
    int rc;
    if (starts_with_kid(spec))
        rc = parse_entries(r, spec, e);
    else
        rc = ring_add(r, TOKEN_DEFAULT_KID, sizeof TOKEN_DEFAULT_KID - 1, spec, strlen(spec), false,
                      e);
    if (rc != ERR_OK) {
        token_ring_free(r);
        return rc;
    }
    *out = r;
    return ERR_OK;
}

void
token_ring_free(struct token_ring *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        OPENSSL_cleanse(r->key[i].secret, r->key[i].len);
        free(r->key[i].secret);
    }
    OPENSSL_cleanse(r, sizeof *r);
    free(r);
}

size_t
token_ring_count(const struct token_ring *r)
{
    return r != NULL ? r->n : 0;
}

const char *
token_ring_kid(const struct token_ring *r, size_t i)
{
    return r != NULL && i < r->n ? r->key[i].kid : NULL;
}

/* ---- sign ------------------------------------------------------------------------------- */

int
token_sign(const struct token_ring *r, const json_t *claims, struct buf *out, struct err *e)
{
    if (r == NULL || r->n == 0)
        return err_set(e, ERR_INTERNAL, "token: no key to sign with");
    if (!json_is_object(claims))
        return err_set(e, ERR_DATA, "token: the claims must be a JSON object");
    char *json = json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (json == NULL)
        return err_set(e, ERR_INTERNAL, "token: out of memory");
    int rc = ERR_OK;

    const struct token_key *k = &r->key[0];
    unsigned char mac[TOKEN_MAC_LEN];
    struct buf t;
    buf_init(&t, TOKEN_MAX);
    buf_puts(&t, VERSION_PREFIX);
    buf_puts(&t, k->kid);
    buf_putc(&t, '.');
    enc_base64_put(&t, json, strlen(json), ENC_BASE64_URL);
    free(json);
    if (t.failed || !token_hmac_sha256(k->secret, k->len, t.data, t.len, mac)) {
        rc = err_set(e, ERR_INTERNAL, "token: cannot compute the signature");
        goto done;
    }
    buf_putc(&t, '.');
    enc_base64_put(&t, mac, sizeof mac, ENC_BASE64_URL);
    if (t.failed || !buf_append(out, t.data, t.len))
        rc = err_set(e, ERR_INTERNAL, "token: out of memory or too long");
done:
    buf_free(&t);
    return rc;
}

/* ---- verify ----------------------------------------------------------------------------- */

/* The parts of "v1.<kid>.<payload>.<mac>", pointing into the token. */
struct split {
    const char *kid, *payload, *mac;
    size_t kid_len, payload_len, mac_len;
    size_t signed_len; /* of "v1.<kid>.<payload>", the text the MAC covers */
};

static enum token_status
malformed(struct err *e, const char *why)
{
    err_set(e, ERR_DATA, "token is malformed: %s", why);
    return TOKEN_MALFORMED;
}

static enum token_status
split_token(const char *token, struct split *p, struct err *e)
{
    if (token == NULL)
        return malformed(e, "missing");
    size_t len = strnlen(token, TOKEN_MAX + 1);
    if (len == 0)
        return malformed(e, "empty");
    if (len > TOKEN_MAX) {
        err_set(e, ERR_DATA, "token is malformed: longer than %d characters", TOKEN_MAX);
        return TOKEN_MALFORMED;
    }
    if (strncmp(token, VERSION_PREFIX, strlen(VERSION_PREFIX)) != 0)
        return malformed(e, "not a v1 token");
    p->kid = token + strlen(VERSION_PREFIX);
    const char *dot1 = strchr(p->kid, '.');
    const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL)
        return malformed(e, "not four parts separated by '.'");
    p->kid_len = (size_t)(dot1 - p->kid);
    p->payload = dot1 + 1;
    p->payload_len = (size_t)(dot2 - p->payload);
    p->mac = dot2 + 1;
    p->mac_len = len - (size_t)(p->mac - token);
    p->signed_len = (size_t)(dot2 - token);
    if (!kid_valid(p->kid, p->kid_len))
        return malformed(e, "bad key id");
    if (p->payload_len == 0 || p->mac_len != MAC_B64_LEN)
        return malformed(e, "bad part length");
    return TOKEN_OK;
}

static enum token_status
check_mac(const struct token_ring *r, const char *token, const struct split *p,
          const unsigned char mac[TOKEN_MAC_LEN], struct err *e)
{
    const struct token_key *k = r != NULL ? ring_find(r, p->kid, p->kid_len) : NULL;
    if (k == NULL) {
        err_set(e, ERR_DATA, "token signed by unknown key \"%.*s\"", (int)p->kid_len, p->kid);
        return TOKEN_UNKNOWN_KEY;
    }
    unsigned char want[TOKEN_MAC_LEN];
    if (!token_hmac_sha256(k->secret, k->len, token, p->signed_len, want)) {
        err_set(e, ERR_DATA, "token signature cannot be computed");
        return TOKEN_BAD_SIGNATURE;
    }
    /* Constant time: a byte-by-byte early exit would let an attacker find a valid MAC one
     * byte at a time by timing the answers. */
    if (CRYPTO_memcmp(want, mac, TOKEN_MAC_LEN) != 0) {
        err_set(e, ERR_DATA, "token signature does not match key \"%s\"", k->kid);
        return TOKEN_BAD_SIGNATURE;
    }
    return TOKEN_OK;
}

static enum token_status
verify(const struct token_ring *r, const char *token, json_t **claims, char kid[TOKEN_KID_MAX + 1],
       struct err *e)
{
    struct split p;
    enum token_status st = split_token(token, &p, e);
    if (st != TOKEN_OK)
        return st;
    unsigned char mac[TOKEN_MAC_LEN];
    unsigned char payload[TOKEN_MAX];
    size_t mac_len = 0, payload_len = 0;
    if (!enc_base64_decode(p.mac, p.mac_len, ENC_BASE64_URL, mac, sizeof mac, &mac_len) ||
        mac_len != sizeof mac)
        return malformed(e, "signature is not base64url");
    if (!enc_base64_decode(p.payload, p.payload_len, ENC_BASE64_URL, payload, sizeof payload,
                           &payload_len))
        return malformed(e, "payload is not base64url");
    st = check_mac(r, token, &p, mac, e);
    if (st != TOKEN_OK)
        return st;
    json_error_t jerr;
    json_t *o = json_loadb((const char *)payload, payload_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return malformed(e, "signed payload is not a JSON object");
    }
    memcpy(kid, p.kid, p.kid_len);
    kid[p.kid_len] = '\0';
    *claims = o;
    return TOKEN_OK;
}

enum token_status
token_verify(const struct token_ring *r, const char *token, json_t **claims,
             char kid[TOKEN_KID_MAX + 1], struct err *e)
{
    json_t *o = NULL;
    char k[TOKEN_KID_MAX + 1] = "";
    enum token_status st = verify(r, token, &o, k, e);
    if (claims != NULL)
        *claims = o;
    else
        json_decref(o);
    if (kid != NULL)
        memcpy(kid, k, sizeof k);
    return st;
}
