/* links: the two URLs in a recovery prompt: the resume link (RESUME_URL + order, and a signed
 * token when a key ring is configured) and the one-click unsubscribe link (UNSUBSCRIBE_URL +
 * a signed token), built from the settings with the key ring parsed once. */
#ifndef WORKER_LINKS_H
#define WORKER_LINKS_H

#include <stdbool.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "settings.h"
#include "token.h"

/* The settings and the parsed key ring. Opaque and read-only once made, so one handle may
 * serve every thread of a sweep. */
struct links;

/* Whom a link is for. All strings borrowed; each goes into the token, so each must be 1 to
 * TOKEN_FIELD_MAX printable ASCII characters (a UUID, a stage name). */
struct links_target {
    const char *order_id;
    const char *orchestration_id;
    const char *stage;
};

/* Returns a new handle (free with links_free), parsing s->resume_link_secret once when it
 * is set. s is borrowed and must outlive the handle. NULL with ERR_CONFIG when the key ring
 * does not parse (settings_load has already refused that), ERR_INTERNAL when out of
 * memory. */
struct links *links_new(const struct settings *s, struct err *e);

/* Frees the handle and wipes the key ring. NULL-safe. */
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

/* Verifies an unsubscribe link's token with the key ring at time now (token_verify with
 * purpose unsubscribe). TOKEN_UNKNOWN_KEY when links are unsigned (no ring: nothing can be
 * verified). */
enum token_status links_verify_unsubscribe(const struct links *l, const char *token, time_t now,
                                           struct token_claims *out, struct err *e);

#endif
