/* page: small HTML documents, escaped with mime_html_escape (the same escaping as the HTML
 * part of the prompts). */
#include "page.h"

#include "mime.h"

/* Large type and a large button; system fonts; colours with a contrast ratio above 7:1, and
 * a visible focus ring for keyboard users. */
static const char STYLE[] =
    "body{margin:0;padding:1.5rem;font-family:system-ui,-apple-system,'Segoe UI',Roboto,"
    "Arial,sans-serif;font-size:1.125rem;line-height:1.5;color:#1a1a1a;background:#ffffff}"
    "main{max-width:32rem;margin:2rem auto}"
    "h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}"
    "p,form{margin:0 0 1rem}"
    "button{font:inherit;font-weight:600;min-height:3rem;width:100%;padding:.75rem 1.25rem;"
    "border:0;border-radius:.5rem;background:#0b4fbf;color:#ffffff;cursor:pointer}"
    "button:hover{background:#093f99}"
    "button:focus-visible{outline:3px solid #1a1a1a;outline-offset:3px}"
    ".note{font-size:1rem;color:#404040}"
    "@media (prefers-color-scheme:dark){body{background:#121212;color:#f0f0f0}"
    ".note{color:#c8c8c8}button{background:#5b9bff;color:#0a0a0a}"
    "button:hover{background:#7fb1ff}button:focus-visible{outline-color:#f0f0f0}}";

static void
head(struct buf *out, const char *title)
{
    buf_puts(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                  "<meta name=\"robots\" content=\"noindex, nofollow\">\n<title>");
    mime_html_escape(out, title);
    buf_printf(out, "</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n<h1>", STYLE);
    mime_html_escape(out, title);
    buf_puts(out, "</h1>\n");
}

static void
tail(struct buf *out)
{
    buf_puts(out, "</main>\n</body>\n</html>\n");
}

static void
para(struct buf *out, const char *cls, const char *text)
{
    buf_puts(out, cls != NULL ? "<p class=\"" : "<p>");
    if (cls != NULL) {
        mime_html_escape(out, cls);
        buf_puts(out, "\">");
    }
    mime_html_escape(out, text);
    buf_puts(out, "</p>\n");
}

/* What the member stops receiving, in the words of the preference that is turned off. */
static const char *
what_stops(enum policy_consent basis)
{
    struct policy_opt_out o = policy_unsubscribe(basis);
    if (o.order_updates)
        return "You will no longer receive order update emails, including these reminders "
               "about checkouts you have not finished.";
    return "You will no longer receive marketing emails from us, including these reminders "
           "about checkouts you have not finished. Emails about your orders still arrive.";
}

void
page_unsubscribe_form(struct buf *out, const char *token, enum policy_consent basis)
{
    head(out, "Unsubscribe from checkout reminders");
    para(out, NULL, what_stops(basis));
    para(out, NULL, "Nothing changes until you press the button.");
    /* A relative action keeps the path the member's browser used, whatever proxy is in
     * front; the token rides in the query string, as in the link. */
    buf_puts(out, "<form method=\"post\" action=\"?token=");
    mime_html_escape(out, token);
    buf_puts(out, "\">\n<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\n"
                  "<button type=\"submit\">Unsubscribe</button>\n</form>\n");
    para(out, "note",
         "You can turn these emails back on at any time in your account's "
         "notification settings.");
    tail(out);
}

void
page_unsubscribed(struct buf *out, enum policy_consent basis, bool already)
{
    head(out, already ? "You were already unsubscribed" : "You are unsubscribed");
    para(out, NULL, what_stops(basis));
    para(out, "note",
         "Changed your mind? Turn these emails back on in your account's "
         "notification settings.");
    tail(out);
}

void
page_problem(struct buf *out, const char *title, const char *message)
{
    head(out, title);
    para(out, NULL, message);
    tail(out);
}
