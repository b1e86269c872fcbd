/* Unit tests for common/token: the HMAC-SHA256 primitive against RFC 4231, key-ring parsing,
 * and signing and verifying claims the module does not read: any JSON object goes through
 * unchanged, anything else is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "support.h"

#include "buf.h"
#include "enc.h"
#include "err.h"
#include "token.h"

#define SECRET_A "rotate-me-2026-0123456789abcdef0123456789"
#define SECRET_B "older-key-2025-fedcba9876543210fedcba9876"

/* ---- helpers ---------------------------------------------------------------------------- */

static struct token_ring *
ring_ok(const char *spec)
{
    struct token_ring *r = NULL;
    struct err e = {0};
    if (token_ring_parse(spec, &r, &e) != ERR_OK)
        fail_msg("token_ring_parse: %s", e.msg);
    return r;
}

/* A new token (free()) carrying claims, signed by the ring's first key. */
static char *
sign_ok(const struct token_ring *r, const json_t *claims)
{
    struct buf b;
    struct err e = {0};
    buf_init(&b, 0);
    if (token_sign(r, claims, &b, &e) != ERR_OK)
        fail_msg("token_sign: %s", e.msg);
    return buf_steal(&b);
}

static void
hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

/* A correctly signed token around any payload text. */
static char *
forge(const char *kid, const char *secret, const char *payload)
{
    struct buf b;
    unsigned char mac[TOKEN_MAC_LEN];
    buf_init(&b, 0);
    buf_printf(&b, "v1.%s.", kid);
    enc_base64_put(&b, payload, strlen(payload), ENC_BASE64_URL);
    assert_true(token_hmac_sha256(secret, strlen(secret), b.data, b.len, mac));
    buf_putc(&b, '.');
    enc_base64_put(&b, mac, sizeof mac, ENC_BASE64_URL);
    return buf_steal(&b);
}

/* ---- the primitive ---------------------------------------------------------------------- */

