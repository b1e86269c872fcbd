/* Unit tests for worker/links: resume and unsubscribe URLs with and without a key ring,
 * '?' versus '&', fragments, percent-encoding, the tokens they carry, and that the result
 * is accepted by the prompt as it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#include "buf.h"
#include "err.h"
#include "links.h"
#include "prompt.h"
#include "settings.h"
#include "token.h"

#define SECRET "links-test-secret-0123456789abcdef0123456789"
#define OLD_SECRET "links-older-secret-fedcba9876543210fedcba98"
#define ORDER "5f0c6f0e-3b7a-4a53-9d2e-6f1c2b8a9e01"
#define ORCH "9a1e2d3c-4b5a-4697-8a7b-1c2d3e4f5a6b"
#define NOW 1767225600LL
#define DAY_MS (86400LL * 1000)

static const struct links_target TARGET = {ORDER, ORCH, "payment"};

/* The key rings settings_with parsed, freed once the group is done. */
static struct token_ring *rings[32];
static size_t nrings;

static int
free_rings(void **state)
{
    (void)state;
    while (nrings > 0)
        token_ring_free(rings[--nrings]);
    return 0;
}

/* Settings as settings_load would leave them, the key ring parsed; strings point at
 * literals, never freed. */
static struct settings
settings_with(const char *resume_url, const char *unsubscribe_url, const char *secret)
{
    struct settings s;
    memset(&s, 0, sizeof s);
    if (secret != NULL) {
        struct err e = {0};
        assert_true(nrings < sizeof rings / sizeof *rings);
        if (token_ring_parse(secret, &s.link_keys, &e) != ERR_OK)
            fail_msg("token_ring_parse: %s", e.msg);
        rings[nrings++] = s.link_keys;
    }
    s.resume_url = (char *)resume_url;
    s.unsubscribe_url = (char *)unsubscribe_url;
    s.resume_link_secret = (char *)secret;
    s.resume_link_ttl_ms = 30 * DAY_MS;
    s.unsubscribe_link_ttl_ms = 365 * DAY_MS;
    return s;
}

static struct links *
links_ok(const struct settings *s)
{
    struct err e = {0};
    struct links *l = links_new(s, &e);
    if (l == NULL)
        fail_msg("links_new: %s", e.msg);
    return l;
}

/* The resume URL for TARGET (new; free()). */
static char *
resume(const struct links *l)
{
    struct buf b;
    struct err e = {0};
    buf_init(&b, 0);
    if (links_resume_url(l, &TARGET, (time_t)NOW, &b, &e) != ERR_OK)
        fail_msg("links_resume_url: %s", e.msg);
    return buf_steal(&b);
}

static char *
unsubscribe(const struct links *l)
{
    struct buf b;
    struct err e = {0};
    buf_init(&b, 0);
    if (links_unsubscribe_url(l, &TARGET, (time_t)NOW, &b, &e) != ERR_OK)
        fail_msg("links_unsubscribe_url: %s", e.msg);
    return buf_steal(&b);
}

/* Verifies the token=... parameter of url with secret's ring; returns its claims. */
static struct links_claims
token_in(const char *url, const char *secret, enum links_purpose want)
{
    const char *t = strstr(url, "token=");
    assert_non_null(t);
    t += strlen("token=");
    char token[TOKEN_MAX + 1];
    size_t n = strcspn(t, "&#");
    assert_true(n <= TOKEN_MAX);
    memcpy(token, t, n);
    token[n] = '\0';
    struct token_ring *r = NULL;
    struct err e = {0};
    assert_int_equal(token_ring_parse(secret, &r, &e), ERR_OK);
    struct links_claims c;
    enum links_status st = links_verify(r, token, (time_t)NOW, want, &c, &e);
    if (st != LINKS_OK)
        fail_msg("links_verify: %s", e.msg);
    token_ring_free(r);
    return c;
}

/* ---- resume ----------------------------------------------------------------------------- */

