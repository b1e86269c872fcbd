/* test_db: what the libpq wrapper decides without a server: which failed connection
 * attempts are configuration mistakes (exit 78, no retry) and which may pass (exit 69, retried),
 * on libpq 15's and the server's own message texts; that a connection string that does not
 * parse, or names a server that is not there, is reported without its password; how
 * db_mask_conninfo masks passwords in both syntaxes; and the array literals that batch
 * statements take (db_array_*). */
#include "support.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "buf.h"
#include "db.h"
#include "enc.h"

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
    assert_int_equal(
        classify(AT "FATAL:  Passwort-Authentifizierung fehlgeschlagen\n", true, line, sizeof line),
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
        assert_string_contains(e.msg, "database.url: ");
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
    struct db_options opt = {
        .conninfo = "", .conninfo_key = "database.url", .conninfo_env = "DATABASE_URL"};
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

static void
test_db_mask_conninfo_hides_the_password_of_a_uri(void **state)
{
    (void)state;
    assert_conninfo_masked("postgresql://worker:hunter2@db.example:5432/shop?sslmode=require",
                           "postgresql://worker:****@db.example:5432/shop?sslmode=require");
    assert_conninfo_masked("postgres://worker:p%40ss@db.example/shop",
                           "postgres://worker:****@db.example/shop");
    /* an '@' inside the password: the userinfo ends at the last one */
    assert_conninfo_masked("postgresql://worker:a@b@db.example/shop",
                           "postgresql://worker:****@db.example/shop");
    assert_conninfo_masked(
        "postgresql://db.example/shop?user=worker&password=hunter2&sslmode=require",
        "postgresql://db.example/shop?user=worker&password=****&sslmode=require");
    /* every secret parameter, however its key is spelled */
    assert_conninfo_masked("postgresql://db.example/shop?password=a&password=b",
                           "postgresql://db.example/shop?password=****&password=****");
    assert_conninfo_masked("postgresql://db.example/shop?sslpassword=x&password=y",
                           "postgresql://db.example/shop?sslpassword=****&password=****");
    assert_conninfo_masked("postgresql://db.example/shop?pass%77ord=y&user=w",
                           "postgresql://db.example/shop?pass%77ord=****&user=w");
    /* libpq reads the userinfo to the first '/': a raw '?' may be in the password */
    assert_conninfo_masked("postgresql://worker:p?w@db.example/shop",
                           "postgresql://worker:****@db.example/shop");
    assert_conninfo_masked("postgresql://worker:p?w@db.example?password=z",
                           "postgresql://worker:****@db.example?password=****");
    /* nothing to hide */
    assert_conninfo_masked("postgresql://worker@db.example/shop",
                           "postgresql://worker@db.example/shop");
    assert_conninfo_masked("postgresql:///shop?host=/run/postgresql",
                           "postgresql:///shop?host=/run/postgresql");
}

static void
test_db_mask_conninfo_hides_the_password_of_a_keyword_string(void **state)
{
    (void)state;
    assert_conninfo_masked("host=db.example password=hunter2 dbname=shop",
                           "host=db.example password=**** dbname=shop");
    assert_conninfo_masked("password=hunter2", "password=****");
    assert_conninfo_masked("host=db password = hunter2 user=w", "host=db password =**** user=w");
    /* a quoted value with spaces and escaped quotes goes whole */
    assert_conninfo_masked("host=db password='a b\\' c' user=w", "host=db password=**** user=w");
    /* keys that merely contain the word stay */
    assert_conninfo_masked("host=db passfile=/etc/pgpass mypassword=x dbname=shop",
                           "host=db passfile=/etc/pgpass mypassword=x dbname=shop");
    /* the client key's passphrase is a secret as well */
    assert_conninfo_masked("host=db sslpassword=k3y dbname=shop",
                           "host=db sslpassword=**** dbname=shop");
    /* any white space separates, and a backslash escapes a space in an unquoted value */
    assert_conninfo_masked("host=db\tpassword=hunter2\ndbname=shop",
                           "host=db\tpassword=****\ndbname=shop");
    assert_conninfo_masked("host=db password=a\\ b dbname=shop",
                           "host=db password=**** dbname=shop");
    /* every occurrence: libpq takes the last */
    assert_conninfo_masked("password=one host=db password=two",
                           "password=**** host=db password=****");
    assert_conninfo_masked("host=db dbname=password_reset", "host=db dbname=password_reset");
    assert_conninfo_masked("", "");
    char *none = db_mask_conninfo(NULL);
    assert_string_equal(none, "");
    free(none);
}

/* Appends a keyword value as libpq reads it: single-quoted, quote and backslash escaped. */
static void
put_quoted(struct buf *b, const char *v)
{
    buf_putc(b, '\'');
    for (; *v != '\0'; v++) {
        if (*v == '\'' || *v == '\\')
            buf_putc(b, '\\');
        buf_putc(b, *v);
    }
    buf_putc(b, '\'');
}

/* Appends a keyword value unquoted, every white space, quote and backslash escaped. */
static void
put_escaped(struct buf *b, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == ' ' || *v == '\t' || *v == '\'' || *v == '\\')
            buf_putc(b, '\\');
        buf_putc(b, *v);
    }
}

