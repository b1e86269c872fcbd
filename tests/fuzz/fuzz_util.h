/* Shared by the libFuzzer targets: splitting an input into fields, and checks of
 * the invariants every message we build must keep. A broken invariant aborts, so libFuzzer
 * reports the input as a crash and saves it. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Prints "invariant broken: ..." to stderr and aborts. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define FUZZ_REQUIRE(cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__VA_ARGS__);                                                                \
    } while (0)

/* An input cut at NUL bytes into C strings: field i is "" past the end, and present(i)
 * tells whether the input had it at all. Values are borrowed from the struct. */
#define FUZZ_FIELDS_MAX 16
struct fuzz_fields {
    char *copy; /* the input plus a terminating NUL */
    const char *f[FUZZ_FIELDS_MAX];
    size_t len[FUZZ_FIELDS_MAX];
    size_t n; /* fields present */
};

void fuzz_fields_split(struct fuzz_fields *ff, const uint8_t *data, size_t size);
void fuzz_fields_free(struct fuzz_fields *ff);
/* Field i, or def when the input did not have it. */
const char *fuzz_field(const struct fuzz_fields *ff, size_t i, const char *def);
/* Byte i of field i0 (a control field), or def when it is shorter. */
uint8_t fuzz_byte(const struct fuzz_fields *ff, size_t field, size_t i, uint8_t def);

/* Checks a whole message as mime_build makes it: CRLF only, lines <= 998 octets, a header
 * section of printable ASCII whose lines are either a continuation or one of the header
 * names mime_build writes (each at most once; the required ones exactly once), a body that
 * is quoted-printable (lines <= 76, every '=' an escape or a soft break, no trailing
 * whitespace, no line opening with '.' or "From "), in one text/plain part or two parts of
 * multipart/alternative whose boundary occurs only as delimiters. The decoded text of
 * Subject, From and To must be valid UTF-8 without controls. When parts is non-NULL it
 * receives the decoded bodies (parts[0] text, parts[1] HTML or empty; caller frees). */
void fuzz_check_message(const char *msg, size_t len, struct buf parts[2]);

/* Checks one unstructured header field "Name: value" (as mime_header_text writes it) and
 * appends its decoded value to out. */
void fuzz_check_text_header(const char *field, size_t len, const char *name, struct buf *out);

/* Checks one address header field (as mime_header_address writes it), appends the decoded
 * display name to display and checks that the address is exactly addr. */
void fuzz_check_address_header(const char *field, size_t len, const char *name, const char *addr,
                               struct buf *display);

/* Decodes quoted-printable text (as mime_qp_encode writes it: CRLF line ends, no final line
 * break) into out, checking the encoding rules on the way. */
void fuzz_qp_decode(const char *qp, size_t len, struct buf *out);

/* Whether s[0..len) holds a C0 or C1 control, DEL, U+2028 or U+2029 (s is valid UTF-8). */
bool fuzz_has_line_controls(const char *s, size_t len);

#endif