static void
test_token_hmac_sha256_matches_rfc4231(void **state)
{
    (void)state;
    unsigned char key20[20], key131[131];
    memset(key20, 0x0b, sizeof key20);
    memset(key131, 0xaa, sizeof key131);
    const struct {
        const void *key;
        size_t key_len;
        const char *data;
        const char *mac;
    } cases[] = {
        /* 4.2 Test Case 1 */
        {key20, sizeof key20, "Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        /* 4.3 Test Case 2: a key shorter than the MAC */
        {"Jefe", 4, "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        /* 4.7 Test Case 6: a key longer than the block, hashed first */
        {key131, sizeof key131, "Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        /* 4.8 Test Case 7 */
        {key131, sizeof key131,
         "This is a test using a larger than block-size key and a larger than block-size data. "
         "The key needs to be hashed before being used by the HMAC algorithm.",
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char mac[TOKEN_MAC_LEN];
        char text[2 * TOKEN_MAC_LEN + 1];
        assert_true(token_hmac_sha256(cases[i].key, cases[i].key_len, cases[i].data,
                                      strlen(cases[i].data), mac));
        hex(mac, sizeof mac, text);
        assert_string_equal(text, cases[i].mac);
    }
}

/* ---- opaque claims ---------------------------------------------------------------------- */

static void
test_token_round_trip_gives_back_any_object_in_its_order(void **state)
{
    (void)state;
    struct token_ring *r = ring_ok("k2:" SECRET_A ",k1:" SECRET_B);
    json_t *in = json_pack("{s:s,s:i,s:[i,i],s:{s:b}}", "z", "last-first", "n", 7, "list", 1, 2,
                           "nested", "ok", 1);
    char *t = sign_ok(r, in);
    assert_true(strncmp(t, "v1.k2.", 6) == 0);
    json_t *out = NULL;
    char kid[TOKEN_KID_MAX + 1];
    struct err e = {0};
    assert_int_equal(token_verify(r, t, &out, kid, &e), TOKEN_OK);
    assert_string_equal(kid, "k2");
    assert_true(json_equal(in, out));
    char *text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(text,
                        "{\"z\":\"last-first\",\"n\":7,\"list\":[1,2],\"nested\":{\"ok\":true}}");
    free(text);
    json_decref(out);
    json_decref(in);
    free(t);
    token_ring_free(r);
}

static void
test_token_sign_refuses_claims_that_are_not_an_object(void **state)
{
    (void)state;
    struct token_ring *r = ring_ok(SECRET_A);
    json_t *arr = json_array();
    struct buf b;
    struct err e = {0};
    buf_init(&b, 0);
    assert_int_equal(token_sign(r, arr, &b, &e), ERR_DATA);
    assert_int_equal(token_sign(r, NULL, &b, &e), ERR_DATA);
    assert_int_equal(b.len, 0);
    json_t *o = json_object();
    assert_int_equal(token_sign(NULL, o, &b, &e), ERR_INTERNAL);
    buf_free(&b);
    json_decref(o);
    json_decref(arr);
    token_ring_free(r);
}

static void
test_token_verify_refuses_a_signed_payload_that_is_not_an_object(void **state)
{
    (void)state;
    struct token_ring *r = ring_ok(SECRET_A);
    const char *payloads[] = {"not json", "[]", "7", "{\"a\":1,\"a\":2}", "{} trailing"};
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        char *t = forge("k1", SECRET_A, payloads[i]);
        json_t *out = json_object(); /* comes back NULL */
        json_t *keep = out;
        char kid[TOKEN_KID_MAX + 1] = "x";
        struct err e = {0};
        assert_int_equal(token_verify(r, t, &out, kid, &e), TOKEN_MALFORMED);
        assert_null(out);
        assert_string_equal(kid, "");
        assert_int_equal(e.code, ERR_DATA);
        json_decref(keep);
        free(t);
    }
    char *t = forge("k1", SECRET_A, "{ }");
    assert_int_equal(token_verify(r, t, NULL, NULL, NULL), TOKEN_OK);
    free(t);
    token_ring_free(r);
}

static void
test_token_tampering_and_unknown_keys_are_refused(void **state)
{
    (void)state;
    struct token_ring *r = ring_ok("k2:" SECRET_A);
    struct token_ring *other = ring_ok("k2:" SECRET_B);
    json_t *in = json_pack("{s:s}", "a", "b");
    char *t = sign_ok(r, in);
    struct err e = {0};
    assert_int_equal(token_verify(other, t, NULL, NULL, &e), TOKEN_BAD_SIGNATURE);
    assert_string_equal(e.msg, "token signature does not match key \"k2\"");
    char *old = forge("k1", SECRET_B, "{}");
    assert_int_equal(token_verify(r, old, NULL, NULL, &e), TOKEN_UNKNOWN_KEY);
    assert_string_equal(e.msg, "token signed by unknown key \"k1\"");
    t[strlen(t) - 1] = t[strlen(t) - 1] == 'A' ? 'Q' : 'A';
    enum token_status st = token_verify(r, t, NULL, NULL, &e);
    assert_true(st == TOKEN_BAD_SIGNATURE || st == TOKEN_MALFORMED);
    assert_int_equal(token_verify(r, "v1.k2", NULL, NULL, &e), TOKEN_MALFORMED);
    free(old);
    free(t);
    json_decref(in);
    token_ring_free(other);
    token_ring_free(r);
}

static void
test_token_status_names_are_stable(void **state)
{
    (void)state;
    assert_string_equal(token_status_str(TOKEN_OK), "ok");
    assert_string_equal(token_status_str(TOKEN_MALFORMED), "malformed");
    assert_string_equal(token_status_str(TOKEN_UNKNOWN_KEY), "unknown_key");
    assert_string_equal(token_status_str(TOKEN_BAD_SIGNATURE), "bad_signature");
}

/* ---- key rings -------------------------------------------------------------------------- */

static void
test_token_ring_errors_name_the_key_never_the_secret(void **state)
{
    (void)state;
    const struct {
        const char *spec;
        const char *msg;
    } cases[] = {
        {"", "is empty"},
        {"tooshort-s3cr3t", "must be at least 32 characters (try: openssl rand -hex 32)"},
        {"k2:" SECRET_A ",k1:tooshort-s3cr3t",
         "key \"k1\": must be at least 32 characters (try: openssl rand -hex 32)"},
        {"k1:" SECRET_A ",k1:" SECRET_B, "key id \"k1\" appears twice"},
        {"k1:" SECRET_A ",", "entry 2 is empty (stray ',')"},
        {"k1:" SECRET_A ",,k2:" SECRET_B, "entry 2 is empty (stray ',')"},
        {"k1:" SECRET_A ",tooshort-s3cr3t", "entry 2 is not kid:secret"},
        {"k1:" SECRET_A ",bad kid s3cr3t:" SECRET_B,
         "entry 2: the key id must be 1 to 16 of A-Z a-z 0-9 _ -"},
        {"k1:" SECRET_A ",:" SECRET_B, "entry 2: the key id must be 1 to 16 of A-Z a-z 0-9 _ -"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static char sentinel;
        struct token_ring *r = (struct token_ring *)(void *)&sentinel; /* comes back NULL */
        struct err e = {0};
        assert_int_equal(token_ring_parse(cases[i].spec, &r, &e), ERR_CONFIG);
        assert_null(r);
        assert_string_equal(e.msg, cases[i].msg);
        assert_string_lacks(e.msg, "s3cr3t");
        assert_string_lacks(e.msg, "0123456789");
    }
}

static void
test_token_ring_holds_at_most_sixteen_keys(void **state)
{
    (void)state;
    struct buf spec;
    buf_init(&spec, 0);
    for (int i = 0; i < TOKEN_RING_MAX; i++)
        buf_printf(&spec, "%sk%d:%s", i ? "," : "", i, SECRET_A);
    struct token_ring *r = ring_ok(buf_str(&spec));
    assert_int_equal(token_ring_count(r), TOKEN_RING_MAX);
    assert_string_equal(token_ring_kid(r, 0), "k0");
    token_ring_free(r);
    buf_printf(&spec, ",k99:%s", SECRET_A);
    struct err e = {0};
    assert_int_equal(token_ring_parse(buf_str(&spec), &r, &e), ERR_CONFIG);
    assert_string_equal(e.msg, "more than 16 keys");
    buf_free(&spec);
    token_ring_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_hmac_sha256_matches_rfc4231),
        cmocka_unit_test(test_token_round_trip_gives_back_any_object_in_its_order),
        cmocka_unit_test(test_token_sign_refuses_claims_that_are_not_an_object),
        cmocka_unit_test(test_token_verify_refuses_a_signed_payload_that_is_not_an_object),
        cmocka_unit_test(test_token_tampering_and_unknown_keys_are_refused),
        cmocka_unit_test(test_token_status_names_are_stable),
        cmocka_unit_test(test_token_ring_errors_name_the_key_never_the_secret),
        cmocka_unit_test(test_token_ring_holds_at_most_sixteen_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
