/* smtp: submit many prepared messages over one SMTP session (libESMTP), and classify each
 * reply as sent, deferred, failed or unknown where it is seen. libESMTP's types stay here. */
#ifndef COMMON_SMTP_H
#define COMMON_SMTP_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

enum smtp_tls { SMTP_TLS_NONE = 0, SMTP_TLS_STARTTLS, SMTP_TLS_IMPLICIT };

struct smtp_config {
    const char *host; /* borrowed */
    int port;
    enum smtp_tls tls;
    const char *ca_file;    /* optional; system CAs otherwise */
    const char *username;   /* optional; AUTH only when set */
    const char *password;   /* optional */
    const char *helo_name;  /* optional; EHLO name, validated; the host name otherwise */
    int timeout_ms;         /* per-reply timeout; <= 0: 60000, floor 1000 */
    int connect_timeout_ms; /* TCP connect deadline (libESMTP has none); <= 0: 10000 */
};

/* What a 4xx/5xx reply means beyond the one message (decided by smtp_reply_kind). */
enum smtp_reply_kind {
    SMTP_KIND_NONE = 0,  /* nothing beyond this message (2xx, or a transient error of its own) */
    SMTP_KIND_THROTTLE,  /* the relay wants us to slow down: 421, 454, 4.7.x rate replies */
    SMTP_KIND_QUOTA,     /* the sender's daily quota is used up: no more today */
    SMTP_KIND_RECIPIENT, /* this recipient's mailbox is busy or full: the row backs off */
};

enum smtp_outcome {
    SMTP_NOT_ATTEMPTED = 0, /* the session ended before this message was offered: resend */
    SMTP_SENT,              /* 2xx after end of data: the relay took it */
    SMTP_DEFERRED,          /* 4xx or a transient error before the data went out */
    SMTP_FAILED,            /* 5xx for the sender, the recipient or the data */
    SMTP_UNKNOWN,           /* the data went out but no final reply came back */
};

struct smtp_message {
    /* in (borrowed) */
    const char *sender;    /* envelope MAIL FROM address, already validated */
    const char *recipient; /* envelope RCPT TO address, already validated */
    const char *data;      /* complete RFC 5322 message, CRLF line ends */
    size_t len;
    /* out */
    enum smtp_outcome outcome;
    int code;                  /* the SMTP reply that decided the outcome, 0 if none did */
    char enhanced[16];         /* "5.1.1" when the server sent one */
    char text[256];            /* reply text, control characters removed */
    enum smtp_reply_kind kind; /* what the deciding reply means (see smtp_reply_kind) */
};

/* Called on the session's thread, with the arg given here. */
struct smtp_hooks {
    /* Before message i's transaction begins (before its MAIL FROM; for the first message,
     * before the session connects). Returning false holds it back: it and every later one
     * come back SMTP_NOT_ATTEMPTED and the session QUITs. May block: the caller paces here,
     * so that no MAIL FROM, accepted or not, goes out faster than the relay allows. NULL:
     * always go on. */
    bool (*before_mail)(void *arg, size_t i);
    /* Just before message i's data goes on the wire: when libESMTP first reads it, after MAIL
     * FROM was accepted (and, over DATA, after RCPT TO was; with CHUNKING the data is read
     * together with RCPT TO, before its reply). Returning false stops the session there:
     * message i and every later one come back SMTP_NOT_ATTEMPTED, and the relay never
     * receives message i's complete data (the connection is dropped before its end). May
     * block: the caller paces and records here. NULL: always go on. */
    bool (*before_data)(void *arg, size_t i);
    /* As soon as message i's outcome is decided (its final reply, or the session ended under
     * it); msgs[i] is filled in when it is called. Called exactly once for every message
     * whose MAIL FROM got a reply or whose data was asked for, and for no other. NULL: none. */
    void (*after_reply)(void *arg, size_t i);
    void *arg;
};

/* What a session as a whole ran into (all false: nothing to slow down for). */
struct smtp_session_report {
    bool refused;   /* the relay refused the session itself: 4xx greeting, 421 before MAIL */
    bool throttled; /* a throttling reply ended the session's transactions */
    bool quota;     /* the relay's daily quota is exhausted: stop sending for the sweep */
    int code;       /* the reply that said so; 0 when none did */
    char enhanced[16];
    char text[256];
};

