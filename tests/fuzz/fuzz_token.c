/* libFuzzer target: common/token and the link claims over it (worker/links). Field 0 (up
 * to the first NUL) is control: byte 0 the mode, byte 1 the purpose asked for, bytes 2-9
 * "now" (little-endian seconds), byte 10 the signing key, byte 11 the claims' purpose. The
 * rest, by mode (byte 0 % 4):
 *
 *   0  field 1 is a token, verified as it is
 *   1  everything after field 0 is a payload, signed here with key k1, k2 (both in the
 *      ring) or k3 (not in it) into "v1.<kid>.<payload>.<mac>" and verified, so the JSON
 *      reader behind the MAC check is reached
 *   2  fields 1-3 are order, orchestration and stage, bytes 2-9 iat and bytes 12-19 exp:
 *      links_sign, then links_verify must give the claims back
 *   3  field 1 is a key ring spec for token_ring_parse
 *
 * Every verdict is checked against token.h and links.h: authentic claims are in range, the
 * others are zeroed, an error message never quotes a secret, and a correctly signed token
 * is never reported as forged. */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "fuzz_util.h"
#include "links.h"
#include "token.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char SECRET1[] = "0c6b1e7f4a92d3580e1f7a6c2b9d4e03";
static const char SECRET2[] = "f3e2d1c0b9a8978685746352413020a1b2";
static const char SECRET3[] = "not-in-the-ring-7b1c8e2d9f4a6b3c0e5d";
static const char *const KIDS[3] = {"k1", "k2", "k3"};
static const char *const SECRETS[3] = {SECRET1, SECRET2, SECRET3};

static struct token_ring *ring;   /* k1 signs, k2 verifies */
static struct token_ring *ring_2; /* k2 signs: re-signs what k2 signed */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char spec[256];
    struct err e;
    snprintf(spec, sizeof spec, "k1:%s,k2:%s", SECRET1, SECRET2);
    if (token_ring_parse(spec, &ring, &e) != ERR_OK)
        abort();
    snprintf(spec, sizeof spec, "k2:%s,k1:%s", SECRET2, SECRET1);
    if (token_ring_parse(spec, &ring_2, &e) != ERR_OK)
        abort();
    return 0;
}

static bool
field_ok(const char *s)
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
claims_ok(const struct links_claims *c)
{
    return (c->purpose == LINKS_PURPOSE_RESUME || c->purpose == LINKS_PURPOSE_UNSUBSCRIBE) &&
           field_ok(c->order_id) && field_ok(c->orchestration_id) && field_ok(c->stage) &&
           c->issued_at >= 0 && c->issued_at <= c->expires_at && c->expires_at <= LINKS_EXP_MAX;
}

static bool
is_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

static bool
claims_equal(const struct links_claims *a, const struct links_claims *b)
{
    return a->purpose == b->purpose && strcmp(a->order_id, b->order_id) == 0 &&
           strcmp(a->orchestration_id, b->orchestration_id) == 0 &&
           strcmp(a->stage, b->stage) == 0 && a->issued_at == b->issued_at &&
           a->expires_at == b->expires_at;
}

