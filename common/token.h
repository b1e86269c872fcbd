/* token: signed tokens for links in email, made with HMAC-SHA256 so that a storefront can
 * check them with any HMAC library and nobody without the key can forge or alter one. A token
 * carries a JSON object of claims that belong to the caller: this module signs and verifies
 * it, and reads nothing inside it (what the claims are, and when they expire, is the
 * caller's to check).
 *
 * Format, version 1 (ASCII, URL-safe, no escaping needed in a query string):
 *
 *     v1.<kid>.<payload>.<mac>
 *
 *   kid      id of the key that signed: 1 to 16 characters of A-Z a-z 0-9 _ -
 *   payload  base64url (RFC 4648 §5: '-' and '_', no '=' padding) of the claims, a UTF-8
 *            JSON object, written by this module without whitespace and with its members in
 *            the object's order (a verifier parses the JSON, so another signer may order or
 *            space it freely)
 *   mac      base64url, no padding (43 characters), of the 32-byte
 *              HMAC-SHA256(key = the secret of <kid>, taken as its bytes,
 *                          message = "v1.<kid>.<payload>")
 *            i.e. of everything before the last '.', exactly as it appears in the token.
 *
 * A whole token is at most TOKEN_MAX characters. Base64url text must be canonical (unused
 * low bits zero), so each token has exactly one spelling.
 *
 * Verification goes in this order, and stops at the first failure:
 *   1. shape: four '.'-separated parts, "v1", kid syntax, base64url, lengths  → MALFORMED
 *   2. kid is in the key ring                                                → UNKNOWN_KEY
 *   3. the MAC matches, compared in constant time (CRYPTO_memcmp)            → BAD_SIGNATURE
 *   4. the payload is a JSON object without duplicate keys (read only once
 *      the MAC matched)                                                      → MALFORMED
 *
 * Keys: a ring of (kid, secret) pairs. The first signs; every one verifies, so a key is
 * rotated by putting a new one first and removing the old one once its last token expired.
 * Secrets are never logged, printed or quoted in an error message. */
#ifndef COMMON_TOKEN_H
#define COMMON_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "buf.h"
#include "err.h"

#define TOKEN_MAX 1024        /* characters in a whole token */
#define TOKEN_KID_MAX 16      /* characters in a key id */
#define TOKEN_SECRET_MIN 32   /* bytes: shorter is guessable offline from one signed link */
#define TOKEN_SECRET_MAX 1024 /* bytes */
#define TOKEN_RING_MAX 16     /* keys in a ring */
#define TOKEN_MAC_LEN 32      /* bytes of HMAC-SHA256 */
#define TOKEN_DEFAULT_KID "k1"

enum token_status {
    TOKEN_OK = 0,
    TOKEN_MALFORMED,     /* not a well-formed v1 token, or a signed payload that is not */
    TOKEN_UNKNOWN_KEY,   /* its kid is not in the ring (removed after rotation, or forged) */
    TOKEN_BAD_SIGNATURE, /* the MAC does not match: tampered with, or another key */
};

/* A parsed key ring: opaque, immutable once parsed, so one ring may be shared by threads. */
struct token_ring;

/* Parses a key ring from one string (new; free with token_ring_free):
 *   "kid1:secret1,kid2:secret2"  kid1 signs, both verify; secrets cannot contain ','
 *   "secret"                     one secret with kid "k1": a value that does not start
 *                                with "<kid>:" is taken whole, commas and colons included
 * Every secret needs TOKEN_SECRET_MIN to TOKEN_SECRET_MAX bytes; kids are unique, at most
 * TOKEN_RING_MAX keys. On failure returns ERR_CONFIG (ERR_INTERNAL when out of memory) with
 * a message that names the kid or the entry's position, never any part of a secret, and
 * leaves *out NULL. */
int token_ring_parse(const char *spec, struct token_ring **out, struct err *e);

/* Wipes the secrets and frees the ring. NULL-safe. */
void token_ring_free(struct token_ring *r);

size_t token_ring_count(const struct token_ring *r);

/* The kid of the i-th key (0 is the one that signs). Borrowed; NULL past the end. */
const char *token_ring_kid(const struct token_ring *r, size_t i);

/* Appends a token carrying claims (borrowed; a JSON object), signed with the ring's first
 * key, to out. ERR_DATA when claims is not an object; ERR_INTERNAL when there is no key, out
 * of memory, the token would pass TOKEN_MAX or the buffer failed. Thread-safe on a shared
 * ring. */
int token_sign(const struct token_ring *r, const json_t *claims, struct buf *out, struct err *e);

/* Verifies token against the ring. On TOKEN_OK sets *claims (when non-NULL) to the signed
 * object (new: json_decref) and kid (when non-NULL) to the key that signed. Any other
 * status sets e (when non-NULL) to ERR_DATA with a message for a person ("signed by unknown
 * key \"k9\""), *claims to NULL and kid to "". Never reads past TOKEN_MAX + 1 characters of
 * token. Thread-safe on a shared ring. */
enum token_status token_verify(const struct token_ring *r, const char *token, json_t **claims,
                               char kid[TOKEN_KID_MAX + 1], struct err *e);

/* Stable names: "ok", "malformed", "unknown_key", "bad_signature". Never NULL. */
const char *token_status_str(enum token_status status);

/* HMAC-SHA256 of msg under key into out. The primitive under every token, exported so that
 * it can be checked against the RFC 4231 vectors. Returns false only if libcrypto fails. */
bool token_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                       unsigned char out[TOKEN_MAC_LEN]);

#endif
