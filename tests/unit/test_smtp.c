/* test_smtp: the pure parts of common/smtp.c: outcome names, and the
 * checks smtp_send_batch makes before it would open a connection. */
#include <stdio.h>
#include <string.h>

#include "support.h"

#include "smtp.h"

static void
test_smtp_outcome_name_is_stable(void **state)
{
    (void)state;
    assert_string_equal(smtp_outcome_name(SMTP_NOT_ATTEMPTED), "not_attempted");
    assert_string_equal(smtp_outcome_name(SMTP_SENT), "sent");
    assert_string_equal(smtp_outcome_name(SMTP_DEFERRED), "deferred");
    assert_string_equal(smtp_outcome_name(SMTP_FAILED), "failed");
    assert_string_equal(smtp_outcome_name(SMTP_UNKNOWN), "unknown");
    assert_string_equal(smtp_outcome_name((enum smtp_outcome)42), "invalid");
}

static const char DATA[] = "From: <a@b.co>\r\nTo: <c@d.co>\r\nSubject: x\r\n\r\nbody\r\n";

static struct smtp_config
config(void)
{
    /* Port 9 on loopback: nothing here may get as far as connecting. */
    struct smtp_config cfg = {.host = "127.0.0.1",
                              .port = 9,
                              .tls = SMTP_TLS_NONE,
                              .timeout_ms = 1000,
                              .connect_timeout_ms = 200};
    return cfg;
}

static struct smtp_message
message(const char *sender, const char *recipient, const char *data)
{
    struct smtp_message m;
    memset(&m, 0, sizeof m);
    m.sender = sender;
    m.recipient = recipient;
    m.data = data;
    m.len = data != NULL ? strlen(data) : 0;
    m.outcome = SMTP_SENT; /* must be overwritten */
    m.code = 999;
    return m;
}

static void
test_smtp_send_batch_refuses_implicit_tls(void **state)
{
    (void)state;
    struct smtp_config cfg = config();
    cfg.tls = SMTP_TLS_IMPLICIT;
    struct err e;
    err_clear(&e);
    assert_int_equal(smtp_global_init(&cfg, &e), ERR_CONFIG);
    assert_string_equal(e.msg,
                        "implicit TLS (port 465) is not supported by libESMTP; use starttls");

    struct smtp_message m = message("a@b.co", "c@d.co", DATA);
    err_clear(&e);
    assert_int_equal(smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e), ERR_CONFIG);
    assert_int_equal(m.outcome, SMTP_NOT_ATTEMPTED);
}

static void
test_smtp_send_batch_refuses_line_breaks_in_config(void **state)
{
    (void)state;
    struct smtp_message m = message("a@b.co", "c@d.co", DATA);
    struct err e;

    struct smtp_config cfg = config();
    cfg.host = "relay.example\r\nQUIT";
    err_clear(&e);
    assert_int_equal(smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e), ERR_CONFIG);

    cfg = config();
    cfg.helo_name = "me.example\r\nRSET";
    err_clear(&e);
    assert_int_equal(smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e), ERR_CONFIG);
    assert_string_contains(e.msg, "helo_name");

    cfg = config();
    cfg.username = "user\r\nRSET";
    cfg.password = "pw";
    err_clear(&e);
    assert_int_equal(smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e), ERR_CONFIG);

    cfg = config();
    cfg.username = "user";
    cfg.password = "pw\nx";
    err_clear(&e);
    assert_int_equal(smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e), ERR_CONFIG);
    assert_int_equal(m.outcome, SMTP_NOT_ATTEMPTED);
}

static void
test_smtp_send_batch_refuses_bad_host_port_and_helo(void **state)
{
    (void)state;
    struct smtp_message m = message("a@b.co", "c@d.co", DATA);
    struct err e;
    const char *hosts[] = {NULL, "", "::1", "[::1]", "relay.example.", "re lay", "a..b"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        struct smtp_config cfg = config();
        cfg.host = hosts[i];
        err_clear(&e);
        assert_int_equal(smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e), ERR_CONFIG);
    }
    struct smtp_config cfg = config();
    cfg.port = 0;
    err_clear(&e);
    assert_int_equal(smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e), ERR_CONFIG);
    cfg.port = 65536;
    assert_int_equal(smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e), ERR_CONFIG);

    cfg = config();
    cfg.helo_name = "";
    assert_int_equal(smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e), ERR_CONFIG);
    assert_int_equal(smtp_send_batch(NULL, &m, 1, NULL, NULL, &e), ERR_CONFIG);
}

