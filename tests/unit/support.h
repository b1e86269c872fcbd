/* support: what the unit tests share: cmocka and the headers it needs before it, temporary
 * directories and files, output captured from a FILE *, string assertions that print both
 * strings, a clock the test moves, the PostgreSQL of the pg-labelled tests, and a few small
 * formatting helpers. Every helper fails the running test (cmocka) instead of returning an
 * error. */
#ifndef TESTS_UNIT_SUPPORT_H
#define TESTS_UNIT_SUPPORT_H

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>

/* ---- temporary files -------------------------------------------------------------------- */

/* A fresh directory "$TMPDIR/<name>.XXXXXX" (/tmp without TMPDIR). New: remove and free with
 * support_temp_dir_remove. */
char *support_temp_dir(const char *name);

/* Removes dir with everything below it, then frees dir; NULL-safe. */
void support_temp_dir_remove(char *dir);

/* "dir/name" (new; free()). */
char *support_path(const char *dir, const char *name);

/* Writes text to path, replacing it. */
void support_write_file(const char *path, const char *text);

/* The whole of path, NUL-terminated (new; free()), or NULL when it cannot be read. */
char *support_read_file(const char *path);

/* ---- captured output -------------------------------------------------------------------- */

/* A FILE * whose output becomes a string: support_out_open, write to o->fp, then
 * support_out_close hands over the text. */
struct support_out {
    FILE *fp;
    char *text;
    size_t len;
};

FILE *support_out_open(struct support_out *o);
/* Closes o->fp; returns what was written (new; free()), never NULL. */
char *support_out_close(struct support_out *o);

/* ---- assertions ------------------------------------------------------------------------- */

/* Named like cmocka's own assert_string_equal, whose family they join; on failure they print
 * both strings. */
#define assert_string_contains(haystack, needle)                                                   \
    support_assert_contains((haystack), (needle), true, #haystack, __FILE__, __LINE__)
#define assert_string_lacks(haystack, needle)                                                      \
    support_assert_contains((haystack), (needle), false, #haystack, __FILE__, __LINE__)

void support_assert_contains(const char *haystack, const char *needle, bool want, const char *expr,
                             const char *file, int line);

/* ---- a clock the test moves ------------------------------------------------------------- */

/* Milliseconds on the test's clock, for modules that take a clock function (pace_new). */
long long support_clock_now(void);
void support_clock_set(long long ms);
/* Moves the clock on by ms: a sleep that takes no time (pace_set_sleep). */
void support_clock_sleep(long long ms);

/* ---- PostgreSQL (tests labelled pg) ----------------------------------------------------- */

struct db;

/* The URL of the fixture's database `name` ("store": migrated; "migrate": empty), read from
 * $RW_UNIT_PG_DIR/<name>.url (new; free()). Skips the running test when there is none:
 * run through ctest, which starts the cluster (tests/support/unit_pg.py). */
char *support_pg_url(const char *name);

/* A connection to that database (new: db_close), or the test is skipped as above. */
struct db *support_pg_connect(const char *name);

/* Runs sql with text parameters; fails the test on an error. Returns the first column of
 * the first row (new; free()), NULL when there is no row or it is SQL NULL. */
char *support_pg_value(struct db *db, const char *sql, int nparams, const char *const *params);

/* Runs a script of statements without parameters; fails the test on an error. */
void support_pg_script(struct db *db, const char *sql);

/* ---- formatting ------------------------------------------------------------------------- */

/* A new string (free()) formatted like printf. */
char *support_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sets TZ (e.g. "UTC") for what the code formats in local time. */
void support_use_tz(const char *tz);

/* The value of an upper-case hex digit, as quoted-printable and percent-encoding write them;
 * -1 for anything else (lower case included). */
int support_hex_digit(char c);

/* A loopback TCP port that nothing listens on (bound, read back and closed). */
int support_closed_port(void);

#endif