/* Verifies token and checks the verdict against the contract; returns the status. */
static enum links_status
check_verify(const char *token, time_t now, enum links_purpose want, struct links_claims *out)
{
    struct err e;
    err_clear(&e);
    struct links_claims c;
    memset(&c, 0xA5, sizeof c);
    enum links_status st = links_verify(ring, token, now, want, &c, &e);
    FUZZ_REQUIRE(st >= LINKS_OK && st <= LINKS_WRONG_PURPOSE, "status %d", (int)st);
    FUZZ_REQUIRE(links_verify(ring, token, now, want, NULL, NULL) == st,
                 "verdict changes without out and e");
    for (int k = 0; k < 3; k++)
        FUZZ_REQUIRE(strstr(e.msg, SECRETS[k]) == NULL, "error message quotes a secret");
    if (st == LINKS_OK)
        FUZZ_REQUIRE(e.code == ERR_OK, "OK with an error set");
    else
        FUZZ_REQUIRE(e.code == ERR_DATA && e.msg[0] != '\0', "status %s without ERR_DATA",
                     links_status_str(st));
    bool authentic = st == LINKS_OK || st == LINKS_EXPIRED || st == LINKS_WRONG_PURPOSE;
    if (!authentic) {
        FUZZ_REQUIRE(is_zero(&c, sizeof c), "claims not zeroed on %s", links_status_str(st));
        if (out != NULL)
            *out = c;
        return st;
    }
    FUZZ_REQUIRE(claims_ok(&c), "authentic token with claims out of range");
    FUZZ_REQUIRE(strcmp(c.kid, "k1") == 0 || strcmp(c.kid, "k2") == 0, "kid %s", c.kid);
    FUZZ_REQUIRE(memchr(token, '\0', TOKEN_MAX + 1) != NULL, "authentic token too long");
    switch (st) {
    case LINKS_OK:
        FUZZ_REQUIRE((long long)now < c.expires_at, "OK but expired");
        FUZZ_REQUIRE(want == LINKS_PURPOSE_ANY || want == c.purpose, "OK but wrong purpose");
        break;
    case LINKS_EXPIRED:
        FUZZ_REQUIRE((long long)now >= c.expires_at, "EXPIRED but current");
        break;
    default:
        FUZZ_REQUIRE((long long)now < c.expires_at && want != LINKS_PURPOSE_ANY &&
                         want != c.purpose,
                     "WRONG_PURPOSE but it is not");
        break;
    }
    /* Signed again by the same key, the claims must verify to the same verdict. */
    struct buf again;
    buf_init(&again, 0);
    struct err se;
    int rc = links_sign(strcmp(c.kid, "k1") == 0 ? ring : ring_2, &c, &again, &se);
    FUZZ_REQUIRE(rc == ERR_OK, "cannot re-sign authentic claims: %s", se.msg);
    struct links_claims c2;
    enum links_status st2 = links_verify(ring, buf_str(&again), now, want, &c2, NULL);
    FUZZ_REQUIRE(st2 == st && claims_equal(&c, &c2) && strcmp(c.kid, c2.kid) == 0,
                 "re-signed claims verify differently");
    buf_free(&again);
    if (out != NULL)
        *out = c;
    return st;
}

static void
b64url(struct buf *out, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned long)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        buf_putc(out, tab[(v >> 18) & 63]);
        buf_putc(out, tab[(v >> 12) & 63]);
        if (i + 1 < n)
            buf_putc(out, tab[(v >> 6) & 63]);
        if (i + 2 < n)
            buf_putc(out, tab[v & 63]);
    }
}