static void
test_smtp_send_batch_refuses_clear_text_password_off_loopback(void **state)
{
    (void)state;
    struct smtp_message m = message("a@b.co", "c@d.co", DATA);
    struct smtp_config cfg = config();
    cfg.host = "relay.example.org";
    cfg.username = "user";
    cfg.password = "secret";
    struct err e;
    err_clear(&e);
    assert_int_equal(smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e), ERR_CONFIG);
    assert_string_contains(e.msg, "clear text");
    assert_string_lacks(e.msg, "secret");
}

static void
test_smtp_send_batch_refuses_overlong_credentials(void **state)
{
    (void)state;
    char longpw[300];
    memset(longpw, 'p', sizeof longpw - 1);
    longpw[sizeof longpw - 1] = '\0';
    struct smtp_message m = message("a@b.co", "c@d.co", DATA);
    struct smtp_config cfg = config();
    cfg.username = "user";
    cfg.password = longpw; /* the PLAIN plugin would overflow its buffer */
    struct err e;
    err_clear(&e);
    assert_int_equal(smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e), ERR_CONFIG);
}

static void
test_smtp_send_batch_starttls_needs_global_init(void **state)
{
    (void)state;
    smtp_global_cleanup();
    struct smtp_message m = message("a@b.co", "c@d.co", DATA);
    struct smtp_config cfg = config();
    cfg.tls = SMTP_TLS_STARTTLS;
    struct err e;
    err_clear(&e);
    assert_int_equal(smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e), ERR_CONFIG);
}

static void
test_smtp_send_batch_fails_invalid_messages_without_connecting(void **state)
{
    (void)state;
    struct smtp_message msgs[] = {
        message("a@b.co", "victim@d.co>\r\nRSET\r\nMAIL FROM:<spoof@evil.test", DATA),
        message("a@b.co\r\nRSET", "c@d.co", DATA),
        message("not an address", "c@d.co", DATA),
        message("a@b.co", "c@d.co", "Subject: x\r\n\r\nbody\n.\r\nMAIL FROM:<x@y.z>\r\n"),
        message("a@b.co", "c@d.co", "Subject: x\r\n\r\nbare CR\r here\r\n"),
        message("a@b.co", "c@d.co", NULL),
        message("a@b.co", "c@d.co", ""),
    };
    struct smtp_config cfg = config();
    struct err e;
    err_clear(&e);
    /* Port 9 is closed: had anything been offered, this would be ERR_UNAVAILABLE. */
    assert_int_equal(smtp_send_batch(&cfg, msgs, 7, NULL, NULL, &e), ERR_OK);
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(msgs[i].outcome, SMTP_FAILED);
        assert_int_equal(msgs[i].code, 0);
        assert_string_equal(msgs[i].enhanced, "");
    }
    assert_string_equal(msgs[0].text, "invalid address");
    assert_string_equal(msgs[1].text, "invalid address");
    assert_string_equal(msgs[2].text, "invalid address");
    assert_string_contains(msgs[3].text, "invalid message data");
    assert_string_contains(msgs[4].text, "invalid message data");
    assert_string_contains(msgs[5].text, "invalid message data");
    assert_string_contains(msgs[6].text, "invalid message data");
}

static void
test_smtp_send_batch_with_no_messages_is_ok(void **state)
{
    (void)state;
    struct smtp_config cfg = config();
    struct err e;
    err_clear(&e);
    assert_int_equal(smtp_send_batch(&cfg, NULL, 0, NULL, NULL, &e), ERR_OK);
}

static void
test_smtp_send_batch_unreachable_relay_is_unavailable(void **state)
{
    (void)state;
    /* Loopback port 9 (discard) is assumed closed in test environments. */
    struct smtp_message m = message("a@b.co", "c@d.co", DATA);
    struct smtp_config cfg = config();
    struct err e;
    err_clear(&e);
    int rc = smtp_send_batch(&cfg, &m, 1, NULL, NULL, &e);
    if (rc == ERR_OK)
        skip(); /* something listens on port 9 here */
    assert_int_equal(rc, ERR_UNAVAILABLE);
    assert_string_contains(e.msg, "cannot connect to 127.0.0.1:9");
    assert_int_equal(m.outcome, SMTP_NOT_ATTEMPTED);
}

