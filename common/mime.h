/* mime: builds RFC 5322 messages with RFC 2045-2047 MIME: validated header values, encoded
 * words for non-ASCII, folded lines, quoted-printable UTF-8 bodies, multipart/alternative.
 * Nothing here lets CR, LF or NUL from a value reach a header. */
#ifndef COMMON_MIME_H
#define COMMON_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "err.h"

/* Display names are cut to this many bytes (on a character boundary) before encoding. */
#define MIME_NAME_MAX 256
/* Unstructured header text (Subject) is cut to this many bytes before encoding. */
#define MIME_TEXT_MAX 998
/* The longest message id mime_build accepts (without angle brackets). */
#define MIME_MESSAGE_ID_MAX 250
/* The longest List-Unsubscribe value mime_build accepts: it cannot be folded inside a URI,
 * and the line must stay within 998 octets with its "List-Unsubscribe: " name. */
#define MIME_LIST_UNSUBSCRIBE_MAX 900

struct mime_message {
    const char *from_name;        /* optional display name (any UTF-8; CR/LF/controls removed) */
    const char *from_addr;        /* validated mailbox */
    const char *to_name;          /* optional display name */
    const char *to_addr;          /* validated mailbox */
    const char *subject;          /* UTF-8; controls removed, encoded when not ASCII */
    const char *message_id;       /* without angle brackets, e.g. "abc.123@shop.example" */
    time_t date;                  /* Date header, local time with numeric zone */
    const char *text_body;        /* UTF-8, any line ends */
    const char *html_body;        /* UTF-8, any line ends; NULL for text only */
    const char *list_unsubscribe; /* optional: value of List-Unsubscribe ("<https://...>") */
    bool list_unsubscribe_post;   /* add List-Unsubscribe-Post: List-Unsubscribe=One-Click */
};

/* Appends the whole message (headers, blank line, body) to out, CRLF line ends, every line
 * <= 998 octets. Fails with ERR_DATA if an address, the message id or the List-Unsubscribe
 * value is not acceptable (nothing is appended then), and with ERR_INTERNAL when out fails
 * (its limit or out of memory). */
int mime_build(const struct mime_message *m, struct buf *out, struct err *e);

/* Appends "Name: value" as a header, encoding value as RFC 2047 encoded words when it is not
 * printable ASCII, folding at 78 columns, and dropping controls (see mime_clean_text; the
 * value is cut to MIME_TEXT_MAX bytes). Used by mime_build. */
void mime_header_text(struct buf *out, const char *name, const char *value);

/* Whether addr may stand in a header this module builds (From, To, a mailto): addr_valid
 * without address literals. Callers deciding whether a message can be built ask this. */
bool mime_address_valid(const char *addr);

/* Appends "Name: display <addr>" with the display name quoted or encoded as needed (cleaned
 * and cut to MIME_NAME_MAX bytes); "Name: addr" when display is NULL or blank. Returns false
 * and appends nothing when addr fails mime_address_valid. */
bool mime_header_address(struct buf *out, const char *name, const char *display, const char *addr);

/* Appends text encoded as quoted-printable (RFC 2045 §6.7), lines normalised to CRLF,
 * encoded lines <= 76 octets. Invalid UTF-8 becomes U+FFFD; a character is never split
 * across a soft line break. No line break is added after the last line. */
void mime_qp_encode(struct buf *out, const char *text);

/* Appends s with &, <, >, " and ' escaped for HTML text and attribute values. */
void mime_html_escape(struct buf *out, const char *s);

/* Whether s holds a CR, LF, NUL or other C0 control (TAB allowed) or DEL. */
bool mime_has_controls(const char *s);

/* Appends s (NULL is "") as one line of valid UTF-8: every control (C0, DEL, C1, TAB, line
 * and paragraph separators) becomes a space, runs of spaces become one, leading and trailing
 * spaces go, invalid bytes become U+FFFD, and the result is cut to at most max bytes on a
 * character boundary. */
void mime_clean_text(struct buf *out, const char *s, size_t max);

/* Whether s[0..len) is well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF). */
bool mime_utf8_valid(const char *s, size_t len);

/* Whether id (without angle brackets) is a dot-atom "@" dot-atom of at most 250 octets. */
bool mime_message_id_valid(const char *id);

#endif
