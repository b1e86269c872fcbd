/* support: helpers shared by the unit tests (see support.h). */
#include "support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db.h"

char *
support_temp_dir(const char *name)
{
    const char *tmp = getenv("TMPDIR");
    char *path = support_printf("%s/%s.XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp", name);
    if (mkdtemp(path) == NULL)
        fail_msg("mkdtemp %s failed", path);
    return path;
}

static void
remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d != NULL) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                    continue;
                char *child = support_path(path, de->d_name);
                remove_tree(child);
                free(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

void
support_temp_dir_remove(char *dir)
{
    if (dir == NULL)
        return;
    remove_tree(dir);
    struct stat st;
    if (lstat(dir, &st) == 0)
        fail_msg("%s is still there", dir);
    free(dir);
}

char *
support_path(const char *dir, const char *name)
{
    return support_printf("%s/%s", dir, name);
}

void
support_write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    if (fp == NULL)
        fail_msg("cannot write %s", path);
    size_t len = strlen(text);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

char *
support_read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n;
    while ((n = fread(text + len, 1, cap - len - 1, fp)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            text = realloc(text, cap);
            assert_non_null(text);
        }
    }
    fclose(fp);
    text[len] = '\0';
    return text;
}

FILE *
support_out_open(struct support_out *o)
{
    o->text = NULL;
    o->len = 0;
    o->fp = open_memstream(&o->text, &o->len);
    assert_non_null(o->fp);
    return o->fp;
}

char *
support_out_close(struct support_out *o)
{
    assert_int_equal(fclose(o->fp), 0);
    o->fp = NULL;
    char *text = o->text;
    o->text = NULL;
    assert_non_null(text);
    return text;
}

void
support_assert_contains(const char *haystack, const char *needle, bool want, const char *expr,
                        const char *file, int line)
{
    if (haystack == NULL) {
        print_error("%s is NULL, looking for \"%s\"\n", expr, needle);
        _fail(file, line);
    }
    bool found = strstr(haystack, needle) != NULL;
    if (found == want)
        return;
    print_error("%s %s \"%s\":\n--- %s\n%s\n---\n", expr, want ? "lacks" : "holds", needle, expr,
                haystack);
    _fail(file, line);
}

char *
support_pg_url(const char *name)
{
    const char *dir = getenv("RW_UNIT_PG_DIR");
    if (dir == NULL || dir[0] == '\0') {
        print_message("RW_UNIT_PG_DIR is not set: run through ctest, which starts PostgreSQL\n");
        skip();
    }
    char *file = support_printf("%s/%s.url", dir, name);
    char *url = support_read_file(file);
    if (url == NULL) {
        print_message("%s is missing: the unit_pg fixture did not start\n", file);
        free(file);
        skip();
    }
    free(file);
    url[strcspn(url, "\r\n")] = '\0';
    return url;
}

struct db *
support_pg_connect(const char *name)
{
    char *url = support_pg_url(name);
    struct db_options opt = {
        .conninfo = url, .connect_timeout_s = 10, .application_name = "unit-test"};
    struct err e;
    err_clear(&e);
    struct db *db = db_connect(&opt, &e);
    free(url);
    if (db == NULL)
        fail_msg("connect to %s: %s", name, e.msg);
    return db;
}

char *
support_pg_value(struct db *db, const char *sql, int nparams, const char *const *params)
{
    struct db_res *r = NULL;
    struct err e;
    err_clear(&e);
    if (db_exec(db, sql, nparams, params, &r, &e) != ERR_OK)
        fail_msg("%s\n  failed: %s", sql, e.msg);
    char *v = NULL;
    if (r != NULL && db_res_rows(r) > 0 && db_res_cols(r) > 0 && !db_res_isnull(r, 0, 0))
        v = strdup(db_res_get(r, 0, 0));
    db_res_free(r);
    return v;
}

void
support_pg_script(struct db *db, const char *sql)
{
    struct err e;
    err_clear(&e);
    if (db_exec_script(db, sql, &e) != ERR_OK)
        fail_msg("%s\n  failed: %s", sql, e.msg);
}

static long long clock_ms;

long long
support_clock_now(void)
{
    return clock_ms;
}

void
support_clock_set(long long ms)
{
    clock_ms = ms;
}

void
support_clock_sleep(long long ms)
{
    clock_ms += ms;
}

char *
support_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    char *out = malloc((size_t)n + 1);
    assert_non_null(out);
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

void
support_use_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

int
support_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
support_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}