/* One process-wide setup (SSL_CTX, SASL plugins, SIGPIPE). Call once before any session and
 * before starting threads. Fails with ERR_CONFIG when the TLS setup cannot be built, or for
 * SMTP_TLS_IMPLICIT, which libESMTP cannot do. STARTTLS verifies the relay's certificate
 * against ca_file (or the system CAs) and the configured host name, TLS 1.2 or 1.3 (see
 * read_post_handshake in smtp.c for what 1.3 needs with libESMTP 1.1.0). */
int smtp_global_init(const struct smtp_config *cfg, struct err *e);
void smtp_global_cleanup(void);

/* Runs one session carrying msgs[0..n). Each message's outcome is filled in. Returns ERR_OK
 * when the session ran (whatever each message's outcome), or an error that concerns the
 * session as a whole: ERR_UNAVAILABLE (cannot connect, greeting refused, TLS failure, AUTH
 * failure, connection lost). Messages not reached are left SMTP_NOT_ATTEMPTED. Thread-safe
 * for distinct calls after smtp_global_init.
 *
 * hooks (may be NULL) are called on this thread as the session goes (see struct smtp_hooks).
 * report (may be NULL) is filled in whenever the function returns.
 *
 * Throttling: a reply that smtp_reply_kind calls THROTTLE or QUOTA, and any 4xx to MAIL FROM,
 * ends the session's transactions: no further MAIL FROM is sent, the session QUITs, and the
 * messages after it come back SMTP_NOT_ATTEMPTED. That is still ERR_OK; report->throttled or
 * report->quota says so. A QUOTA reply leaves its message SMTP_DEFERRED even when it is a 5xx.
 * A relay that answers but refuses the session for load (a 4xx greeting such as "421 4.7.0
 * Too many connections", or a 421 before the first MAIL FROM) is ERR_OK with
 * report->refused set and nothing attempted when report is given, ERR_UNAVAILABLE without.
 *
 * ERR_CONFIG when cfg itself is unusable (bad host or EHLO name, password in clear text to a
 * relay that is not on loopback). A message whose addresses or data are unusable (CR/LF,
 * bare LF, NUL) is SMTP_FAILED with text "invalid address" / "invalid message data" and
 * never reaches the wire. The first session of a process (and the first after a session
 * could not reach the relay) first checks with a TCP connect bounded by connect_timeout_ms
 * that the relay answers (the relay sees it as one connection closed without a command, and
 * the check waits, within the same bound, until the relay has closed it too, so that a
 * connection cap no longer counts it); concurrent sessions wait for that one check instead
 * of making their own. When a username
 * is set and AUTH does not succeed, no message data is sent: every message is
 * SMTP_NOT_ATTEMPTED and the result is ERR_UNAVAILABLE "authentication failed: ...". A "530"
 * refusal (authentication or TLS required) is treated the same way: it is about the
 * configuration, not the message. */
int smtp_send_batch(const struct smtp_config *cfg, struct smtp_message *msgs, size_t n,
                    const struct smtp_hooks *hooks, struct smtp_session_report *report,
                    struct err *e);

/* What a reply means beyond its message (pure; the texts relays really send are in
 * tests/unit/test_smtp.c). enhanced may be NULL or "", then an RFC 3463 code at the start of
 * text is used. QUOTA: a "daily ... quota/limit" reply, 4xx or 5xx (Amazon SES "454
 * Throttling failure: Daily message quota exceeded", Gmail "550 5.4.5 Daily user sending
 * limit exceeded"). THROTTLE: any 421 (Gmail's 4.7.28 too), any 454 (SES "Maximum sending
 * rate exceeded"), 451 4.7.500-699 (Microsoft "Server busy"), and a 4xx speaking of rate,
 * throttling, "too much mail" or too many messages/connections (Postfix anvil "450 4.7.1
 * Error: too much mail", Google "450 4.2.1 ... rate ..."). RECIPIENT: a 4xx about the
 * mailbox (4.2.0, 4.2.2, 4.1.x, "mailbox busy/full", over quota). NONE otherwise. */
enum smtp_reply_kind smtp_reply_kind(int code, const char *enhanced, const char *text);

const char *smtp_reply_kind_name(enum smtp_reply_kind k);

/* Cuts every session of this process to the relay short (shuts their sockets down): each
 * returns at once, a message whose data went out without a reply coming back SMTP_UNKNOWN.
 * For a stop whose grace has run out. Safe from any thread. */
void smtp_interrupt_sessions(const struct smtp_config *cfg);

const char *smtp_outcome_name(enum smtp_outcome o);

#endif
