/* Unit tests for common/enc: base64 in both forms against RFC 4648 §10, canonical decoding
 * only, and percent-encoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#include "buf.h"
#include "enc.h"

static void
check_encode(const char *in, unsigned flags, const char *want)
{
    char out[ENC_BASE64_SIZE(16)];
    assert_int_equal(enc_base64(out, in, strlen(in), flags), strlen(want));
    assert_string_equal(out, want);
    struct buf b;
    buf_init(&b, 0);
    assert_true(enc_base64_put(&b, in, strlen(in), flags));
    assert_string_equal(buf_str(&b), want);
    buf_free(&b);
}

static void
test_enc_base64_matches_the_rfc_4648_vectors(void **state)
{
    (void)state;
    static const char *const v[][3] = {
        {"", "", ""},
        {"f", "Zg==", "Zg"},
        {"fo", "Zm8=", "Zm8"},
        {"foo", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg==", "Zm9vYg"},
        {"fooba", "Zm9vYmE=", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        check_encode(v[i][0], 0, v[i][1]);
        check_encode(v[i][0], ENC_BASE64_URL, v[i][2]);
    }
}

static void
test_enc_base64_url_form_uses_dash_and_underscore(void **state)
{
    (void)state;
    check_encode("\xfb\xff\xbf", 0, "+/+/");
    check_encode("\xfb\xff\xbf", ENC_BASE64_URL, "-_-_");
    check_encode("\xfb\xff", ENC_BASE64_URL, "-_8");
}

static void
test_enc_base64_put_encodes_more_than_one_chunk(void **state)
{
    (void)state;
    enum { N = 5000 };
    unsigned char *in = malloc(N);
    assert_non_null(in);
    for (size_t i = 0; i < N; i++)
        in[i] = (unsigned char)(i * 7 + 3);
    struct buf b;
    buf_init(&b, 0);
    assert_true(enc_base64_put(&b, in, N, ENC_BASE64_URL));
    char *whole = malloc(ENC_BASE64_SIZE(N));
    assert_non_null(whole);
    size_t n = enc_base64(whole, in, N, ENC_BASE64_URL);
    assert_int_equal(b.len, n);
    assert_string_equal(buf_str(&b), whole);
    unsigned char *back = malloc(N);
    size_t back_len = 0;
    assert_true(enc_base64_decode(whole, n, ENC_BASE64_URL, back, N, &back_len));
    assert_int_equal(back_len, N);
    assert_memory_equal(back, in, N);
    free(back);
    free(whole);
    buf_free(&b);
    free(in);
}

static bool
decodes(const char *s, unsigned flags, const char *want)
{
    unsigned char out[32];
    size_t len = 0;
    if (!enc_base64_decode(s, strlen(s), flags, out, sizeof out, &len))
        return false;
    assert_int_equal(len, strlen(want));
    assert_memory_equal(out, want, len);
    return true;
}

static void
test_enc_base64_decode_accepts_each_canonical_spelling(void **state)
{
    (void)state;
    assert_true(decodes("", 0, ""));
    assert_true(decodes("Zg==", 0, "f"));
    assert_true(decodes("Zm8=", 0, "fo"));
    assert_true(decodes("Zm9vYmFy", 0, "foobar"));
    assert_true(decodes("Zg", ENC_BASE64_URL, "f"));
    assert_true(decodes("Zm8", ENC_BASE64_URL, "fo"));
    assert_true(decodes("-_-_", ENC_BASE64_URL, "\xfb\xff\xbf"));
    assert_true(decodes("+/+/", 0, "\xfb\xff\xbf"));
}

static void
test_enc_base64_decode_refuses_anything_else(void **state)
{
    (void)state;
    assert_false(decodes("Zh==", 0, "")); /* unused bits set */
    assert_false(decodes("Zm9=", 0, ""));
    assert_false(decodes("Zh", ENC_BASE64_URL, ""));
    assert_false(decodes("Zg", 0, ""));                /* padding missing */
    assert_false(decodes("Zg==", ENC_BASE64_URL, "")); /* padding in the URL form */
    assert_false(decodes("Z", ENC_BASE64_URL, ""));    /* a length no encoding has */
    assert_false(decodes("Zm9vY", ENC_BASE64_URL, ""));
    assert_false(decodes("+/+/", ENC_BASE64_URL, "")); /* the other alphabet */
    assert_false(decodes("-_-_", 0, ""));
    assert_false(decodes("Zm 9v", ENC_BASE64_URL, ""));
    assert_false(decodes(" Zm9v", 0, ""));
    assert_false(decodes("Z===", 0, ""));
    assert_false(decodes("====", 0, ""));
    assert_false(decodes("Zg=a", 0, ""));
    unsigned char small[2];
    size_t len = 0;
    assert_false(enc_base64_decode("Zm9v", 4, 0, small, sizeof small, &len)); /* too long */
    assert_true(enc_base64_decode("Zm8", 3, ENC_BASE64_URL, small, sizeof small, &len));
    assert_int_equal(len, 2);
}

static void
test_enc_percent_leaves_unreserved_characters_and_escapes_the_rest(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    assert_true(enc_percent_put(&b, "AZaz09-._~"));
    assert_true(enc_percent_put(&b, " /?#&=+%\xc3\xa9"));
    assert_string_equal(buf_str(&b), "AZaz09-._~%20%2F%3F%23%26%3D%2B%25%C3%A9");
    buf_free(&b);
    buf_init(&b, 4);
    assert_false(enc_percent_put(&b, "a b"));
    buf_free(&b);
}

static void
assert_decodes(const char *s, const char *expected)
{
    char out[32];
    size_t n = enc_percent_decode(s, strlen(s), out, sizeof out);
    assert_int_equal(n, strlen(expected));
    assert_memory_equal(out, expected, n);
}

static void
test_enc_percent_decode_reads_what_the_encoder_writes_and_leaves_broken_escapes(void **state)
{
    (void)state;
    assert_decodes("pass%77ord", "password");
    assert_decodes("%2F%2f%C3%A9+x", "//\xc3\xa9+x");
    assert_decodes("", "");
    struct buf b;
    buf_init(&b, 0);
    assert_true(enc_percent_put(&b, " /?#&=+%~"));
    assert_decodes(buf_str(&b), " /?#&=+%~");
    buf_free(&b);
    /* a '%' without two hex digits after it is an ordinary byte */
    assert_decodes("%", "%");
    assert_decodes("a%4", "a%4");
    assert_decodes("%zz%41", "%zzA");
    /* a cut: the whole length is returned, only cap bytes written */
    char out[4] = {'#', '#', '#', '#'};
    assert_int_equal(enc_percent_decode("%41b%43de", 9, out, 3), 5);
    assert_memory_equal(out, "AbC#", 4);
    /* n bounds the input: an escape cut by it is not decoded */
    assert_int_equal(enc_percent_decode("%41%41", 5, out, sizeof out), 3);
    assert_memory_equal(out, "A%4", 3);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enc_base64_matches_the_rfc_4648_vectors),
        cmocka_unit_test(test_enc_base64_url_form_uses_dash_and_underscore),
        cmocka_unit_test(test_enc_base64_put_encodes_more_than_one_chunk),
        cmocka_unit_test(test_enc_base64_decode_accepts_each_canonical_spelling),
        cmocka_unit_test(test_enc_base64_decode_refuses_anything_else),
        cmocka_unit_test(test_enc_percent_leaves_unreserved_characters_and_escapes_the_rest),
        cmocka_unit_test(
            test_enc_percent_decode_reads_what_the_encoder_writes_and_leaves_broken_escapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