static void
test_links_resume_url_without_secret_carries_the_order_only(void **state)
{
    (void)state;
    struct settings s = settings_with("https://shop.example/checkout", NULL, NULL);
    struct links *l = links_ok(&s);
    assert_false(links_signed(l));
    char *url = resume(l);
    assert_string_equal(url, "https://shop.example/checkout?order=" ORDER);
    free(url);
    links_free(l);
}

static void
test_links_resume_url_with_secret_carries_a_resume_token(void **state)
{
    (void)state;
    struct settings s = settings_with("https://shop.example/checkout", NULL, SECRET);
    struct links *l = links_ok(&s);
    assert_true(links_signed(l));
    char *url = resume(l);
    const char *prefix = "https://shop.example/checkout?order=" ORDER "&token=v1.k1.";
    assert_true(strncmp(url, prefix, strlen(prefix)) == 0);
    struct links_claims c = token_in(url, SECRET, LINKS_PURPOSE_RESUME);
    assert_int_equal(c.purpose, LINKS_PURPOSE_RESUME);
    assert_string_equal(c.order_id, ORDER);
    assert_string_equal(c.orchestration_id, ORCH);
    assert_string_equal(c.stage, "payment");
    assert_int_equal(c.issued_at, NOW);
    assert_int_equal(c.expires_at, NOW + 30 * 86400);
    free(url);
    links_free(l);
}

static void
test_links_query_separator_follows_the_base_url(void **state)
{
    (void)state;
    const struct {
        const char *base, *want;
    } cases[] = {
        {"https://shop.example/checkout", "https://shop.example/checkout?order=o-1"},
        {"https://shop.example/checkout?", "https://shop.example/checkout?order=o-1"},
        {"https://shop.example/c?utm=mail", "https://shop.example/c?utm=mail&order=o-1"},
        {"https://shop.example/c?utm=mail&", "https://shop.example/c?utm=mail&order=o-1"},
        /* the query goes before a fragment, which stays last */
        {"https://shop.example/app#/checkout", "https://shop.example/app?order=o-1#/checkout"},
        {"https://shop.example/app?x=1#/c?y=2", "https://shop.example/app?x=1&order=o-1#/c?y=2"},
    };
    struct links_target t = {"o-1", ORCH, "payment"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct settings s = settings_with(cases[i].base, NULL, NULL);
        struct links *l = links_ok(&s);
        struct buf b;
        struct err e = {0};
        buf_init(&b, 0);
        assert_int_equal(links_resume_url(l, &t, (time_t)NOW, &b, &e), ERR_OK);
        assert_string_equal(buf_str(&b), cases[i].want);
        buf_free(&b);
        links_free(l);
    }
}

static void
test_links_values_are_percent_encoded(void **state)
{
    (void)state;
    struct settings s = settings_with("https://shop.example/checkout", NULL, NULL);
    struct links *l = links_ok(&s);
    struct links_target t = {"a b&c=d/e?f#g%h+\xc3\xa9~._-", ORCH, "payment"};
    struct buf b;
    struct err e = {0};
    buf_init(&b, 0);
    assert_int_equal(links_resume_url(l, &t, (time_t)NOW, &b, &e), ERR_OK);
    assert_string_equal(buf_str(&b), "https://shop.example/checkout?order="
                                     "a%20b%26c%3Dd%2Fe%3Ff%23g%25h%2B%C3%A9~._-");
    buf_free(&b);
    links_free(l);

    /* signed: the order is escaped in its parameter and carried intact in the token */
    s = settings_with("https://shop.example/checkout", NULL, SECRET);
    l = links_ok(&s);
    struct links_target t2 = {"A&B=C", ORCH, "payment"};
    buf_init(&b, 0);
    assert_int_equal(links_resume_url(l, &t2, (time_t)NOW, &b, &e), ERR_OK);
    assert_string_contains(buf_str(&b), "?order=A%26B%3DC&token=v1.k1.");
    struct links_claims c = token_in(buf_str(&b), SECRET, LINKS_PURPOSE_RESUME);
    assert_string_equal(c.order_id, "A&B=C");
    buf_free(&b);
    links_free(l);
}

