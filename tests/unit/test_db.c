/* test_db: what the libpq wrapper decides without a server: which failed connection
 * attempts are configuration mistakes (exit 78, no retry) and which may pass (exit 69, retried),
 * on libpq 15's and the server's own message texts; and that a connection string that does
 * not parse is reported without its password. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

#define AT "connection to server at \"db.example\" (192.0.2.10), port 5432 failed: "

static enum err_code
classify(const char *msg, bool needs_password, char *line, size_t n)
{
    const char *why = NULL;
    size_t len = 0;
    enum err_code code = db_connect_failure(msg, needs_password, &why, &len);
    assert_non_null(why);
    snprintf(line, n, "%.*s", (int)len, why);
    return code;
}

static void
test_db_configuration_mistakes_are_config_errors(void **state)
{
    (void)state;
    static const char *const messages[] = {
        /* options libpq refuses before connecting */
        "invalid sslmode value: \"verify_full\"\n",
        "invalid port number: \"54x2\"\n",
        "invalid integer value \"ten\" for connection option \"connect_timeout\"\n",
        "invalid target_session_attrs value: \"primary-ish\"\n",
        "could not match 2 host names to 1 hostaddr values\n",
        "invalid value \"TLSv9\" for minimum SSL protocol version\n",
        /* certificate and key files */
        AT "root certificate file \"/nonexistent/.postgresql/root.crt\" does not exist\n"
           "Either provide the file or change sslmode to disable server certificate "
           "verification.\n",
        AT "could not read root certificate file \"/etc/ca.pem\": no certificate or crl found\n",
        AT "could not read certificate file \"/etc/client.crt\": no start line\n",
        AT "certificate present, but not private key file \"/home/w/.postgresql/postgresql.key\"\n",
        AT "private key file \"/etc/client.key\" has group or world access; file must have "
           "permissions u=rw (0600) or less if owned by the current user, or permissions "
           "u=rw,g=r (0640) or less if owned by root\n",
        /* the server's certificate */
        AT "SSL error: certificate verify failed\n",
        AT "server certificate for \"db.example\" does not match host name \"db\"\n",
        AT "server does not support SSL, but SSL was required\n",
        /* the server's refusals */
        AT "FATAL:  password authentication failed for user \"worker\"\n",
        AT "FATAL:  no pg_hba.conf entry for host \"192.0.2.7\", user \"worker\", database "
           "\"shop\", SSL encryption\n",
        AT "FATAL:  pg_hba.conf rejects connection for host \"192.0.2.7\", user \"worker\", "
           "database \"shop\", no encryption\n",
        AT "FATAL:  database \"shop\" does not exist\n",
        AT "FATAL:  role \"worker\" does not exist\n",
        AT "FATAL:  role \"worker\" is not permitted to log in\n",
        AT "FATAL:  permission denied for database \"shop\"\nDETAIL:  User does not have "
           "CONNECT privilege.\n",
        AT "fe_sendauth: no password supplied\n",
    };
    char line[512];
    for (size_t i = 0; i < sizeof messages / sizeof *messages; i++) {
        if (classify(messages[i], false, line, sizeof line) != ERR_CONFIG)
            fail_msg("not a configuration error: %s", messages[i]);
        /* the line that says why, whole and alone */
        assert_null(strchr(line, '\n'));
        assert_true(strncmp(messages[i], line, strlen(line)) == 0);
    }
}

static void
test_db_unreachable_or_busy_servers_are_unavailable(void **state)
{
    (void)state;
    static const char *const messages[] = {
        AT "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
           "connections?\n",
        AT "timeout expired\n",
        "could not translate host name \"db.example\" to address: Temporary failure in name "
        "resolution\n",
        AT "FATAL:  the database system is starting up\n",
        AT "FATAL:  the database system is shutting down\n",
        AT "FATAL:  sorry, too many clients already\n",
        AT "FATAL:  remaining connection slots are reserved for non-replication superuser "
           "connections\n",
        AT "server closed the connection unexpectedly\n\tThis probably means the server "
           "terminated abnormally\n\tbefore or while processing the request.\n",
        AT "SSL SYSCALL error: EOF detected\n",
        /* a name that only looks like the phrases */
        AT "FATAL:  database \"shop\" is not currently accepting connections\n",
        "",
    };
    char line[512];
    for (size_t i = 0; i < sizeof messages / sizeof *messages; i++)
        if (classify(messages[i], false, line, sizeof line) != ERR_UNAVAILABLE)
            fail_msg("not an availability error: %s", messages[i]);
    assert_int_equal(classify(NULL, false, line, sizeof line), ERR_UNAVAILABLE);
    assert_string_equal(line, "");
}

