/* Unit tests for common/addr: the one email address check, with and without address
 * literals, and the host name and literal checks under it. */
#include <stdio.h>
#include <string.h>

#include "support.h"

#include "addr.h"

static void
test_addr_valid_accepts_plain_mailboxes(void **state)
{
    (void)state;
    assert_true(addr_valid("a@b.co", ADDR_LITERAL));
    assert_true(addr_valid("first.last+tag@sub.example.org", ADDR_LITERAL));
    assert_true(addr_valid("x@[127.0.0.1]", ADDR_LITERAL));
    assert_true(addr_valid("x@[IPv6:2001:db8::1]", ADDR_LITERAL));
    assert_true(addr_valid("user@localhost", ADDR_LITERAL));
    assert_true(addr_valid("o'brien_{x}~!#$%&*/=?^`|-@example.com", ADDR_LITERAL));
    assert_true(addr_valid("a@xn--bcher-kva.example", ADDR_LITERAL));
    assert_true(addr_valid("a@123.example.com", ADDR_LITERAL));
}

static void
test_addr_valid_rejects_line_breaks_and_controls(void **state)
{
    (void)state;
    assert_false(addr_valid("a@b.co\r\nRSET", ADDR_LITERAL));
    assert_false(addr_valid("a@b.co\n", ADDR_LITERAL));
    assert_false(addr_valid("a\r@b.co", ADDR_LITERAL));
    assert_false(addr_valid("a@b.co\r", ADDR_LITERAL));
    assert_false(addr_valid("a\t@b.co", ADDR_LITERAL));
    assert_false(addr_valid("a\x01@b.co", ADDR_LITERAL));
    assert_false(addr_valid("a@b\x7f.co", ADDR_LITERAL));
    assert_false(addr_valid("a\x1b@b.co", ADDR_LITERAL));
}

static void
test_addr_valid_rejects_bad_syntax(void **state)
{
    (void)state;
    assert_false(addr_valid(NULL, ADDR_LITERAL));
    assert_false(addr_valid("", ADDR_LITERAL));
    assert_false(addr_valid("a b@c.org", ADDR_LITERAL));
    assert_false(addr_valid("a@b c.org", ADDR_LITERAL));
    assert_false(addr_valid("<a@b.co>", ADDR_LITERAL));
    assert_false(addr_valid("a@b.co>", ADDR_LITERAL));
    assert_false(addr_valid("a@b@c.co", ADDR_LITERAL));
    assert_false(addr_valid("@b.co", ADDR_LITERAL));
    assert_false(addr_valid("a@", ADDR_LITERAL));
    assert_false(addr_valid("ab.co", ADDR_LITERAL));
    assert_false(addr_valid(".a@b.co", ADDR_LITERAL));
    assert_false(addr_valid("a.@b.co", ADDR_LITERAL));
    assert_false(addr_valid("a..b@c.co", ADDR_LITERAL));
    assert_false(addr_valid("\"quoted\"@b.co", ADDR_LITERAL));
    assert_false(addr_valid("a(comment)@b.co", ADDR_LITERAL));
    assert_false(addr_valid("a,b@c.co", ADDR_LITERAL));
    assert_false(addr_valid("caf\xc3\xa9@b.co", ADDR_LITERAL));
}

static void
test_addr_valid_rejects_bad_domains(void **state)
{
    (void)state;
    assert_false(addr_valid("a@b.co.", ADDR_LITERAL));
    assert_false(addr_valid("a@.b.co", ADDR_LITERAL));
    assert_false(addr_valid("a@b..co", ADDR_LITERAL));
    assert_false(addr_valid("a@-b.co", ADDR_LITERAL));
    assert_false(addr_valid("a@b-.co", ADDR_LITERAL));
    assert_false(addr_valid("a@b_c.co", ADDR_LITERAL));
    assert_false(addr_valid("a@1.2.3.4", ADDR_LITERAL));
    assert_false(addr_valid("a@[1.2.3]", ADDR_LITERAL));
    assert_false(addr_valid("a@[1.2.3.4", ADDR_LITERAL));
    assert_false(addr_valid("a@[IPv6:zz::1]", ADDR_LITERAL));
    assert_false(addr_valid("a@[example.com]", ADDR_LITERAL));

    char label[80];
    memset(label, 'l', 64);
    label[64] = '\0';
    char addr[120];
    snprintf(addr, sizeof addr, "a@%s.com", label); /* a 64-octet label */
    assert_false(addr_valid(addr, ADDR_LITERAL));
    label[63] = '\0';
    snprintf(addr, sizeof addr, "a@%s.com", label);
    assert_true(addr_valid(addr, ADDR_LITERAL));
}