static void
test_links_target_that_cannot_be_signed_is_err_data(void **state)
{
    (void)state;
    struct settings s = settings_with("https://shop.example/checkout", NULL, SECRET);
    struct links *l = links_ok(&s);
    const struct links_target bad[] = {
        {NULL, ORCH, "payment"},
        {"", ORCH, "payment"},
        {ORDER, NULL, "payment"},
        {ORDER, ORCH, ""},
        {"has space", ORCH, "payment"},
        {ORDER, ORCH, "a-stage-name-that-is-far-too-long-to-fit-into-a-token-claim-field"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct buf b;
        struct err e = {0};
        buf_init(&b, 0);
        assert_int_equal(links_resume_url(l, &bad[i], (time_t)NOW, &b, &e), ERR_DATA);
        assert_int_equal(b.len, 0);
        buf_free(&b);
    }
    links_free(l);
}

static void
test_links_url_longer_than_the_buffer_is_err_data(void **state)
{
    (void)state;
    struct settings s = settings_with("https://shop.example/checkout", NULL, SECRET);
    struct links *l = links_ok(&s);
    struct buf b;
    struct err e = {0};
    buf_init(&b, 64);
    assert_int_equal(links_resume_url(l, &TARGET, (time_t)NOW, &b, &e), ERR_DATA);
    assert_string_equal(e.msg, "links: resume link does not fit its buffer");
    buf_free(&b);
    links_free(l);
}

/* ---- unsubscribe ------------------------------------------------------------------------ */

static void
test_links_unsubscribe_url_carries_an_unsubscribe_token(void **state)
{
    (void)state;
    struct settings s =
        settings_with("https://shop.example/checkout", "https://shop.example/unsubscribe", SECRET);
    struct links *l = links_ok(&s);
    assert_true(links_has_unsubscribe(l));
    char *url = unsubscribe(l);
    const char *prefix = "https://shop.example/unsubscribe?token=v1.k1.";
    assert_true(strncmp(url, prefix, strlen(prefix)) == 0);
    assert_string_lacks(url, "order=");
    struct links_claims c = token_in(url, SECRET, LINKS_PURPOSE_UNSUBSCRIBE);
    assert_int_equal(c.purpose, LINKS_PURPOSE_UNSUBSCRIBE);
    assert_string_equal(c.order_id, ORDER);
    assert_int_equal(c.expires_at, NOW + 365 * 86400);
    free(url);

    /* a base with a query gets '&' */
    s.unsubscribe_url = (char *)"https://shop.example/u?list=recovery";
    url = unsubscribe(l);
    assert_true(strncmp(url, "https://shop.example/u?list=recovery&token=v1.k1.", 49) == 0);
    free(url);
    links_free(l);
}

static void
test_links_unsubscribe_url_is_empty_when_not_configured(void **state)
{
    (void)state;
    struct settings s = settings_with("https://shop.example/checkout", NULL, SECRET);
    struct links *l = links_ok(&s);
    assert_false(links_has_unsubscribe(l));
    char *url = unsubscribe(l);
    assert_string_equal(url, ""); /* nothing appended */
    free(url);
    links_free(l);
}

static void
test_links_unsubscribe_url_without_secret_is_config_error(void **state)
{
    (void)state;
    struct settings s =
        settings_with("https://shop.example/checkout", "https://shop.example/unsubscribe", NULL);
    struct links *l = links_ok(&s);
    struct buf b;
    struct err e = {0};
    buf_init(&b, 0);
    assert_int_equal(links_unsubscribe_url(l, &TARGET, (time_t)NOW, &b, &e), ERR_CONFIG);
    assert_string_contains(e.msg, "RESUME_LINK_SECRET");
    assert_int_equal(b.len, 0);
    buf_free(&b);
    links_free(l);
}

/* ---- the key ring ----------------------------------------------------------------------- */

static void
test_links_sign_with_the_first_key_of_the_ring(void **state)
{
    (void)state;
    struct settings s =
        settings_with("https://shop.example/checkout", "https://shop.example/unsubscribe",
                      "k2:" SECRET ",k1:" OLD_SECRET);
    struct links *l = links_ok(&s);
    char *url = resume(l);
    assert_string_contains(url, "&token=v1.k2.");
    /* verified by the full ring and by the new key alone, not by the old key alone */
    token_in(url, "k2:" SECRET ",k1:" OLD_SECRET, LINKS_PURPOSE_RESUME);
    token_in(url, "k2:" SECRET, LINKS_PURPOSE_RESUME);
    struct token_ring *old = NULL;
    struct err e = {0};
    assert_int_equal(token_ring_parse("k1:" OLD_SECRET, &old, &e), ERR_OK);
    const char *t = strstr(url, "token=") + strlen("token=");
    assert_int_equal(links_verify(old, t, (time_t)NOW, LINKS_PURPOSE_RESUME, NULL, &e),
                     LINKS_UNKNOWN_KEY);
    token_ring_free(old);
    free(url);
    links_free(l);
}

/* ---- with the prompt -------------------------------------------------------------------- */

/* The links go into a prompt unchanged: url_ok accepts them and List-Unsubscribe holds the
 * signed URL with the RFC 8058 one-click header. */
static void
test_links_are_accepted_by_the_prompt(void **state)
{
    (void)state;
    struct settings s =
        settings_with("https://shop.example/checkout", "https://shop.example/unsubscribe", SECRET);
    struct links *l = links_ok(&s);
    char *r = resume(l);
    char *u = unsubscribe(l);
    struct err e = {0};
    struct prompt_templates *t = prompt_templates_load(NULL, &e);
    assert_non_null(t);
    struct prompt_input in = {
        .stage = "payment",
        .member_name = "Member",
        .member_email = "member@example.com",
        .order_id = ORDER,
        .order_number = "SO-1",
        .total = "10.00",
        .currency = "EUR",
        .resume_url = r,
        .unsubscribe_url = u,
        .sender_email = "checkout@shop.example",
        .sender_name = "Shop",
        .message_id = "recovery.1.2@shop.example",
        .date = (time_t)NOW,
    };
    struct buf msg;
    buf_init(&msg, 0);
    if (prompt_render(t, &in, &msg, &e) != ERR_OK)
        fail_msg("prompt_render: %s", e.msg);
    struct buf want;
    buf_init(&want, 0);
    buf_printf(&want,
               "\r\nList-Unsubscribe: <%s>\r\n"
               "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
               u);
    assert_string_contains(buf_str(&msg), buf_str(&want));
    buf_free(&want);
    buf_free(&msg);
    prompt_templates_free(t);
    free(r);
    free(u);
    links_free(l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_links_resume_url_without_secret_carries_the_order_only),
        cmocka_unit_test(test_links_resume_url_with_secret_carries_a_resume_token),
        cmocka_unit_test(test_links_query_separator_follows_the_base_url),
        cmocka_unit_test(test_links_values_are_percent_encoded),
        cmocka_unit_test(test_links_target_that_cannot_be_signed_is_err_data),
        cmocka_unit_test(test_links_url_longer_than_the_buffer_is_err_data),
        cmocka_unit_test(test_links_unsubscribe_url_carries_an_unsubscribe_token),
        cmocka_unit_test(test_links_unsubscribe_url_is_empty_when_not_configured),
        cmocka_unit_test(test_links_unsubscribe_url_without_secret_is_config_error),
        cmocka_unit_test(test_links_sign_with_the_first_key_of_the_ring),
        cmocka_unit_test(test_links_are_accepted_by_the_prompt),
    };
    return cmocka_run_group_tests(tests, NULL, free_rings);
}