static void
test_db_a_server_asking_for_a_password_not_given_is_a_config_error(void **state)
{
    (void)state;
    char line[512];
    /* whatever the (possibly translated) text, libpq's flag says it */
    assert_int_equal(classify(AT "FATAL:  Passwort-Authentifizierung fehlgeschlagen\n", true, line,
                              sizeof line),
                     ERR_CONFIG);
    assert_string_equal(line, AT "FATAL:  Passwort-Authentifizierung fehlgeschlagen");
}

static void
test_db_the_line_that_says_why_is_chosen_among_several_hosts(void **state)
{
    (void)state;
    char line[512];
    const char *msg = "connection to server at \"a\" (192.0.2.1), port 5432 failed: Connection "
                      "refused\n"
                      "connection to server at \"b\" (192.0.2.2), port 5432 failed: FATAL:  "
                      "password authentication failed for user \"worker\"\n";
    assert_int_equal(classify(msg, false, line, sizeof line), ERR_CONFIG);
    assert_string_equal(line, "connection to server at \"b\" (192.0.2.2), port 5432 failed: "
                              "FATAL:  password authentication failed for user \"worker\"");
}

static void
test_db_connection_string_that_does_not_parse_never_shows_the_password(void **state)
{
    (void)state;
    static const char *const urls[] = {
        /* quoted as in a shell-style env file read by a container engine */
        "\"postgresql://worker:hunter2-secret@db.example/shop?sslmode=require\"",
        "postgresql://worker:hunter2-secret@[::1/shop",
        "host=db.example password=hunter2-secret dbname",
        "host=db.example password=hunter2 secret dbname=shop",
    };
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        struct db_options opt = {
            .conninfo = urls[i], .conninfo_key = "database.url", .connect_retries = 3};
        struct err e;
        err_clear(&e);
        assert_null(db_connect(&opt, &e));
        assert_int_equal(e.code, ERR_CONFIG);
        assert_non_null(strstr(e.msg, "database.url: "));
        if (strstr(e.msg, "hunter2") != NULL || strstr(e.msg, "secret") != NULL)
            fail_msg("password in \"%s\"", e.msg);
    }
    /* without a password there is nothing to hide: libpq's words stay */
    struct db_options opt = {.conninfo = "host=db.example dbnme=shop",
                             .conninfo_key = "database.url"};
    struct err e;
    err_clear(&e);
    assert_null(db_connect(&opt, &e));
    assert_string_equal(e.msg, "database.url: invalid connection option \"dbnme\"");
}

static void
test_db_missing_connection_string_is_named_as_the_caller_names_it(void **state)
{
    (void)state;
    struct db_options opt = {.conninfo = "", .conninfo_key = "database.url",
                             .conninfo_env = "DATABASE_URL"};
    struct err e;
    err_clear(&e);
    assert_null(db_connect(&opt, &e));
    assert_int_equal(e.code, ERR_CONFIG);
    assert_string_equal(e.msg, "database.url (DATABASE_URL) is not set");
    struct db_options bare = {.conninfo = NULL};
    err_clear(&e);
    assert_null(db_connect(&bare, &e));
    assert_string_equal(e.msg, "the connection string is not set");
}

static void
assert_conninfo_masked(const char *conninfo, const char *expected)
{
    char *got = db_mask_conninfo(conninfo);
    assert_non_null(got);
    assert_string_equal(got, expected);
    free(got);
}

static void
test_db_mask_conninfo_hides_passwords_in_both_syntaxes(void **state)
{
    (void)state;
    assert_conninfo_masked("postgresql://worker:hunter2@db.example:5432/shop?sslmode=require",
                           "postgresql://worker:****@db.example:5432/shop?sslmode=require");
    assert_conninfo_masked("postgres://worker@db.example/shop?password=hunter2&sslmode=require",
                           "postgres://worker@db.example/shop?password=****&sslmode=require");
    assert_conninfo_masked("postgresql://db.example/shop", "postgresql://db.example/shop");
    assert_conninfo_masked("host=db password=hunter2 dbname=shop",
                           "host=db password=**** dbname=shop");
    assert_conninfo_masked("host=db password = 'a b\\' c' dbname=shop",
                           "host=db password =**** dbname=shop");
    assert_conninfo_masked("host=db mypassword=x", "host=db mypassword=x");
    assert_conninfo_masked("", "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_db_configuration_mistakes_are_config_errors),
        cmocka_unit_test(test_db_unreachable_or_busy_servers_are_unavailable),
        cmocka_unit_test(test_db_a_server_asking_for_a_password_not_given_is_a_config_error),
        cmocka_unit_test(test_db_the_line_that_says_why_is_chosen_among_several_hosts),
        cmocka_unit_test(test_db_connection_string_that_does_not_parse_never_shows_the_password),
        cmocka_unit_test(test_db_missing_connection_string_is_named_as_the_caller_names_it),
        cmocka_unit_test(test_db_mask_conninfo_hides_passwords_in_both_syntaxes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