static void
test_addr_valid_enforces_length_limits(void **state)
{
    (void)state;
    char addr[400];

    memset(addr, 'l', 64);
    strcpy(addr + 64, "@b.co");
    assert_true(addr_valid(addr, ADDR_LITERAL)); /* 64-octet local part */

    memset(addr, 'l', 65);
    strcpy(addr + 65, "@b.co");
    assert_false(addr_valid(addr, ADDR_LITERAL)); /* 65 */

    /* 254 octets in all: local@ + labels of 63 joined by dots. */
    const char *local = "abcdefghij";
    size_t n = (size_t)snprintf(addr, sizeof addr, "%s@", local);
    while (n < 254) {
        size_t room = 254 - n;
        size_t take = room > 63 ? 63 : room;
        if (room - take == 1)
            take--; /* never leave a single octet for a trailing dot */
        memset(addr + n, 'd', take);
        n += take;
        if (n < 254)
            addr[n++] = '.';
    }
    addr[n] = '\0';
    assert_int_equal(strlen(addr), 254);
    assert_true(addr_valid(addr, ADDR_LITERAL));

    addr[n] = 'd';
    addr[n + 1] = '\0';
    assert_int_equal(strlen(addr), 255);
    assert_false(addr_valid(addr, ADDR_LITERAL));

    memset(addr, 'a', 300);
    addr[300] = '\0';
    addr[10] = '@';
    assert_false(addr_valid(addr, ADDR_LITERAL));
}

static void
test_addr_valid_takes_address_literals_only_when_asked(void **state)
{
    (void)state;
    assert_true(addr_valid("x@[127.0.0.1]", ADDR_LITERAL));
    assert_true(addr_valid("x@[IPv6:2001:db8::1]", ADDR_LITERAL));
    assert_false(addr_valid("x@[127.0.0.1]", 0));
    assert_false(addr_valid("x@[IPv6:2001:db8::1]", 0));
    assert_true(addr_valid("jane@example.com", 0));
    assert_true(addr_valid("jane.doe+promo@mail.example-shop.co.uk", 0));
    assert_true(addr_valid("o'brien@example.com", 0));
    assert_true(addr_valid("x@localhost", 0));
}

/* A header address used to pass with any letters, digits, hyphens and dots after the '@';
 * it now meets the same host-name rules as the envelope, so the two never disagree. */
static void
test_addr_valid_holds_headers_to_the_envelope_domain_rules(void **state)
{
    (void)state;
    assert_false(addr_valid("a@1.2.3.4", 0));
    assert_false(addr_valid("a@-b.co", 0));
    assert_false(addr_valid("a@b-.co", 0));
    char addr[120];
    char label[80];
    memset(label, 'l', 64);
    label[64] = '\0';
    snprintf(addr, sizeof addr, "a@%s.com", label);
    assert_false(addr_valid(addr, 0));
}

static void
test_addr_domain_and_literal_checks_stand_alone(void **state)
{
    (void)state;
    assert_true(addr_domain_valid("relay.example", 13));
    assert_false(addr_domain_valid("relay.example.", 14));
    assert_true(addr_literal_valid("[192.0.2.1]", 11));
    assert_false(addr_literal_valid("192.0.2.1", 9));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_valid_accepts_plain_mailboxes),
        cmocka_unit_test(test_addr_valid_rejects_line_breaks_and_controls),
        cmocka_unit_test(test_addr_valid_rejects_bad_syntax),
        cmocka_unit_test(test_addr_valid_rejects_bad_domains),
        cmocka_unit_test(test_addr_valid_enforces_length_limits),
        cmocka_unit_test(test_addr_valid_takes_address_literals_only_when_asked),
        cmocka_unit_test(test_addr_valid_holds_headers_to_the_envelope_domain_rules),
        cmocka_unit_test(test_addr_domain_and_literal_checks_stand_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
