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
    int code;          /* the SMTP reply that decided the outcome, 0 if none did */
    char enhanced[16]; /* "5.1.1" when the server sent one */
    char text[256];    /* reply text, control characters removed */
};

/* Per-message callbacks on the session's thread, so the caller can record progress while the
 * session runs. */
struct smtp_hooks {
    /* Just before message i's data goes on the wire (libESMTP's first read of it, after its
     * MAIL and RCPT were sent). Returning false stops the session there: message i and every
     * later one come back SMTP_NOT_ATTEMPTED, and the relay never receives message i's
     * complete data (the connection is dropped before the final dot). May block. */
    bool (*before_data)(void *arg, size_t i);
    /* As soon as the outcome of a message whose data went out is decided (its final reply, or
     * the session ended under it); msgs[i] is filled in. Called once for each message for
     * which before_data returned true. */
    void (*after_reply)(void *arg, size_t i);
    void *arg;
};

/* What a session learned about the relay as a whole (beyond each message's outcome). */
struct smtp_session_report {
    bool refused;   /* the relay refused the session itself for load (connection cap) */
    bool throttled; /* a throttling reply ended the session's transactions */
    bool quota;     /* the relay's daily quota is exhausted */
    int code;
    char enhanced[16];
    char text[256];
};

/* One process-wide setup (SSL_CTX, SASL plugins, SIGPIPE). Call once before any session and
 * before starting threads. Fails with ERR_CONFIG when the TLS setup cannot be built, or for
 * SMTP_TLS_IMPLICIT, which libESMTP cannot do. STARTTLS verifies the relay's certificate
 * against ca_file (or the system CAs) and the configured host name, TLS 1.2 only (see
 * smtp.c for why not 1.3). */
int smtp_global_init(const struct smtp_config *cfg, struct err *e);
void smtp_global_cleanup(void);

/* Runs one session carrying msgs[0..n). Each message's outcome is filled in. Returns ERR_OK
 * when the session ran (whatever each message's outcome), or an error that concerns the
 * session as a whole: ERR_UNAVAILABLE (cannot connect, greeting refused, TLS failure, AUTH
 * failure, connection lost). Messages not reached are left SMTP_NOT_ATTEMPTED. Thread-safe
 * for distinct calls after smtp_global_init.
 *
 * ERR_CONFIG when cfg itself is unusable (bad host or EHLO name, password in clear text to a
 * relay that is not on loopback). A message whose addresses or data are unusable (CR/LF,
 * bare LF, NUL) is SMTP_FAILED with text "invalid address" / "invalid message data" and
 * never reaches the wire. Before libESMTP connects, a TCP connect bounded by
 * connect_timeout_ms checks that the relay answers (the relay sees it as one connection
 * closed without a command). When a username is set and AUTH does not succeed, no message
 * data is sent: every message is SMTP_NOT_ATTEMPTED and the result is ERR_UNAVAILABLE
 * "authentication failed: ...". A "530" refusal (authentication or TLS required) is treated
 * the same way: it is about the configuration, not the message. */
int smtp_send_batch(const struct smtp_config *cfg, struct smtp_message *msgs, size_t n,
                    const struct smtp_hooks *hooks, struct smtp_session_report *report,
                    struct err *e);

/* Cuts every session of this process to the relay short (shuts their sockets down): each
 * returns at once, a message whose data went out without a reply coming back SMTP_UNKNOWN.
 * For a stop whose grace has run out. Safe from any thread. */
void smtp_interrupt_sessions(const struct smtp_config *cfg);

const char *smtp_outcome_name(enum smtp_outcome o);

/* Whether s is a plausible RFC 5321 mailbox we are willing to put in an envelope: no
 * controls, spaces or angle brackets, one '@', a dot-atom local part <= 64, total <= 254, a
 * domain of letters, digits and hyphens (or an IP literal). A single-label domain
 * ("user@localhost") is accepted; a trailing dot or an all-numeric last label is not. */
bool smtp_address_valid(const char *s);

#endif
