/* links: the two URLs in a recovery prompt: the resume link (RESUME_URL + order, and a signed
 * token when a key ring is configured) and the one-click unsubscribe link (UNSUBSCRIBE_URL +
 * a signed token), built from the settings and the key ring settings_load parsed; and the
 * claims those tokens carry.
 *
 * Claims (the payload of a v1 token, common/token.h): a JSON object with exactly these six
 * members and no others:
 *   "purpose"  "resume" or "unsubscribe"
 *   "order"    the order id
 *   "orch"     the checkout orchestration id
 *   "stage"    the orchestration's stage when the link was made
 *   "iat"      issued at, unix seconds, an integer
 *   "exp"      expires at, unix seconds, an integer; the token is valid while now < exp,
 *              and 0 <= iat <= exp <= 253402300799 (9999-12-31)
 * The three strings hold 1 to 64 printable ASCII characters (0x21-0x7E) each. Written in
 * the order above, e.g.
 *   {"purpose":"resume","order":"5f0c…","orch":"9a1e…","stage":"payment",
 *    "iat":1767225600,"exp":1769817600}
 *
 * Verification is token_verify's four steps, then:
 *   5. the payload holds the claims above                                   → MALFORMED
 *   6. now < exp                                                            → EXPIRED
 *   7. purpose is the one asked for                                         → WRONG_PURPOSE */
#ifndef WORKER_LINKS_H
#define WORKER_LINKS_H

#include <stdbool.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "settings.h"
#include "token.h"

#define LINKS_FIELD_MAX 64           /* characters in order, orch and stage */
#define LINKS_EXP_MAX 253402300799LL /* 9999-12-31T23:59:59Z */

enum links_purpose {
    LINKS_PURPOSE_ANY = 0, /* links_verify only: accept either purpose */
    LINKS_PURPOSE_RESUME,
    LINKS_PURPOSE_UNSUBSCRIBE,
};

/* token_status's values, then the two that need the claims. */
enum links_status {
    LINKS_OK = TOKEN_OK,
    LINKS_MALFORMED = TOKEN_MALFORMED, /* also: authentic, but not the claims above */
    LINKS_UNKNOWN_KEY = TOKEN_UNKNOWN_KEY,
    LINKS_BAD_SIGNATURE = TOKEN_BAD_SIGNATURE,
    LINKS_EXPIRED,       /* authentic, but now >= exp */
    LINKS_WRONG_PURPOSE, /* authentic and current, but made for the other purpose */
};

/* What a link's token carries. Plain data. */
struct links_claims {
    enum links_purpose purpose; /* RESUME or UNSUBSCRIBE, never ANY */
    char order_id[LINKS_FIELD_MAX + 1];
    char orchestration_id[LINKS_FIELD_MAX + 1];
    char stage[LINKS_FIELD_MAX + 1];
    long long issued_at;         /* unix seconds */
    long long expires_at;        /* unix seconds, exclusive */
    char kid[TOKEN_KID_MAX + 1]; /* links_verify: the key that signed; links_sign ignores it */
};

/* Appends a token for c, signed with the ring's first key, to out. c->kid is ignored.
 * ERR_DATA when a claim is out of range (purpose ANY, a string empty, too long or not
 * printable ASCII, times outside 0 <= iat <= exp <= LINKS_EXP_MAX); ERR_INTERNAL when out
 * of memory or the buffer failed. Thread-safe on a shared ring. */
int links_sign(const struct token_ring *r, const struct links_claims *c, struct buf *out,
               struct err *e);

/* Verifies token against the ring at time now, and its purpose unless want is
 * LINKS_PURPOSE_ANY. Returns LINKS_OK and fills *out (when non-NULL). Any other status sets
 * e (when non-NULL) to ERR_DATA with a message for a person; on LINKS_EXPIRED and
 * LINKS_WRONG_PURPOSE, whose tokens are authentic, *out is filled as well, otherwise it is
 * zeroed. Thread-safe on a shared ring. */
enum links_status links_verify(const struct token_ring *r, const char *token, time_t now,
                               enum links_purpose want, struct links_claims *out, struct err *e);

/* Stable names: token_status_str's, and "expired", "wrong_purpose". Never NULL. */
const char *links_status_str(enum links_status status);

/* "resume", "unsubscribe" ("any" for LINKS_PURPOSE_ANY). Never NULL. */
const char *links_purpose_str(enum links_purpose purpose);

/* Parses "resume" or "unsubscribe"; false for anything else, *out untouched. */
bool links_purpose_parse(const char *s, enum links_purpose *out);

/* The settings and the parsed key ring. Opaque and read-only once made, so one handle may
 * serve every thread of a sweep. */
struct links;

/* Whom a link is for. All strings borrowed; each goes into the token, so each must be 1 to
 * LINKS_FIELD_MAX printable ASCII characters (a UUID, a stage name). */
struct links_target {
    const char *order_id;
    const char *orchestration_id;
    const char *stage;
};

/* Returns a new handle (free with links_free) on s and its key ring s->link_keys (links are
 * unsigned when it is NULL). s is borrowed and must outlive the handle. NULL with
 * ERR_INTERNAL when out of memory. */
struct links *links_new(const struct settings *s, struct err *e);

/* Frees the handle (not the settings' key ring). NULL-safe. */
void links_free(struct links *l);

/* Whether links carry a signed token (a key ring is configured). */
bool links_signed(const struct links *l);

/* Whether an unsubscribe URL is configured (prompts then carry List-Unsubscribe). */
bool links_has_unsubscribe(const struct links *l);

/* Appends the resume link to out: RESUME_URL with "order=<order_id>" added to its query
 * ('?' or '&' as the URL needs, before any '#fragment'), then "&token=<token>" when signed
 * (purpose resume, issued now, expiring now + email.resume_link_ttl). Values are
 * percent-encoded. ERR_DATA when the target cannot go into a token or the URL does not fit
 * out; ERR_INTERNAL when signing fails. */
int links_resume_url(const struct links *l, const struct links_target *t, time_t now,
                     struct buf *out, struct err *e);

/* Appends the unsubscribe link to out: UNSUBSCRIBE_URL with "token=<token>" added to its
 * query (purpose unsubscribe, expiring now + email.unsubscribe_link_ttl). Appends nothing
 * and returns ERR_OK when no unsubscribe URL is configured (test links_has_unsubscribe, or
 * out->len, to pass NULL on). ERR_CONFIG when an unsubscribe URL is configured without a key
 * ring: an unsigned link would let anyone unsubscribe any member. Other errors as
 * links_resume_url. */
int links_unsubscribe_url(const struct links *l, const struct links_target *t, time_t now,
                          struct buf *out, struct err *e);

/* Verifies an unsubscribe link's token with the key ring at time now (links_verify with
 * purpose unsubscribe). LINKS_UNKNOWN_KEY when links are unsigned (no ring: nothing can be
 * verified). */
enum links_status links_verify_unsubscribe(const struct links *l, const char *token, time_t now,
                                           struct links_claims *out, struct err *e);

#endif
