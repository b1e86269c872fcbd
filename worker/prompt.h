/* prompt: the recovery email for one orchestration, rendered from per-stage templates
 * (subject, text, HTML) into a complete MIME message. Values are HTML-escaped in the HTML
 * part; nothing from the database reaches a header unencoded. */
#ifndef WORKER_PROMPT_H
#define WORKER_PROMPT_H

#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "mime.h"

/* The longest link a prompt carries; prompt_render refuses a longer one. */
#define PROMPT_URL_MAX 2048
/* The longest unsubscribe link: it also goes in List-Unsubscribe, inside angle brackets. */
#define PROMPT_UNSUBSCRIBE_URL_MAX (MIME_LIST_UNSUBSCRIBE_MAX - 2)
/* What a prompt's Message-ID holds before "@" and the sender's domain (prompt_message_id):
 * "recovery.", the orchestration's UUID, ".", the due time in microseconds (up to 20). */
#define PROMPT_MESSAGE_ID_LOCAL_MAX (sizeof "recovery." - 1 + 36 + 1 + 20)

struct prompt_templates; /* opaque: loaded and checked once at start-up */

/* What a prompt says. All strings borrowed, UTF-8, possibly hostile. */
struct prompt_input {
    const char *stage;        /* a stage name of transition.h, not "completed" */
    const char *member_name;  /* display name, may be NULL or empty (a fallback is used) */
    const char *member_email; /* validated recipient */
    const char *order_id;
    const char *order_number;
    const char *total;    /* "129.00" */
    const char *currency; /* "EUR" */
    long pending_intents;
    const char *resume_url;         /* full link, token included */
    const char *unsubscribe_url;    /* NULL when none configured */
    const char *unsubscribe_mailto; /* optional second List-Unsubscribe target (an address) */
    const char *sender_email;
    const char *sender_name;
    const char *message_id; /* without angle brackets */
    time_t date;
};

/* Loads the built-in templates, overridden per file by dir (NULL for none). Every template
 * is parsed now: an unknown placeholder or unreadable file is ERR_CONFIG naming the file. */
struct prompt_templates *prompt_templates_load(const char *dir, struct err *e);
void prompt_templates_free(struct prompt_templates *t);

/* Writes the Message-ID (without angle brackets) of the prompt for one due occurrence of an
 * orchestration: deterministic, so a resend carries the same id and a duplicate can be
 * recognised by the receiving side as well as in the ledger. due_us may be NULL ("0");
 * the domain is the sender's ("localhost" when it has none). out holds
 * MIME_MESSAGE_ID_MAX + 1 bytes. */
void prompt_message_id(char out[MIME_MESSAGE_ID_MAX + 1], const char *orchestration_id,
                       const char *due_us, const char *sender_email);

/* Appends the complete message to out. ERR_DATA when the input cannot make a safe message
 * (unknown stage, invalid address). */
int prompt_render(const struct prompt_templates *t, const struct prompt_input *in, struct buf *out,
                  struct err *e);

#endif