/* Whatever libpq itself would take as a password or a key passphrase from conninfo is
 * absent from the masked copy, as are the secret as written and as percent-encoded. */
static void
assert_libpq_secrets_masked(const char *conninfo, const char *secret)
{
    char *masked = db_mask_conninfo(conninfo);
    assert_non_null(masked);
    if (strstr(masked, secret) != NULL)
        fail_msg("\"%s\" shows \"%s\" as %s", conninfo, secret, masked);
    struct buf enc;
    buf_init(&enc, 0);
    enc_percent_put(&enc, secret);
    if (strstr(masked, buf_str(&enc)) != NULL)
        fail_msg("\"%s\" shows \"%s\" as %s", conninfo, buf_str(&enc), masked);
    buf_free(&enc);
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &why);
    PQfreemem(why);
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
        bool secret_key =
            strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0;
        /* short values would match unrelated text ("db" in the host name) */
        if (secret_key && o->val != NULL && strlen(o->val) >= 4 && strstr(masked, o->val) != NULL)
            fail_msg("\"%s\": libpq's %s \"%s\" shows in %s", conninfo, o->keyword, o->val, masked);
    }
    PQconninfoFree(opts);
    free(masked);
}

static void
test_db_mask_conninfo_hides_what_libpq_would_use_as_a_password(void **state)
{
    (void)state;
    static const char *const secrets[] = {
        "hunter2-secret",
        "s3 cr3t pw",
        "it's\\mine",
        "p@ss@word99",
        "q?uery#frag",
        "amp&eq=pw12",
        "pct%41%zz99",
        "tab\tpw\tx",
        "\xc3\xbc"
        "n"
        "\xc3\xaf"
        "c"
        "\xc3\xb8"
        "de",
    };
    static const char *const keys[] = {"password", "sslpassword"};
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++) {
        const char *pw = secrets[i];
        for (size_t k = 0; k < 2; k++) {
            struct buf b;
            buf_init(&b, 0);
            /* keyword/value: quoted, escaped, after a tab, twice */
            buf_printf(&b, "host=db.example %s=", keys[k]);
            put_quoted(&b, pw);
            buf_puts(&b, " dbname=shop");
            assert_libpq_secrets_masked(buf_str(&b), pw);
            buf_reset(&b);
            buf_printf(&b, "host=db.example\t%s = ", keys[k]);
            put_escaped(&b, pw);
            buf_printf(&b, " %s=", keys[k]);
            put_quoted(&b, pw);
            assert_libpq_secrets_masked(buf_str(&b), pw);
            /* URI query: encoded, and raw */
            buf_reset(&b);
            buf_printf(&b, "postgresql://worker@db.example/shop?sslmode=disable&%s=", keys[k]);
            enc_percent_put(&b, pw);
            assert_libpq_secrets_masked(buf_str(&b), pw);
            buf_reset(&b);
            buf_printf(&b, "postgres://db.example?%s=%s&application_name=x", keys[k], pw);
            assert_libpq_secrets_masked(buf_str(&b), pw);
            buf_free(&b);
        }
        /* URI userinfo: encoded, and raw */
        struct buf b;
        buf_init(&b, 0);
        buf_puts(&b, "postgresql://worker:");
        enc_percent_put(&b, pw);
        buf_puts(&b, "@db.example:5432/shop?sslmode=require");
        assert_libpq_secrets_masked(buf_str(&b), pw);
        buf_reset(&b);
        buf_printf(&b, "postgresql://worker:%s@db.example/shop", pw);
        char *why = NULL;
        PQconninfoOption *opts = PQconninfoParse(buf_str(&b), &why);
        PQfreemem(why);
        /* as written only where libpq reads it so (a raw '#' or '?' stays inside) */
        if (opts != NULL)
            assert_libpq_secrets_masked(buf_str(&b), pw);
        PQconninfoFree(opts);
        buf_free(&b);
    }
}

static void
test_db_without_a_connection_string_is_a_config_error_naming_the_variable(void **state)
{
    (void)state;
    static const char *const empty[] = {NULL, ""};
    for (size_t i = 0; i < 2; i++) {
        struct db_options opt = {.conninfo = empty[i],
                                 .conninfo_key = "database.url",
                                 .conninfo_env = "DATABASE_URL",
                                 .connect_retries = 5};
        struct err e;
        err_clear(&e);
        assert_null(db_connect(&opt, &e));
        assert_int_equal(e.code, ERR_CONFIG);
        assert_string_contains(e.msg, "DATABASE_URL");
    }
}

