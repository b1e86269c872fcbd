/* enc: the text encodings the modules share: base64 (RFC 4648 §4), its URL-safe form without
 * padding (§5), and percent-encoding (RFC 3986 §2.1). Stand-alone: no state, no errors
 * beyond a false return. */
#ifndef COMMON_ENC_H
#define COMMON_ENC_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Flags of the base64 functions. 0 is the standard alphabet with '=' padding. */
#define ENC_BASE64_URL 1u /* '-' and '_' in place of '+' and '/', and no '=' padding */

/* Room enc_base64 needs for n bytes, the terminating NUL included, in either form. */
#define ENC_BASE64_SIZE(n) (((n) + 2) / 3 * 4 + 1)

/* Writes the base64 of src[0..n) to dst (room for ENC_BASE64_SIZE(n) characters),
 * NUL-terminated; returns the characters written, the NUL not counted. */
size_t enc_base64(char *dst, const void *src, size_t n, unsigned flags);

/* Appends the base64 of src[0..n) to out. false once out has failed. */
bool enc_base64_put(struct buf *out, const void *src, size_t n, unsigned flags);

/* Decodes s[0..n) into out (room for cap bytes) and sets *out_len. Only the canonical
 * spelling is accepted, so each byte string has exactly one: characters of the flag's
 * alphabet, padding exactly where the form wants it (none for ENC_BASE64_URL), no length
 * that no encoding has, and zero bits in the last character's unused low bits. false for
 * anything else, or when the result needs more than cap bytes (out is then unspecified). */
bool enc_base64_decode(const char *s, size_t n, unsigned flags, unsigned char *out, size_t cap,
                       size_t *out_len);

/* Appends s percent-encoded: RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) as they
 * are, every other byte as %XX with upper-case hex. false once out has failed. */
bool enc_percent_put(struct buf *out, const char *s);

/* Decodes the %XX sequences of s[0..n) into out, of which it writes at most cap bytes (no
 * NUL is added); any other byte, a '%' without two hex digits after it included, passes as
 * it is. Returns the length of the whole decoding, so more than cap means it was cut. */
size_t enc_percent_decode(const char *s, size_t n, char *out, size_t cap);

#endif