static int64_t
le64(const struct fuzz_fields *ff, size_t at, int64_t def)
{
    if (ff->n == 0 || ff->len[0] < at + 8)
        return def;
    uint64_t u = 0;
    for (size_t i = 8; i-- > 0;)
        u = (u << 8) | fuzz_byte(ff, 0, at + i, 0);
    int64_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static void
mode_signed_payload(const uint8_t *payload, size_t n, size_t key, time_t now,
                    enum links_purpose want)
{
    struct buf t;
    buf_init(&t, 0);
    buf_printf(&t, "v1.%s.", KIDS[key]);
    b64url(&t, payload, n);
    unsigned char mac[TOKEN_MAC_LEN];
    if (!token_hmac_sha256(SECRETS[key], strlen(SECRETS[key]), t.data, t.len, mac))
        abort();
    buf_putc(&t, '.');
    b64url(&t, mac, sizeof mac);
    FUZZ_REQUIRE(!t.failed, "out of memory");
    enum links_status st = check_verify(t.data, now, want, NULL);
    if (t.len > TOKEN_MAX || n == 0)
        FUZZ_REQUIRE(st == LINKS_MALFORMED, "overlong or empty token not malformed");
    else if (key == 2)
        FUZZ_REQUIRE(st == LINKS_UNKNOWN_KEY, "k3 token: %s", links_status_str(st));
    else
        FUZZ_REQUIRE(st != LINKS_UNKNOWN_KEY && st != LINKS_BAD_SIGNATURE,
                     "correctly signed token reported as %s", links_status_str(st));
    buf_free(&t);
}

static void
mode_sign(const struct fuzz_fields *ff, time_t now, enum links_purpose want)
{
    struct links_claims c;
    memset(&c, 0, sizeof c);
    c.purpose = (enum links_purpose)(fuzz_byte(ff, 0, 11, 1) % 4);
    snprintf(c.order_id, sizeof c.order_id, "%s", fuzz_field(ff, 1, "5f0c"));
    snprintf(c.orchestration_id, sizeof c.orchestration_id, "%s", fuzz_field(ff, 2, "9a1e"));
    snprintf(c.stage, sizeof c.stage, "%s", fuzz_field(ff, 3, "payment"));
    c.issued_at = (long long)now;
    c.expires_at = le64(ff, 12, (long long)now > LLONG_MAX - 86400 ? LLONG_MAX : now + 86400);
    struct buf t;
    buf_init(&t, 0);
    struct err e;
    err_clear(&e);
    int rc = links_sign(ring, &c, &t, &e);
    bool valid = claims_ok(&c);
    FUZZ_REQUIRE((rc == ERR_OK) == valid, "token_sign %s valid claims: %s",
                 rc == ERR_OK ? "accepted in" : "refused", e.msg);
    if (rc != ERR_OK) {
        FUZZ_REQUIRE(rc == ERR_DATA && t.len == 0, "token_sign failed badly");
        buf_free(&t);
        return;
    }
    FUZZ_REQUIRE(t.len <= TOKEN_MAX, "token of %zu characters", t.len);
    struct links_claims got;
    enum links_status st = check_verify(t.data, now, want, &got);
    bool current = c.issued_at < c.expires_at;
    FUZZ_REQUIRE(st == (!current                                         ? LINKS_EXPIRED
                        : want != LINKS_PURPOSE_ANY && want != c.purpose ? LINKS_WRONG_PURPOSE
                                                                         : LINKS_OK),
                 "fresh token verified as %s", links_status_str(st));
    FUZZ_REQUIRE(claims_equal(&c, &got) && strcmp(got.kid, "k1") == 0, "claims do not round-trip");
    buf_free(&t);
}

static void
mode_ring(const char *spec)
{
    struct token_ring *r = (struct token_ring *)1;
    struct err e;
    err_clear(&e);
    int rc = token_ring_parse(spec, &r, &e);
    if (rc != ERR_OK) {
        FUZZ_REQUIRE(rc == ERR_CONFIG && r == NULL && e.msg[0] != '\0', "bad ring failure");
        return;
    }
    size_t n = token_ring_count(r);
    FUZZ_REQUIRE(n >= 1 && n <= TOKEN_RING_MAX, "ring of %zu keys", n);
    for (size_t i = 0; i < n; i++) {
        const char *kid = token_ring_kid(r, i);
        FUZZ_REQUIRE(kid != NULL && kid[0] != '\0' && strlen(kid) <= TOKEN_KID_MAX, "bad kid");
        for (size_t j = 0; j < i; j++)
            FUZZ_REQUIRE(strcmp(kid, token_ring_kid(r, j)) != 0, "kid %s twice", kid);
    }
    FUZZ_REQUIRE(token_ring_kid(r, n) == NULL, "kid past the end");
    /* A parsed ring signs, and verifies its own tokens. */
    struct links_claims c = {.purpose = LINKS_PURPOSE_RESUME,
                             .order_id = "o",
                             .orchestration_id = "c",
                             .stage = "payment",
                             .issued_at = 100,
                             .expires_at = 200};
    struct buf t;
    buf_init(&t, 0);
    struct err se;
    FUZZ_REQUIRE(links_sign(r, &c, &t, &se) == ERR_OK, "parsed ring cannot sign: %s", se.msg);
    struct links_claims got;
    FUZZ_REQUIRE(links_verify(r, buf_str(&t), 150, LINKS_PURPOSE_RESUME, &got, NULL) == LINKS_OK,
                 "parsed ring does not verify its own token");
    buf_free(&t);
    token_ring_free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_fields ff;
    fuzz_fields_split(&ff, data, size);
    int mode = fuzz_byte(&ff, 0, 0, 0) % 4;
    enum links_purpose want = (enum links_purpose)(fuzz_byte(&ff, 0, 1, 0) % 3);
    time_t now = (time_t)le64(&ff, 2, 1767225600);
    switch (mode) {
    case 0:
        check_verify(fuzz_field(&ff, 1, ""), now, want, NULL);
        break;
    case 1: {
        size_t skip = ff.n > 0 ? ff.len[0] + 1 : 0;
        size_t key = fuzz_byte(&ff, 0, 10, 0) % 3;
        if (skip <= size)
            mode_signed_payload(data + skip, size - skip, key, now, want);
        break;
    }
    case 2:
        mode_sign(&ff, now, want);
        break;
    default:
        mode_ring(fuzz_field(&ff, 1, ""));
        break;
    }
    fuzz_fields_free(&ff);
    return 0;
}
