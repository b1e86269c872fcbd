/* test_buf: the bounded buffer of common/buf.c: appends, the hard maximum, the sticky
 * failure that lets a builder check once, reset, steal and free. */
#include <stdlib.h>
#include <string.h>

#include "support.h"

#include "buf.h"

static void
test_buf_empty_buffer_reads_as_the_empty_string(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    assert_string_equal(buf_str(&b), "");
    assert_int_equal(b.len, 0);
    assert_int_equal(b.max, BUF_DEFAULT_MAX);
    assert_false(b.failed);
    char *s = buf_steal(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    buf_free(&b);
}

static void
test_buf_appends_concatenate_and_stay_nul_terminated(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    assert_true(buf_puts(&b, "order "));
    assert_true(buf_printf(&b, "%s-%04d", "SO", 42));
    assert_true(buf_putc(&b, ' '));
    assert_true(buf_append(&b, "total=129.00; ignored", 12));
    assert_true(buf_append(&b, NULL, 0));
    assert_string_equal(buf_str(&b), "order SO-0042 total=129.00");
    assert_int_equal(b.len, strlen("order SO-0042 total=129.00"));
    assert_int_equal(b.data[b.len], '\0');
    buf_free(&b);
}

static void
test_buf_keeps_embedded_nul_bytes_in_its_length(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    assert_true(buf_append(&b, "a\0b", 3));
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 4);
    buf_free(&b);
}

static void
test_buf_grows_past_its_first_allocation(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i < 10000; i++)
        assert_true(buf_putc(&b, (char)('a' + i % 26)));
    assert_int_equal(b.len, 10000);
    assert_true(b.cap > b.len);
    assert_int_equal(buf_str(&b)[9999], 'a' + 9999 % 26);
    assert_int_equal(strlen(buf_str(&b)), 10000);
    buf_free(&b);
}

static void
test_buf_may_fill_up_to_its_maximum_exactly(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_true(buf_puts(&b, "12345678"));
    assert_false(b.failed);
    assert_string_equal(buf_str(&b), "12345678");
    buf_free(&b);
}

static void
test_buf_append_past_the_maximum_fails_and_drops_the_contents(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_true(buf_puts(&b, "1234"));
    assert_false(buf_puts(&b, "56789"));
    assert_true(b.failed);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
    buf_free(&b);
}

static void
test_buf_failure_is_sticky_for_every_kind_of_append(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4);
    assert_false(buf_puts(&b, "too long"));
    /* each of these would fit on its own: the buffer stays failed */
    assert_false(buf_putc(&b, 'x'));
    assert_false(buf_puts(&b, "y"));
    assert_false(buf_append(&b, "z", 1));
    assert_false(buf_printf(&b, "%d", 1));
    assert_true(b.failed);
    assert_int_equal(b.len, 0);
    /* a builder checks once, at the end */
    assert_null(buf_steal(&b));
    buf_free(&b);
}

static void
test_buf_printf_past_the_maximum_fails(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 10);
    assert_true(buf_printf(&b, "%05d", 7));
    assert_false(buf_printf(&b, "%s", "123456"));
    assert_true(b.failed);
    assert_null(buf_steal(&b));
    buf_free(&b);
}

static void
test_buf_huge_length_fails_without_wrapping_around(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    assert_true(buf_puts(&b, "x"));
    /* len + extra would overflow size_t: refused, never a short allocation */
    assert_false(buf_append(&b, "", SIZE_MAX));
    assert_true(b.failed);
    buf_free(&b);
}

static void
test_buf_reset_clears_the_failure_and_the_contents(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4);
    assert_false(buf_puts(&b, "12345"));
    buf_reset(&b);
    assert_false(b.failed);
    assert_string_equal(buf_str(&b), "");
    assert_true(buf_puts(&b, "1234"));
    assert_string_equal(buf_str(&b), "1234");

    /* on a healthy buffer it empties and keeps the allocation */
    size_t cap = b.cap;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_string_equal(buf_str(&b), "");
    buf_free(&b);
}

static void
test_buf_steal_hands_over_the_contents_and_empties_the_buffer(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "prompt");
    char *s = buf_steal(&b);
    assert_string_equal(s, "prompt");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
    /* the buffer is usable again and no longer shares the stolen memory */
    assert_true(buf_puts(&b, "next"));
    assert_string_equal(s, "prompt");
    assert_string_equal(buf_str(&b), "next");
    free(s);
    buf_free(&b);
}

static void
test_buf_free_is_null_safe_and_may_be_repeated(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "x");
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    buf_free(&b);
    buf_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_empty_buffer_reads_as_the_empty_string),
        cmocka_unit_test(test_buf_appends_concatenate_and_stay_nul_terminated),
        cmocka_unit_test(test_buf_keeps_embedded_nul_bytes_in_its_length),
        cmocka_unit_test(test_buf_grows_past_its_first_allocation),
        cmocka_unit_test(test_buf_may_fill_up_to_its_maximum_exactly),
        cmocka_unit_test(test_buf_append_past_the_maximum_fails_and_drops_the_contents),
        cmocka_unit_test(test_buf_failure_is_sticky_for_every_kind_of_append),
        cmocka_unit_test(test_buf_printf_past_the_maximum_fails),
        cmocka_unit_test(test_buf_huge_length_fails_without_wrapping_around),
        cmocka_unit_test(test_buf_reset_clears_the_failure_and_the_contents),
        cmocka_unit_test(test_buf_steal_hands_over_the_contents_and_empties_the_buffer),
        cmocka_unit_test(test_buf_free_is_null_safe_and_may_be_repeated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