static void
test_db_closed_port_is_unavailable_after_the_retries_without_the_password(void **state)
{
    (void)state;
    char *url = support_printf("postgresql://worker:hunter2-secret@127.0.0.1:%d/shop",
                               support_closed_port());
    struct db_options opt = {
        .conninfo = url, .connect_retries = 1, .retry_base_ms = 1, .connect_timeout_s = 2};
    struct err e;
    err_clear(&e);
    /* the retry is logged: read back what went to stderr */
    char *dir = support_temp_dir("test_db");
    char *path = support_path(dir, "stderr");
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
    struct db *db = db_connect(&opt, &e);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char *log = support_read_file(path);
    assert_null(db);
    assert_int_equal(e.code, ERR_UNAVAILABLE);
    assert_string_contains(e.msg, "after 2 attempts");
    assert_string_lacks(e.msg, "hunter2");
    assert_string_contains(log, "\"attempt\":1");
    assert_string_lacks(log, "hunter2");
    free(log);
    free(path);
    support_temp_dir_remove(dir);
    free(url);
}

/* db_array_*: one text array literal from the values added, as unnest() reads it. */
static char *
array_of(const char *const *values, size_t n)
{
    struct buf b;
    buf_init(&b, 0);
    db_array_begin(&b);
    for (size_t i = 0; i < n; i++)
        db_array_add(&b, values[i]);
    db_array_end(&b);
    char *s = buf_steal(&b);
    assert_non_null(s);
    return s;
}

static void
test_db_array_literal_quotes_each_value_and_separates_with_commas(void **state)
{
    (void)state;
    char *s = array_of(NULL, 0);
    assert_string_equal(s, "{}");
    free(s);
    static const char *const one[] = {"a"};
    s = array_of(one, 1);
    assert_string_equal(s, "{\"a\"}");
    free(s);
    static const char *const three[] = {"9a1e2d3c-4b5a-4697-8a7b-1c2d3e4f5a6b",
                                        "2026-03-03 09:00:00.123456+00", ""};
    s = array_of(three, 3);
    assert_string_equal(s, "{\"9a1e2d3c-4b5a-4697-8a7b-1c2d3e4f5a6b\","
                           "\"2026-03-03 09:00:00.123456+00\",\"\"}");
    free(s);
}

static void
test_db_array_literal_spells_null_bare_and_the_text_null_quoted(void **state)
{
    (void)state;
    static const char *const values[] = {NULL, "NULL", NULL};
    char *s = array_of(values, 3);
    assert_string_equal(s, "{NULL,\"NULL\",NULL}");
    free(s);
}

static void
test_db_array_literal_escapes_quotes_and_backslashes_only(void **state)
{
    (void)state;
    static const char *const values[] = {"say \"hi\"", "C:\\dir\\", "{a,b}", "x\ny'z"};
    char *s = array_of(values, 4);
    assert_string_equal(s, "{\"say \\\"hi\\\"\",\"C:\\\\dir\\\\\",\"{a,b}\",\"x\ny'z\"}");
    free(s);
}

static void
test_db_array_literal_after_other_text_starts_without_a_comma(void **state)
{
    (void)state;
    /* a buffer that already holds text: the first value follows '{' directly */
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "x=");
    db_array_begin(&b);
    db_array_add(&b, "1");
    db_array_add(&b, "2");
    db_array_end(&b);
    assert_string_equal(buf_str(&b), "x={\"1\",\"2\"}");
    buf_free(&b);
}

static void
test_db_array_literal_too_large_for_its_buffer_fails_the_buffer(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 16);
    db_array_begin(&b);
    for (int i = 0; i < 10; i++)
        db_array_add(&b, "value");
    db_array_end(&b);
    /* the caller checks once: the statement is never run with a cut-off array */
    assert_true(b.failed);
    assert_null(buf_steal(&b));
    buf_free(&b);
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
        cmocka_unit_test(test_db_mask_conninfo_hides_the_password_of_a_uri),
        cmocka_unit_test(test_db_mask_conninfo_hides_the_password_of_a_keyword_string),
        cmocka_unit_test(test_db_mask_conninfo_hides_what_libpq_would_use_as_a_password),
        cmocka_unit_test(test_db_without_a_connection_string_is_a_config_error_naming_the_variable),
        cmocka_unit_test(test_db_closed_port_is_unavailable_after_the_retries_without_the_password),
        cmocka_unit_test(test_db_array_literal_quotes_each_value_and_separates_with_commas),
        cmocka_unit_test(test_db_array_literal_spells_null_bare_and_the_text_null_quoted),
        cmocka_unit_test(test_db_array_literal_escapes_quotes_and_backslashes_only),
        cmocka_unit_test(test_db_array_literal_after_other_text_starts_without_a_comma),
        cmocka_unit_test(test_db_array_literal_too_large_for_its_buffer_fails_the_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
