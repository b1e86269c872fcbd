/* Unit tests of the unsubscribe pages (worker/page.c) and of the listen address parser
 * (common/httpd.c). */
#include <string.h>

#include "support.h"

#include "httpd.h"
#include "page.h"

static void
test_page_form_posts_one_click_to_the_same_url_with_the_token_escaped(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    page_unsubscribe_form(&b, "v1.k1.a\"><script>x</script>&.b", POLICY_CONSENT_ORDER_UPDATES);
    const char *html = buf_str(&b);
    assert_string_contains(html, "<form method=\"post\" action=\"?token=v1.k1.a&quot;&gt;"
                                 "&lt;script&gt;x&lt;/script&gt;&amp;.b\">");
    assert_string_lacks(html, "<script>");
    assert_string_contains(html, "<input type=\"hidden\" name=\"List-Unsubscribe\" "
                                 "value=\"One-Click\">");
    assert_string_contains(html, "<button type=\"submit\">Unsubscribe</button>");
    assert_string_contains(html, "<html lang=\"en\">");
    assert_string_contains(html, "name=\"viewport\"");
    assert_string_contains(html, "order update emails");
    /* nothing external: no src, no href, no script */
    assert_string_lacks(html, "src=");
    assert_string_lacks(html, "href=");
    buf_free(&b);
}

static void
test_page_text_follows_the_preference_that_is_turned_off(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    page_unsubscribed(&b, POLICY_CONSENT_BOTH, false);
    assert_string_contains(buf_str(&b), "<h1>You are unsubscribed</h1>");
    assert_string_contains(buf_str(&b), "marketing emails");
    assert_string_contains(buf_str(&b), "Emails about your orders still arrive.");
    buf_reset(&b);
    page_unsubscribed(&b, POLICY_CONSENT_ORDER_UPDATES, true);
    assert_string_contains(buf_str(&b), "<h1>You were already unsubscribed</h1>");
    assert_string_contains(buf_str(&b), "order update emails");
    buf_reset(&b);
    page_problem(&b, "Bad <link>", "Try \"again\" & again");
    assert_string_contains(buf_str(&b), "<title>Bad &lt;link&gt;</title>");
    assert_string_contains(buf_str(&b), "<p>Try &quot;again&quot; &amp; again</p>");
    buf_free(&b);
}

static void
test_httpd_listen_addresses_parse_and_bad_ones_are_refused(void **state)
{
    (void)state;
    char host[64];
    int port = -1;
    assert_true(httpd_parse_listen("127.0.0.1:8080", host, sizeof host, &port));
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_true(httpd_parse_listen("[::1]:0", host, sizeof host, &port));
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_true(httpd_parse_listen("localhost:65535", host, sizeof host, &port));
    static const char *const bad[] = {"",         ":8080",       "8080",  "host:", "host:65536",
                                      "host:80x", "::1:8080",    "[::1]", "[]:80", "a b:80",
                                      "host:-1",  "host:123456", NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        if (httpd_parse_listen(bad[i], host, sizeof host, &port))
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_false(httpd_parse_listen(NULL, host, sizeof host, &port));
    char tiny[4];
    assert_false(httpd_parse_listen("example.com:80", tiny, sizeof tiny, &port));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_form_posts_one_click_to_the_same_url_with_the_token_escaped),
        cmocka_unit_test(test_page_text_follows_the_preference_that_is_turned_off),
        cmocka_unit_test(test_httpd_listen_addresses_parse_and_bad_ones_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