/* Replies as the relays send them (research/relays-and-poolers.md and the providers' docs). */
static void
test_smtp_reply_kind_throttling_replies_of_real_relays(void **state)
{
    (void)state;
    /* Amazon SES, maximum sending rate */
    assert_int_equal(
        smtp_reply_kind(454, NULL, "Throttling failure: Maximum sending rate exceeded."),
        SMTP_KIND_THROTTLE);
    assert_int_equal(
        smtp_reply_kind(454, NULL, "4.7.0 Throttling failure: Maximum sending rate exceeded."),
        SMTP_KIND_THROTTLE);
    /* Gmail inbound */
    assert_int_equal(
        smtp_reply_kind(421, NULL,
                        "4.7.28 Our system has detected an unusual rate of unsolicited mail "
                        "originating from your IP address. To protect our users from spam, mail "
                        "sent from your IP address has been temporarily rate limited."),
        SMTP_KIND_THROTTLE);
    /* Google Workspace SMTP relay */
    assert_int_equal(smtp_reply_kind(450, NULL,
                                     "4.2.1 The user you are trying to contact is receiving mail "
                                     "at a rate that prevents additional messages from being "
                                     "delivered. Please resend your message at a later time."),
                     SMTP_KIND_THROTTLE);
    assert_int_equal(
        smtp_reply_kind(450, NULL, "4.2.1 Peak SMTP relay limit exceeded for this customer."),
        SMTP_KIND_THROTTLE);
    /* Microsoft 365 / Exchange Online */
    assert_int_equal(smtp_reply_kind(451, NULL, "4.7.500 Server busy. Please try again later"),
                     SMTP_KIND_THROTTLE);
    assert_int_equal(smtp_reply_kind(451, "4.7.650",
                                     "The mail server [192.0.2.1] has been "
                                     "temporarily rate limited due to IP "
                                     "reputation."),
                     SMTP_KIND_THROTTLE);
    /* Postfix anvil */
    assert_int_equal(smtp_reply_kind(450, NULL, "4.7.1 Error: too much mail from 127.0.0.1"),
                     SMTP_KIND_THROTTLE);
    assert_int_equal(smtp_reply_kind(421, NULL, "4.7.0 Error: too many connections from 127.0.0.1"),
                     SMTP_KIND_THROTTLE);
    assert_int_equal(smtp_reply_kind(421, NULL, "4.7.0 Error: too many errors"),
                     SMTP_KIND_THROTTLE);
    assert_int_equal(smtp_reply_kind(421, NULL, "4.7.0 Too many connections"), SMTP_KIND_THROTTLE);
    /* 421 at any stage, whatever it says */
    assert_int_equal(smtp_reply_kind(421, NULL, "4.3.2 service not available, closing channel"),
                     SMTP_KIND_THROTTLE);
    assert_int_equal(smtp_reply_kind(451, "4.7.1", "Please slow down, rate limit exceeded"),
                     SMTP_KIND_THROTTLE);
}

static void
test_smtp_reply_kind_daily_quota_is_not_throttling(void **state)
{
    (void)state;
    assert_int_equal(
        smtp_reply_kind(454, NULL, "Throttling failure: Daily message quota exceeded."),
        SMTP_KIND_QUOTA);
    assert_int_equal(smtp_reply_kind(550, NULL, "5.4.5 Daily user sending limit exceeded."),
                     SMTP_KIND_QUOTA);
    assert_int_equal(smtp_reply_kind(550, "5.4.5", "Daily sending quota exceeded."),
                     SMTP_KIND_QUOTA);
}

