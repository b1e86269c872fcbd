/* page: the HTML pages of the one-click unsubscribe endpoint: the confirmation page a GET
 * shows (a button that POSTs), the answer to that POST, and the page for a link that does
 * not work. Self-contained (inline style, no script, no external asset), readable on a
 * phone, every value HTML-escaped. Pure: no I/O. */
#ifndef WORKER_PAGE_H
#define WORKER_PAGE_H

#include <stdbool.h>

#include "buf.h"
#include "policy.h"

/* The page a GET shows: what the button will do under this consent basis, and a form that
 * POSTs List-Unsubscribe=One-Click back to the same URL with the token. */
void page_unsubscribe_form(struct buf *out, const char *token, enum policy_consent basis);

/* The answer to the POST: the member is unsubscribed (already was, when already). */
void page_unsubscribed(struct buf *out, enum policy_consent basis, bool already);

/* A link or request that cannot be honoured: a title and a sentence saying what to do. */
void page_problem(struct buf *out, const char *title, const char *message);

#endif