static void
test_smtp_reply_kind_recipient_4xx_keeps_the_row_backoff(void **state)
{
    (void)state;
    assert_int_equal(smtp_reply_kind(450, NULL, "4.2.0 Mailbox busy, try again later"),
                     SMTP_KIND_RECIPIENT);
    assert_int_equal(smtp_reply_kind(450, NULL,
                                     "4.2.2 The email account that you tried to "
                                     "reach is over quota."),
                     SMTP_KIND_RECIPIENT);
    assert_int_equal(smtp_reply_kind(452, NULL,
                                     "4.2.2 The email account that you tried to "
                                     "reach is over quota."),
                     SMTP_KIND_RECIPIENT);
    assert_int_equal(smtp_reply_kind(452, NULL, "Mailbox full"), SMTP_KIND_RECIPIENT);
    assert_int_equal(smtp_reply_kind(450, NULL, "mailbox busy"), SMTP_KIND_RECIPIENT);
    assert_int_equal(smtp_reply_kind(450, NULL,
                                     "4.1.1 <a@b.co>: Recipient address rejected: "
                                     "unverified address"),
                     SMTP_KIND_RECIPIENT);
}

static void
test_smtp_reply_kind_other_replies_mean_nothing_more(void **state)
{
    (void)state;
    assert_int_equal(smtp_reply_kind(250, NULL, "2.0.0 OK queued as 1234"), SMTP_KIND_NONE);
    assert_int_equal(smtp_reply_kind(354, NULL, "End data with <CR><LF>.<CR><LF>"), SMTP_KIND_NONE);
    assert_int_equal(smtp_reply_kind(0, NULL, NULL), SMTP_KIND_NONE);
    assert_int_equal(smtp_reply_kind(451, NULL, "4.3.0 try later"), SMTP_KIND_NONE);
    assert_int_equal(smtp_reply_kind(451, NULL, "4.3.0 Error: queue file write error"),
                     SMTP_KIND_NONE);
    assert_int_equal(smtp_reply_kind(452, NULL, "4.5.3 Error: too many recipients"),
                     SMTP_KIND_NONE);
    assert_int_equal(smtp_reply_kind(550, NULL, "5.1.1 no such user"), SMTP_KIND_NONE);
    /* "rate" inside another word is not about the pace */
    assert_int_equal(smtp_reply_kind(451, NULL, "4.3.0 cannot generate a queue id"),
                     SMTP_KIND_NONE);
    /* a 5xx is permanent even when it speaks of rates */
    assert_int_equal(smtp_reply_kind(550, NULL, "5.7.1 rate of spam too high, rejected"),
                     SMTP_KIND_NONE);
}

static void
test_smtp_reply_kind_name_is_stable(void **state)
{
    (void)state;
    assert_string_equal(smtp_reply_kind_name(SMTP_KIND_NONE), "none");
    assert_string_equal(smtp_reply_kind_name(SMTP_KIND_THROTTLE), "throttle");
    assert_string_equal(smtp_reply_kind_name(SMTP_KIND_QUOTA), "quota");
    assert_string_equal(smtp_reply_kind_name(SMTP_KIND_RECIPIENT), "recipient");
}

static int
setup(void **state)
{
    (void)state;
    struct err e;
    err_clear(&e);
    return smtp_global_init(NULL, &e) == ERR_OK ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    smtp_global_cleanup();
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_outcome_name_is_stable),
        cmocka_unit_test(test_smtp_send_batch_refuses_implicit_tls),
        cmocka_unit_test(test_smtp_send_batch_refuses_line_breaks_in_config),
        cmocka_unit_test(test_smtp_send_batch_refuses_bad_host_port_and_helo),
        cmocka_unit_test(test_smtp_send_batch_refuses_clear_text_password_off_loopback),
        cmocka_unit_test(test_smtp_send_batch_refuses_overlong_credentials),
        cmocka_unit_test(test_smtp_send_batch_starttls_needs_global_init),
        cmocka_unit_test(test_smtp_send_batch_fails_invalid_messages_without_connecting),
        cmocka_unit_test(test_smtp_send_batch_with_no_messages_is_ok),
        cmocka_unit_test(test_smtp_send_batch_unreachable_relay_is_unavailable),
        cmocka_unit_test(test_smtp_reply_kind_throttling_replies_of_real_relays),
        cmocka_unit_test(test_smtp_reply_kind_daily_quota_is_not_throttling),
        cmocka_unit_test(test_smtp_reply_kind_recipient_4xx_keeps_the_row_backoff),
        cmocka_unit_test(test_smtp_reply_kind_other_replies_mean_nothing_more),
        cmocka_unit_test(test_smtp_reply_kind_name_is_stable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
