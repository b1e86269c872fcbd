/* smtp: one libESMTP session carries a batch of prepared messages over one connection; every
 * reply is turned into sent / deferred / failed / unknown where it is seen (RFC 5321 §4.2,
 * RFC 3463 enhanced codes, RFC 3207 STARTTLS, RFC 4954 AUTH). libESMTP 1.1.0 needs several
 * workarounds; each is explained where it is applied. */
#include "smtp.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* <openssl/ssl.h> must come before <libesmtp.h>: libesmtp.h declares smtp_starttls_set_ctx()
 * only when OpenSSL's SSL_SESSION_ASN1_VERSION is already defined. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <auth-client.h>
#include <libesmtp.h>

#include "addr.h"
#include "clock.h"
#include "log.h"

#define DEFAULT_TIMEOUT_MS 60000
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define MIN_TIMEOUT_MS 1000 /* libESMTP's absolute floor */
#define CHUNK_MAX 65536     /* bytes handed to libESMTP per message-callback call */
#define CRED_MAX 255        /* the PLAIN plugin strcpy()s both into a 2*255+3 buffer */
#define REPLY_LINE_MAX 512  /* a server reply line kept by the monitor (RFC 5321: 512) */
#define VERB_MAX 12
#define PENDING_MAX 8 /* commands awaiting a reply (PIPELINING sends RCPT and DATA at once) */

/* One SSL_CTX for the whole process. libESMTP 1.1.0 caches the context it builds itself in a
 * function-static variable, yet smtp_destroy_session frees it, so the second STARTTLS session
 * in a process uses freed memory (issue #30, fixed after the 1.1.0 tag). A context passed
 * with smtp_starttls_set_ctx is reference-counted instead. */
static SSL_CTX *tls_ctx;
static bool auth_ready;

enum auth_phase { AUTH_IDLE, AUTH_SENT, AUTH_CHALLENGED };

struct reply {
    int code;
    char text[256];
};

struct session;

struct message_state {
    struct smtp_message *msg; /* borrowed: the caller's message */
    struct session *s;
    smtp_message_t handle; /* NULL when the message was refused before the session */
    size_t offset;         /* bytes handed to libESMTP so far */
    size_t index;          /* in the caller's array */
    bool data_started;     /* libESMTP asked for the message data */
    bool data_complete;    /* every byte was handed over and end of data signalled */
    bool offered;          /* MAIL FROM got a reply, or the data was asked for */
    bool reported;         /* decided, and after_reply called */
    bool recipient_added;  /* libESMTP will offer it (see offer_next) */
    bool held_back;        /* before_data said stop */
};

struct session {
    const struct smtp_config *cfg;
    char server[300]; /* "host:port", for messages */
    int timeout_ms;
    bool want_auth;

    /* What the protocol monitor saw. Server side: */
    char rline[REPLY_LINE_MAX];
    size_t rlen;
    bool greeted;
    struct reply greeting;
    struct reply closing; /* a 421 seen at any point */
    long long last_event_ms;

    /* Commands whose final reply is still due, oldest first; "greeting" before the first. */
    char pending[PENDING_MAX][VERB_MAX];
    size_t npending;

    /* Client side: only the verb of each command line is looked at; the arguments of AUTH
     * and the SASL response lines are skipped unread. */
    bool w_line_start;
    bool w_secret;
    bool w_verb_done;
    char w_verb[VERB_MAX];
    size_t w_verb_len;
    char last_cmd[VERB_MAX];
    char timed_out_cmd[VERB_MAX];
    bool mail_sent;

    enum auth_phase auth;
    bool authenticated;
    bool auth_rejected;
    struct reply auth_reply;

    bool starttls_pending;
    long long tls_started_ms; /* when the handshake began */
    struct reply starttls;
    bool tls_ok;
    bool extna_starttls;
    char tls_error[256];

    struct reply refused_530; /* "530 authentication required" for a message */

    /* The transactions: which message is offered next, and why the session stopped. */
    struct message_state *st;
    size_t n;
    const struct smtp_hooks *hooks;
    size_t last_offered; /* index of the last message given its recipient; n: none yet */
    bool stopping;       /* no further message is offered */
    bool held_back_any;  /* before_data said stop: the dropped connection was ours */
    bool throttled;
    bool quota;
    struct reply stop_reply;
    char stop_enhanced[16];
};

/* The session whose smtp_start_session is running on this thread, for the OpenSSL callbacks
 * of the shared SSL_CTX (they get no argument of ours). */
static _Thread_local struct session *current;

/* ---- validation (pure) ---- */

/* ASCII only, whatever the locale: <ctype.h> would let Latin-1 letters through. */
static bool
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_ipv4(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1;
}

/* The relay's name: a domain or a dotted IPv4 address. IPv6 literals are refused because
 * smtp_set_server() splits "host:port" at the first colon. */
static bool
host_valid(const char *h)
{
    return h != NULL && (is_ipv4(h) || addr_domain_valid(h, strlen(h)));
}

static bool
helo_valid(const char *h)
{
    if (h == NULL)
        return false;
    size_t len = strlen(h);
    if (len > 0 && h[0] == '[')
        return addr_literal_valid(h, len);
    return addr_domain_valid(h, len);
}

static bool
host_is_loopback(const char *h)
{
    if (strcasecmp(h, "localhost") == 0)
        return true;
    struct in_addr a;
    if (inet_pton(AF_INET, h, &a) == 1)
        return (ntohl(a.s_addr) >> 24) == 127;
    return false;
}

/* No C0 control or DEL: nothing that could end an SMTP command line. */
static bool
no_controls(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* The message must be CRLF-only: libESMTP dot-stuffs only after CRLF, so a "\n.\r\n" would go
 * out unstuffed and could end DATA early on a lenient relay. */
static bool
data_valid(const char *data, size_t len, size_t *bad_at)
{
    /* memchr rather than a byte loop: this runs over every byte of every message. */
    const char *end = data + len;
    const char *nul = memchr(data, '\0', len);
    const char *bad = nul;
    for (const char *q = data; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++) {
        if (q == data || q[-1] != '\r') {
            bad = bad == NULL || q < bad ? q : bad;
            break;
        }
    }
    for (const char *q = data; (q = memchr(q, '\r', (size_t)(end - q))) != NULL; q++) {
        if (q + 1 >= end || q[1] != '\n') {
            bad = bad == NULL || q < bad ? q : bad;
            break;
        }
    }
    if (bad != NULL)
        *bad_at = (size_t)(bad - data);
    return bad == NULL;
}

/* ---- reply text ---- */

/* Printable ASCII only: controls (the CRLFs of a multi-line reply included) become one space,
 * other bytes '?'; at most dstsize - 1 bytes, trimmed. */
static void
sanitize(char *dst, size_t dstsize, const char *src)
{
    size_t n = 0;
    bool space = true; /* drops leading blanks */
    for (; src != NULL && *src != '\0' && n + 1 < dstsize; src++) {
        unsigned char c = (unsigned char)*src;
        if (c <= 0x20 || c == 0x7f) {
            if (!space)
                dst[n++] = ' ';
            space = true;
            continue;
        }
        dst[n++] = c < 0x7f ? (char)c : '?';
        space = false;
    }
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = '\0';
}

static void
set_reply(struct reply *r, int code, const char *text)
{
    r->code = code;
    sanitize(r->text, sizeof r->text, text);
}

static bool
enh_part(const char **p, int *out)
{
    int v = 0, digits = 0;
    while (is_digit((unsigned char)**p) && digits < 3) {
        v = v * 10 + (**p - '0');
        (*p)++;
        digits++;
    }
    *out = v;
    return digits > 0 && !is_digit((unsigned char)**p);
}

/* An RFC 3463 code at the start of text ("5.1.1 no such user") whose class matches code.
 * Many relays send one without announcing ENHANCEDSTATUSCODES, and libESMTP parses it only
 * when announced. */
static bool
parse_enhanced(const char *text, int code, char *out, size_t outsize, const char **rest)
{
    const char *p = text;
    int cls, subject, detail;
    if (!enh_part(&p, &cls) || *p++ != '.' || !enh_part(&p, &subject) || *p++ != '.' ||
        !enh_part(&p, &detail))
        return false;
    if (cls != code / 100 || (cls != 2 && cls != 4 && cls != 5))
        return false;
    if (*p != '\0' && *p != ' ' && *p != '\r' && *p != '\n' && *p != '\t')
        return false;
    int w = snprintf(out, outsize, "%d.%d.%d", cls, subject, detail);
    if (w < 0 || (size_t)w >= outsize)
        return false;
    *rest = p;
    return true;
}

static void
copy_status(struct smtp_message *out, const smtp_status_t *st)
{
    const char *text = st->text != NULL ? st->text : "";
    out->code = st->code;
    out->enhanced[0] = '\0';
    bool have = false;
    if (st->enh_class == st->code / 100 && st->enh_class >= 2 && st->enh_class <= 5 &&
        st->enh_subject >= 0 && st->enh_subject <= 999 && st->enh_detail >= 0 &&
        st->enh_detail <= 999) {
        int w = snprintf(out->enhanced, sizeof out->enhanced, "%d.%d.%d", st->enh_class,
                         st->enh_subject, st->enh_detail);
        have = w > 0 && (size_t)w < sizeof out->enhanced;
        if (!have)
            out->enhanced[0] = '\0';
    }
    if (!have) {
        const char *rest;
        if (!parse_enhanced(text, st->code, out->enhanced, sizeof out->enhanced, &rest))
            out->enhanced[0] = '\0';
        else
            text = rest;
    }
    sanitize(out->text, sizeof out->text, text);
}

/* ---- what a reply means (pure) ---- */

static char
lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive substring search, ASCII only. */
static bool
has(const char *text, const char *needle)
{
    size_t nl = strlen(needle);
    for (const char *p = text; *p != '\0'; p++) {
        size_t i = 0;
        while (i < nl && p[i] != '\0' && lower(p[i]) == needle[i])
            i++;
        if (i == nl)
            return true;
    }
    return false;
}

/* "rate" as a word ("sending rate", "rate limited", "rate-limited", "ratelimit"), not inside
 * "generate" or "separately". */
static bool
has_rate_word(const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (p != text && is_alpha((unsigned char)p[-1]))
            continue;
        if (lower(p[0]) != 'r' || lower(p[1]) != 'a' || lower(p[2]) != 't' || lower(p[3]) != 'e')
            continue;
        if (!is_alpha((unsigned char)p[4]) || strncasecmp(p + 4, "limit", 5) == 0)
            return true;
    }
    return false;
}

static bool
speaks_of_throttling(const char *text)
{
    return has_rate_word(text) || has(text, "throttl") || has(text, "too much mail") ||
           has(text, "too many messages") || has(text, "too many connections") ||
           has(text, "too many concurrent") || has(text, "server busy") ||
           has(text, "server is busy") || has(text, "slow down") || has(text, "limit exceeded");
}

static bool
speaks_of_mailbox(const char *text)
{
    return has(text, "mailbox busy") || has(text, "mailbox is busy") || has(text, "mailbox full") ||
           has(text, "mailbox is full") || has(text, "over quota") || has(text, "quota exceeded") ||
           has(text, "insufficient storage") || has(text, "out of storage");
}

enum smtp_reply_kind
smtp_reply_kind(int code, const char *enhanced, const char *text)
{
    int cls = code / 100;
    if (cls != 4 && cls != 5)
        return SMTP_KIND_NONE;
    if (text == NULL)
        text = "";
    char parsed[16];
    const char *rest = text;
    if ((enhanced == NULL || enhanced[0] == '\0') &&
        parse_enhanced(text, code, parsed, sizeof parsed, &rest))
        enhanced = parsed;
    int subject = -1, detail = -1;
    if (enhanced != NULL && enhanced[0] != '\0') {
        const char *p = enhanced;
        int c;
        if (!enh_part(&p, &c) || *p++ != '.' || !enh_part(&p, &subject) || *p++ != '.' ||
            !enh_part(&p, &detail))
            subject = detail = -1;
    }

    /* A daily quota first: it is worded like throttling ("454 Throttling failure: Daily
     * message quota exceeded") and Gmail sends it as a 5xx, yet it lasts until tomorrow. */
    if (has(text, "daily") && (has(text, "quota") || has(text, "limit")))
        return SMTP_KIND_QUOTA;
    if (cls == 5)
        return SMTP_KIND_NONE;
    if (code == 421)
        return SMTP_KIND_THROTTLE; /* the relay is closing the session, whatever the reason */
    /* The recipient's own mailbox (RFC 3463 X.2.0 other, X.2.2 full; X.1.x addressing), but
     * Google's "450 4.2.1 ... receiving mail at a rate ..." is about the pace. */
    if (subject == 1 || (subject == 2 && detail != 1) || speaks_of_mailbox(text))
        return SMTP_KIND_RECIPIENT;
    if (code == 454)
        return SMTP_KIND_THROTTLE; /* Amazon SES's "Throttling failure" */
    if (code == 451 && subject == 7 && detail >= 500 && detail <= 699)
        return SMTP_KIND_THROTTLE; /* Exchange Online's "Server busy" family */
    if (subject == 5)
        return SMTP_KIND_NONE; /* 4.5.x: a protocol problem ("452 4.5.3 too many recipients") */
    if (speaks_of_throttling(text))
        return SMTP_KIND_THROTTLE;
    return SMTP_KIND_NONE;
}

const char *
smtp_reply_kind_name(enum smtp_reply_kind k)
{
    switch (k) {
    case SMTP_KIND_NONE:
        return "none";
    case SMTP_KIND_THROTTLE:
        return "throttle";
    case SMTP_KIND_QUOTA:
        return "quota";
    case SMTP_KIND_RECIPIENT:
        return "recipient";
    }
    return "invalid";
}

/* ---- protocol monitor ---- */

static void
pending_push(struct session *s, const char *verb)
{
    if (s->npending < PENDING_MAX)
        snprintf(s->pending[s->npending++], VERB_MAX, "%s", verb);
}

static void
pending_pop(struct session *s)
{
    if (s->npending == 0)
        return;
    memmove(s->pending[0], s->pending[1], (s->npending - 1) * sizeof s->pending[0]);
    s->npending--;
}

/* Called once per complete server line (without CRLF). Only final lines ("250 ...", not
 * "250-...") move the state on. */
static void
server_line(struct session *s, const char *line, size_t len)
{
    if (len < 3 || !is_digit((unsigned char)line[0]) || !is_digit((unsigned char)line[1]) ||
        !is_digit((unsigned char)line[2]))
        return;
    if (len > 3 && line[3] != ' ')
        return;
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    const char *text = len > 4 ? line + 4 : "";

    s->last_event_ms = clock_mono_ms();
    if (code != 334) {
        bool data_go_ahead = code == 354;
        pending_pop(s);
        if (data_go_ahead)
            pending_push(s, "end of data"); /* the data itself is not shown to the monitor */
    }
    if (!s->greeted) {
        s->greeted = true;
        set_reply(&s->greeting, code, text);
    }
    if (s->starttls_pending) {
        s->starttls_pending = false;
        set_reply(&s->starttls, code, text);
    }
    if (s->auth == AUTH_SENT) {
        if (code == 334) {
            s->auth = AUTH_CHALLENGED; /* the next client line is a SASL response */
            return;
        }
        s->auth = AUTH_IDLE;
        if (code / 100 == 2) {
            s->authenticated = true;
            s->auth_rejected = false;
        } else {
            s->auth_rejected = true;
            set_reply(&s->auth_reply, code, text);
        }
    }
    if (code == 421)
        set_reply(&s->closing, code, text);
}

static void
server_bytes(struct session *s, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (c == '\n') {
            size_t n = s->rlen;
            if (n > 0 && s->rline[n - 1] == '\r')
                n--;
            server_line(s, s->rline, n);
            s->rlen = 0;
        } else if (s->rlen < sizeof s->rline) {
            s->rline[s->rlen++] = c; /* the rest of an overlong line is dropped */
        }
    }
}

/* libESMTP reports a reply timeout as a dropped connection. A whole timeout gone since the
 * last event while a reply was due tells the two apart; checked when the next command (QUIT,
 * as libESMTP gives up) is written and when the session has ended. */
static void
note_timeout(struct session *s, long long t)
{
    if (s->npending > 0 && s->timed_out_cmd[0] == '\0' &&
        t - s->last_event_ms >= s->timeout_ms - s->timeout_ms / 10)
        memcpy(s->timed_out_cmd, s->pending[0], sizeof s->timed_out_cmd);
}

static void
client_line_done(struct session *s)
{
    if (s->w_secret) {
        s->auth = AUTH_SENT; /* a SASL response went out; its reply is due */
        return;
    }
    s->w_verb[s->w_verb_len] = '\0';
    long long t = clock_mono_ms();
    note_timeout(s, t);
    memcpy(s->last_cmd, s->w_verb, sizeof s->last_cmd);
    pending_push(s, s->w_verb);
    s->last_event_ms = t;
    if (strcmp(s->w_verb, "AUTH") == 0) {
        s->auth = AUTH_SENT;
    } else if (strcmp(s->w_verb, "STARTTLS") == 0) {
        s->starttls_pending = true;
    } else if (strcmp(s->w_verb, "MAIL") == 0) {
        s->mail_sent = true;
    }
}

static void
client_bytes(struct session *s, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (s->w_line_start) {
            s->w_line_start = false;
            s->w_secret = s->auth == AUTH_CHALLENGED;
            s->w_verb_done = false;
            s->w_verb_len = 0;
        }
        if (c == '\n') {
            client_line_done(s);
            s->w_line_start = true;
            continue;
        }
        if (s->w_secret || s->w_verb_done)
            continue;
        if (is_alpha(c) && s->w_verb_len + 1 < sizeof s->w_verb)
            s->w_verb[s->w_verb_len++] = (char)(c >= 'a' ? c - 'a' + 'A' : c);
        else
            s->w_verb_done = true;
    }
}

/* libESMTP shows the monitor every byte of the dialogue except the message data, including
 * AUTH's base64 credentials: nothing here copies more than a command verb. */
static void
monitor_cb(const char *buf, int buflen, int writing, void *arg)
{
    struct session *s = arg;
    if (buf == NULL || buflen <= 0)
        return;
    if (writing == 0)
        server_bytes(s, buf, (size_t)buflen);
    else if (writing == 1)
        client_bytes(s, buf, (size_t)buflen);
}

/* ---- TLS ---- */

static void tls_fail(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
tls_fail(struct session *s, const char *fmt, ...)
{
    if (s == NULL || s->tls_error[0] != '\0')
        return; /* keep the first cause */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->tls_error, sizeof s->tls_error, fmt, ap);
    va_end(ap);
}

static bool
peer_matches_host(SSL *ssl, const char *host)
{
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (cert == NULL)
        return false;
    int rc;
    if (is_ipv4(host))
        rc = X509_check_ip_asc(cert, host, 0);
    else
        rc = X509_check_host(cert, host, strlen(host), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL);
    X509_free(cert);
    return rc == 1;
}

static int
tls_verify_cb(int preverify_ok, X509_STORE_CTX *store)
{
    if (!preverify_ok) {
        int code = X509_STORE_CTX_get_error(store);
        tls_fail(current, "certificate verification failed (depth %d): %s",
                 X509_STORE_CTX_get_error_depth(store), X509_verify_cert_error_string(code));
    }
    return preverify_ok;
}

/* libESMTP creates the SSL object itself and sets neither SNI nor a host name to verify; the
 * handshake-start callback of the shared context does both for the session on this thread.
 * Setting them again on a renegotiation is harmless. */
static void
tls_info_cb(const SSL *cssl, int where, int ret)
{
    (void)ret;
    if (!(where & SSL_CB_HANDSHAKE_START) || current == NULL)
        return;
    current->tls_started_ms = clock_mono_ms();
    SSL *ssl = (SSL *)cssl; /* OpenSSL passes const, but allows changes at this point */
    const char *host = current->cfg->host;
    if (is_ipv4(host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    } else {
        SSL_set_tlsext_host_name(ssl, host);
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(ssl, host);
    }
}

static void
openssl_error(char *out, size_t outsize)
{
    unsigned long code = ERR_peek_last_error();
    if (code == 0)
        snprintf(out, outsize, "handshake failed");
    else
        ERR_error_string_n(code, out, outsize);
    ERR_clear_error();
}

/* libESMTP owns its sockets and has no API to reach them: these are found as this process's
 * TCP sockets connected to the relay's port. */
static void
each_relay_socket(int port, void (*fn)(int fd))
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end = NULL;
        long fd = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end != '\0' || fd == dirfd(d))
            continue;
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int type = 0;
        socklen_t tlen = sizeof type;
        if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM)
            continue;
        if (getpeername((int)fd, (struct sockaddr *)&peer, &len) != 0)
            continue;
        int peer_port = peer.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&peer)->sin_port)
                        : peer.ss_family == AF_INET6
                            ? ntohs(((struct sockaddr_in6 *)&peer)->sin6_port)
                            : -1;
        if (peer_port == port)
            fn((int)fd);
    }
    closedir(d);
}

/* libESMTP writes a message in 2 KiB pieces, and with Nagle's algorithm the last piece waits
 * for the relay's delayed ACK: about 40 ms per message, which caps a session at ~25
 * messages/s. So once connected, Nagle is turned off on the relay sockets. Other threads'
 * sessions to the same relay may be hit too, which is what they want as well. */
static void
nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void
nodelay_relay_sockets(int port)
{
    each_relay_socket(port, nodelay);
}

static void
interrupt(int fd)
{
    shutdown(fd, SHUT_RDWR);
}

void
smtp_interrupt_sessions(const struct smtp_config *cfg)
{
    each_relay_socket(cfg->port, interrupt);
}

/* TLS 1.3 servers send session tickets after the handshake, unasked (OpenSSL two, Postfix
 * one). libESMTP 1.1.0 then writes EHLO into its buffer and polls for reading and writing
 * at once; when a ticket has arrived by then it serves the read first, SSL_read consumes
 * the ticket and wants more, and libESMTP waits (sio_sslpoll) for the EHLO reply with the
 * EHLO still unsent, until the reply timeout. On a nearby relay the ticket is always there
 * in time. So read the tickets here, right after the handshake and before EHLO: wait for
 * the first post-handshake record for about as long as the handshake took (the relay sends
 * its tickets one round trip after our Finished), then take whatever follows at once.
 * SSL_peek processes them without consuming application data (there is none before our
 * EHLO; a relay speaking first keeps its data for libESMTP). The socket is non-blocking. A
 * TLS 1.3 relay that sends no ticket costs the whole wait, once per session: twice the
 * handshake time plus 20 ms (on loopback a few milliseconds). */
static void
read_post_handshake(struct session *s, SSL *ssl)
{
    if (SSL_version(ssl) < TLS1_3_VERSION)
        return;
    int fd = SSL_get_rfd(ssl);
    if (fd < 0)
        return;
    long long now = clock_mono_ms();
    long long took = s->tls_started_ms > 0 ? now - s->tls_started_ms : 0;
    long long wait = 2 * took + 20;
    if (wait > s->timeout_ms / 2)
        wait = s->timeout_ms / 2;
    long long deadline = now + wait;
    bool got = false;
    for (;;) {
        long long left = got ? 0 : deadline - clock_mono_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        char c;
        int n = SSL_peek(ssl, &c, 1);
        if (n > 0 || SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ)
            break; /* data or an error: libESMTP reads it next */
        got = true;
    }
    ERR_clear_error();
}

static void decide_message(struct session *s, struct message_state *ms);
static void note_rcpt_status(struct session *s, struct message_state *ms, const smtp_status_t *st);

static struct message_state *
state_of(struct session *s, smtp_message_t handle)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->st[i].handle == handle && handle != NULL)
            return &s->st[i];
    return NULL;
}

static void
event_cb(smtp_session_t session, int event, void *arg, ...)
{
    struct session *s = arg;
    va_list ap;
    (void)session;
    va_start(ap, arg);
    switch (event) {
    case SMTP_EV_CONNECT:
        nodelay_relay_sockets(s->cfg->port);
        break;
    case SMTP_EV_INVALID_PEER_CERTIFICATE: {
        long result = va_arg(ap, long);
        int *ok = va_arg(ap, int *);
        *ok = 0;
        tls_fail(s, "certificate verification failed: %s", X509_verify_cert_error_string(result));
        break;
    }
    case SMTP_EV_NO_PEER_CERTIFICATE: {
        int *ok = va_arg(ap, int *);
        *ok = 0;
        tls_fail(s, "the server sent no certificate");
        break;
    }
    case SMTP_EV_WRONG_PEER_CERTIFICATE: {
        /* libESMTP compares the certificate with the CNAME-resolved name (issue #20); the
         * name that matters is the one configured. */
        int *ok = va_arg(ap, int *);
        (void)va_arg(ap, char *);
        SSL *ssl = va_arg(ap, SSL *);
        *ok = ssl != NULL && peer_matches_host(ssl, s->cfg->host);
        if (!*ok)
            tls_fail(s, "certificate does not match host %s", s->cfg->host);
        break;
    }
    case SMTP_EV_WEAK_CIPHER: {
        int bits = va_arg(ap, int);
        int *ok = va_arg(ap, int *);
        *ok = 0;
        tls_fail(s, "cipher too weak (%d bits)", bits);
        break;
    }
    case SMTP_EV_NO_CLIENT_CERTIFICATE: {
        int *ok = va_arg(ap, int *);
        *ok = 0;
        tls_fail(s, "client certificate key unusable");
        break;
    }
    case SMTP_EV_UNUSABLE_CLIENT_CERTIFICATE:
        tls_fail(s, "unusable client certificate in libESMTP's certificate directory");
        break;
    case SMTP_EV_UNUSABLE_CA_LIST:
        tls_fail(s, "unusable CA list");
        break;
    case SMTP_EV_STARTTLS_OK: {
        SSL *ssl = va_arg(ap, SSL *);
        s->tls_ok = true;
        if (ssl != NULL)
            read_post_handshake(s, ssl);
        break;
    }
    case SMTP_EV_EXTNA_STARTTLS:
        s->extna_starttls = true;
        break;
    case SMTP_EV_MAILSTATUS: {
        (void)va_arg(ap, const char *);
        struct message_state *ms = state_of(s, va_arg(ap, smtp_message_t));
        if (ms != NULL) {
            ms->offered = true;
            const smtp_status_t *st = smtp_reverse_path_status(ms->handle);
            if (st == NULL || st->code / 100 != 2)
                decide_message(s, ms); /* libESMTP goes on to the next message now */
        }
        break;
    }
    case SMTP_EV_RCPTSTATUS: {
        (void)va_arg(ap, const char *);
        smtp_recipient_t r = va_arg(ap, smtp_recipient_t);
        struct message_state *ms = s->last_offered < s->n ? &s->st[s->last_offered] : NULL;
        if (ms != NULL && r != NULL)
            note_rcpt_status(s, ms, smtp_recipient_status(r));
        break;
    }
    case SMTP_EV_MESSAGESENT: {
        struct message_state *ms = state_of(s, va_arg(ap, smtp_message_t));
        if (ms != NULL)
            decide_message(s, ms);
        break;
    }
    case SMTP_EV_EXTNA_DSN: {
        int *quit = va_arg(ap, int *);
        if (quit != NULL)
            *quit = 1;
        break;
    }
    default:
        break;
    }
    va_end(ap);
}

/* ---- AUTH ---- */

static int
auth_interact(auth_client_request_t req, char **result, int fields, void *arg)
{
    const struct session *s = arg;
    const char *password = s->cfg->password != NULL ? s->cfg->password : "";
    for (int i = 0; i < fields; i++) {
        const char *v;
        if (req[i].flags & AUTH_USER)
            v = s->cfg->username;
        else if (req[i].flags & AUTH_PASS)
            v = password;
        else if (req[i].flags & AUTH_REALM)
            v = "";
        else
            return 0;
        if (req[i].size != 0 && strlen(v) > req[i].size)
            return 0;
        result[i] = (char *)v; /* read, not kept, by the plugin */
    }
    return 1;
}

/* ---- message data ---- */

/* libESMTP's message callback: len == NULL rewinds; otherwise return the next chunk and set
 * *len, *len = 0 at the end. *ctx (libESMTP free()s it) is not needed: the state is ours. */
static const char *
message_cb(void **ctx, int *len, void *arg)
{
    struct message_state *ms = arg;
    (void)ctx;
    if (len == NULL) {
        ms->offset = 0;
        ms->data_complete = false;
        return NULL;
    }
    if (ms->s->want_auth && !ms->s->authenticated) {
        /* libESMTP goes on unauthenticated after a failed AUTH. A failed read makes it drop
         * the connection before the final dot, so the relay discards the message. */
        *len = 0;
        errno = EACCES;
        return NULL;
    }
    if (!ms->data_started) {
        const struct smtp_hooks *h = ms->s->hooks;
        ms->offered = true;
        if (ms->s->stopping ||
            (h != NULL && h->before_data != NULL && !h->before_data(h->arg, ms->index))) {
            /* libESMTP has no call to end a session mid-way. A failed read makes it drop
             * the connection before the end of the data (over DATA before the final dot,
             * over BDAT before the first chunk), so the relay discards the message. */
            ms->held_back = true;
            ms->s->held_back_any = true;
            ms->s->stopping = true;
            *len = 0;
            errno = ECANCELED;
            return NULL;
        }
    }
    ms->data_started = true;
    size_t left = ms->msg->len - ms->offset;
    if (left == 0) {
        ms->data_complete = true;
        *len = 0;
        return NULL;
    }
    size_t chunk = left < CHUNK_MAX ? left : CHUNK_MAX;
    const char *p = ms->msg->data + ms->offset;
    ms->offset += chunk;
    *len = (int)chunk;
    return p;
}

/* ---- outcome ---- */

const char *
smtp_outcome_name(enum smtp_outcome o)
{
    switch (o) {
    case SMTP_NOT_ATTEMPTED:
        return "not_attempted";
    case SMTP_SENT:
        return "sent";
    case SMTP_DEFERRED:
        return "deferred";
    case SMTP_FAILED:
        return "failed";
    case SMTP_UNKNOWN:
        return "unknown";
    }
    return "invalid";
}

struct rcpt_scan {
    const smtp_status_t *worst; /* the first refusal, else the first status */
};

static void
rcpt_cb(smtp_recipient_t r, const char *mailbox, void *arg)
{
    struct rcpt_scan *scan = arg;
    (void)mailbox;
    const smtp_status_t *st = smtp_recipient_status(r);
    if (st == NULL)
        return;
    int cls = st->code / 100;
    if (scan->worst == NULL || ((cls == 4 || cls == 5) && scan->worst->code / 100 < 4))
        scan->worst = st;
}

static void
set_outcome(struct smtp_message *m, enum smtp_outcome o, int code, const char *text)
{
    m->outcome = o;
    m->code = code;
    m->enhanced[0] = '\0';
    m->kind = SMTP_KIND_NONE;
    sanitize(m->text, sizeof m->text, text);
}

/* Decides one message from the replies libESMTP kept, earliest stage first: a refused MAIL
 * or RCPT explains the DATA refusal that follows it. Returns whether a final reply decided
 * the message (false: the session ended under it). */
static bool
classify(struct message_state *ms)
{
    struct smtp_message *m = ms->msg;
    const smtp_status_t *mail = smtp_reverse_path_status(ms->handle);
    const smtp_status_t *data = smtp_message_transfer_status(ms->handle);
    struct rcpt_scan scan = {NULL};
    smtp_enumerate_recipients(ms->handle, rcpt_cb, &scan);

    const smtp_status_t *decisive = NULL;
    if (mail != NULL && (mail->code / 100 == 4 || mail->code / 100 == 5))
        decisive = mail;
    else if (scan.worst != NULL && (scan.worst->code / 100 == 4 || scan.worst->code / 100 == 5))
        decisive = scan.worst;
    else if (data != NULL && data->code / 100 >= 2 && data->code / 100 != 3)
        decisive = data;
    if (decisive == data && decisive != NULL && decisive->code / 100 == 2 && !ms->data_complete)
        decisive = NULL; /* 2xx to the DATA command itself: a broken relay, nothing was sent */

    if (decisive != NULL && decisive->code == 530) {
        /* RFC 4954: authentication (or, from some relays, STARTTLS) is required. That is
         * about our configuration, not the message: failing it would suppress the address. */
        if (ms->s->refused_530.code == 0)
            set_reply(&ms->s->refused_530, decisive->code, decisive->text);
        set_outcome(m, SMTP_NOT_ATTEMPTED, 0, "not sent: the relay requires authentication or TLS");
        return true;
    }
    if (decisive != NULL) {
        int cls = decisive->code / 100;
        copy_status(m, decisive);
        m->kind = smtp_reply_kind(m->code, m->enhanced, m->text);
        if (decisive == data && cls == 2)
            m->outcome = SMTP_SENT;
        else if (cls == 4)
            m->outcome = SMTP_DEFERRED;
        else if (cls == 5 && m->kind != SMTP_KIND_QUOTA)
            m->outcome = SMTP_FAILED;
        else
            m->outcome = SMTP_DEFERRED; /* a quota, 1xx or garbage: not accepted, try again */
        return true;
    }

    /* No final reply: code stays 0, the text says what is known. */
    bool reached = (mail != NULL && mail->code != 0) || ms->data_started;
    if (ms->data_complete)
        set_outcome(m, SMTP_UNKNOWN, 0,
                    "no reply after the end of data; the relay may have the message");
    else if (reached)
        set_outcome(m, SMTP_DEFERRED, 0, "session ended before the data was sent");
    else
        set_outcome(m, SMTP_NOT_ATTEMPTED, 0, "session ended before this message was offered");
    return false;
}

/* ---- the session's transactions ---- */

/* libESMTP 1.1.0 offers every message it was given and has no call to stop a session
 * mid-way: after a 4xx to MAIL FROM it sends the next MAIL FROM at once, into the relay's
 * error limit. It does skip a message that has no recipient left to try, and it looks for
 * the next message only after the current one is decided. So each message gets its
 * recipient only when the one before it was decided and the session should go on; when it
 * should not, libESMTP finds nothing more to offer and QUITs. */
static void
offer_next(struct session *s)
{
    if (s->stopping)
        return;
    for (size_t j = s->last_offered < s->n ? s->last_offered + 1 : 0; j < s->n; j++) {
        struct message_state *ms = &s->st[j];
        if (ms->handle == NULL)
            continue;
        if (s->hooks != NULL && s->hooks->before_mail != NULL &&
            !s->hooks->before_mail(s->hooks->arg, ms->index)) {
            s->stopping = true; /* the caller holds it back: it and the rest stay unoffered */
            s->held_back_any = true;
            return;
        }
        if (smtp_add_recipient(ms->handle, ms->msg->recipient) == NULL) {
            s->stopping = true; /* out of memory: the rest stay unattempted */
            return;
        }
        ms->recipient_added = true;
        s->last_offered = j;
        return;
    }
}

static void
stop_for(struct session *s, const struct smtp_message *m)
{
    if (!s->stopping || s->stop_reply.code == 0) {
        s->stop_reply.code = m->code;
        snprintf(s->stop_reply.text, sizeof s->stop_reply.text, "%s", m->text);
        snprintf(s->stop_enhanced, sizeof s->stop_enhanced, "%s", m->enhanced);
    }
    s->stopping = true;
    if (m->kind == SMTP_KIND_THROTTLE)
        s->throttled = true;
    else if (m->kind == SMTP_KIND_QUOTA)
        s->quota = true;
}

/* A refused recipient: the DATA or BDAT that follows is refused too, and libESMTP picks the
 * next message before it reports that refusal, so the next message is offered now. */
static void
note_rcpt_status(struct session *s, struct message_state *ms, const smtp_status_t *st)
{
    if (st == NULL || (st->code / 100 != 4 && st->code / 100 != 5))
        return;
    struct smtp_message probe = {0};
    copy_status(&probe, st);
    probe.kind = smtp_reply_kind(probe.code, probe.enhanced, probe.text);
    if (probe.kind == SMTP_KIND_THROTTLE || probe.kind == SMTP_KIND_QUOTA)
        stop_for(s, &probe);
    else if (ms->index == s->last_offered)
        offer_next(s);
}

/* Called when libESMTP is done with a message (see event_cb): decides it, tells the caller,
 * and offers the next one unless the session should stop. */
static void
decide_message(struct session *s, struct message_state *ms)
{
    if (ms->reported)
        return;
    if (!classify(ms)) {
        s->stopping = true; /* the session ended under it: decided after the session */
        return;
    }
    ms->reported = true;
    const struct smtp_message *m = ms->msg;
    const smtp_status_t *mail = smtp_reverse_path_status(ms->handle);
    if (m->kind == SMTP_KIND_THROTTLE || m->kind == SMTP_KIND_QUOTA ||
        (mail != NULL && mail->code / 100 == 4))
        stop_for(s, m); /* a 4xx to MAIL FROM would only be repeated for the next one */
    if (s->hooks != NULL && s->hooks->after_reply != NULL)
        s->hooks->after_reply(s->hooks->arg, ms->index);
    if (ms->index == s->last_offered)
        offer_next(s);
}

/* ---- connect probe ---- */

/* Set after the relay answered a probe or a session, cleared when a session could not reach
 * it (see smtp_send_batch). probe_lock makes concurrent sessions wait for one probe. */
static atomic_bool relay_known_good;
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;

/* strerror() may share a buffer between threads; this is the XSI strerror_r. */
static const char *
errno_text(int code, char *buf, size_t size)
{
    if (strerror_r(code, buf, size) != 0)
        snprintf(buf, size, "error %d", code);
    return buf;
}

/* After a probe connected: says it is done (FIN) and waits, until the deadline, for the relay
 * to close its side. A relay that caps connections (Postfix's anvil, a proxy) counts the
 * probe until it has seen it go; the session that follows at once would otherwise find the
 * probe still counted and be refused. Whatever the relay sends (its greeting) is dropped. */
static void
await_close(int fd, long long deadline)
{
    if (shutdown(fd, SHUT_WR) != 0)
        return;
    char buf[512];
    for (;;) {
        long long left = deadline - clock_mono_ms();
        if (left <= 0)
            return;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return; /* closed (or reset): the relay has let go of it */
    }
}

/* 0 when connected, else an errno value (ETIMEDOUT when the deadline passed). */
static int
try_connect(const struct addrinfo *ai, long long deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return errno;
    int rc = 0;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        rc = errno;
        goto done;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        await_close(fd, deadline);
        goto done;
    }
    if (errno != EINPROGRESS) {
        rc = errno;
        goto done;
    }
    for (;;) {
        long long left = deadline - clock_mono_ms();
        if (left <= 0) {
            rc = ETIMEDOUT;
            goto done;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errno;
            goto done;
        }
        if (n == 0) {
            rc = ETIMEDOUT;
            goto done;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        rc = soerr;
        if (rc == 0)
            await_close(fd, deadline);
        goto done;
    }
done:
    close(fd);
    return rc;
}

static void
append_reason(char *out, size_t outsize, const struct addrinfo *ai, const char *why)
{
    char addr[INET6_ADDRSTRLEN + 2] = "?";
    getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST);
    size_t used = strlen(out);
    if (used + 1 < outsize)
        snprintf(out + used, outsize - used, "%s%s: %s", used > 0 ? "; " : "", addr, why);
}

/* libESMTP connects with a blocking connect() and no deadline (minutes against a silent
 * host). Connecting first, bounded, makes an unreachable relay fail fast. libESMTP tries the
 * addresses in the same getaddrinfo order, so one that timed out before the first that
 * answers would stall it too: that counts as a failure. */
static int
probe_connect(const struct smtp_config *cfg, int timeout_ms, struct err *e)
{
    char service[8];
    snprintf(service, sizeof service, "%d", cfg->port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char ebuf[128];
    int rc = getaddrinfo(cfg->host, service, &hints, &res);
    if (rc != 0)
        return err_set(e, ERR_UNAVAILABLE, "cannot connect to %s:%d: %s", cfg->host, cfg->port,
                       rc == EAI_SYSTEM ? errno_text(errno, ebuf, sizeof ebuf) : gai_strerror(rc));

    long long deadline = clock_mono_ms() + timeout_ms;
    char reasons[320] = "";
    bool stalled = false;
    bool connected = false;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int r = try_connect(ai, deadline);
        if (r == 0) {
            connected = true;
            break;
        }
        if (r == ETIMEDOUT) {
            char why[64];
            snprintf(why, sizeof why, "no answer within %d ms", timeout_ms);
            append_reason(reasons, sizeof reasons, ai, why);
            stalled = true;
            break; /* the deadline is spent */
        }
        append_reason(reasons, sizeof reasons, ai, errno_text(r, ebuf, sizeof ebuf));
    }
    freeaddrinfo(res);
    if (connected && !stalled)
        return ERR_OK;
    return err_set(e, ERR_UNAVAILABLE, "cannot connect to %s:%d: %s", cfg->host, cfg->port,
                   reasons[0] != '\0' ? reasons : "no address");
}

/* ---- process-wide setup ---- */

int
smtp_global_init(const struct smtp_config *cfg, struct err *e)
{
    char why[256];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN; /* libESMTP writes to sockets the relay may have closed */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        return err_set(e, ERR_INTERNAL, "cannot ignore SIGPIPE: %s",
                       errno_text(errno, why, sizeof why));
    if (!auth_ready) {
        auth_client_init();
        auth_ready = true;
    }
    if (cfg == NULL || cfg->tls == SMTP_TLS_NONE)
        return ERR_OK;
    if (cfg->tls == SMTP_TLS_IMPLICIT)
        return err_set(e, ERR_CONFIG,
                       "implicit TLS (port 465) is not supported by libESMTP; use starttls");
    if (cfg->tls != SMTP_TLS_STARTTLS)
        return err_set(e, ERR_CONFIG, "unknown SMTP TLS mode %d", (int)cfg->tls);

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        openssl_error(why, sizeof why);
        return err_set(e, ERR_CONFIG, "cannot create TLS context: %s", why);
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        openssl_error(why, sizeof why);
        SSL_CTX_free(ctx);
        return err_set(e, ERR_CONFIG, "cannot require TLS 1.2: %s", why);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify_cb);
    SSL_CTX_set_info_callback(ctx, tls_info_cb);
    int loaded;
    if (cfg->ca_file != NULL && cfg->ca_file[0] != '\0')
        loaded = SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL);
    else
        loaded = SSL_CTX_set_default_verify_paths(ctx);
    if (loaded != 1) {
        openssl_error(why, sizeof why);
        SSL_CTX_free(ctx);
        if (cfg->ca_file != NULL && cfg->ca_file[0] != '\0')
            return err_set(e, ERR_CONFIG, "cannot load CA file %s: %s", cfg->ca_file, why);
        return err_set(e, ERR_CONFIG, "cannot load the system CA certificates: %s", why);
    }
    SSL_CTX_free(tls_ctx); /* a second call replaces the context */
    tls_ctx = ctx;
    return ERR_OK;
}

void
smtp_global_cleanup(void)
{
    SSL_CTX_free(tls_ctx);
    tls_ctx = NULL;
    if (auth_ready) {
        auth_client_exit();
        auth_ready = false;
    }
}

/* ---- one batch ---- */

static int
check_config(const struct smtp_config *cfg, char *helo, size_t helosize, struct err *e)
{
    if (cfg == NULL)
        return err_set(e, ERR_CONFIG, "no SMTP configuration");
    if (cfg->tls == SMTP_TLS_IMPLICIT)
        return err_set(e, ERR_CONFIG,
                       "implicit TLS (port 465) is not supported by libESMTP; use starttls");
    if (cfg->tls != SMTP_TLS_NONE && cfg->tls != SMTP_TLS_STARTTLS)
        return err_set(e, ERR_CONFIG, "unknown SMTP TLS mode %d", (int)cfg->tls);
    if (cfg->tls == SMTP_TLS_STARTTLS && tls_ctx == NULL)
        return err_set(e, ERR_CONFIG, "STARTTLS requested but smtp_global_init set up no TLS");
    if (!host_valid(cfg->host))
        return err_set(e, ERR_CONFIG, "invalid SMTP host (a host name or an IPv4 address)");
    if (cfg->port <= 0 || cfg->port > 65535)
        return err_set(e, ERR_CONFIG, "invalid SMTP port %d", cfg->port);

    if (cfg->helo_name != NULL) {
        if (!helo_valid(cfg->helo_name) || strlen(cfg->helo_name) >= helosize)
            return err_set(e, ERR_CONFIG, "invalid SMTP helo_name (a domain or [address])");
        snprintf(helo, helosize, "%s", cfg->helo_name);
    } else {
        char name[256];
        if (gethostname(name, sizeof name) == 0 && memchr(name, '\0', sizeof name) != NULL &&
            helo_valid(name) && strlen(name) < helosize)
            snprintf(helo, helosize, "%s", name);
        else
            snprintf(helo, helosize, "localhost");
    }

    if (cfg->username != NULL) {
        const char *pw = cfg->password != NULL ? cfg->password : "";
        if (cfg->username[0] == '\0' || strlen(cfg->username) > CRED_MAX ||
            !no_controls(cfg->username))
            return err_set(e, ERR_CONFIG,
                           "invalid SMTP username (1-%d characters, no control characters)",
                           CRED_MAX);
        if (strlen(pw) > CRED_MAX || !no_controls(pw))
            return err_set(e, ERR_CONFIG,
                           "invalid SMTP password (at most %d characters, no control characters)",
                           CRED_MAX);
        if (cfg->tls == SMTP_TLS_NONE && !host_is_loopback(cfg->host))
            return err_set(e, ERR_CONFIG,
                           "refusing to send the SMTP password in clear text to %s; use tls "
                           "starttls or a relay on loopback",
                           cfg->host);
    }
    return ERR_OK;
}

/* Refuses, before any connection, the messages that must not reach the wire. Returns how
 * many may be offered. */
static size_t
screen_messages(struct smtp_message *msgs, size_t n, struct message_state *st, struct session *s)
{
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        struct smtp_message *m = &msgs[i];
        set_outcome(m, SMTP_NOT_ATTEMPTED, 0, "");
        st[i].msg = m;
        st[i].s = s;
        st[i].index = i;
        size_t bad_at = 0;
        if (!addr_valid(m->sender, ADDR_LITERAL) || !addr_valid(m->recipient, ADDR_LITERAL)) {
            set_outcome(m, SMTP_FAILED, 0, "invalid address");
            continue;
        }
        if (m->data == NULL || m->len == 0) {
            set_outcome(m, SMTP_FAILED, 0, "invalid message data: empty");
            continue;
        }
        if (!data_valid(m->data, m->len, &bad_at)) {
            char why[96];
            snprintf(why, sizeof why, "invalid message data: bare CR, bare LF or NUL at byte %zu",
                     bad_at);
            set_outcome(m, SMTP_FAILED, 0, why);
            continue;
        }
        ok++;
    }
    return ok;
}

static const char *
libesmtp_error(char *buf, size_t size)
{
    int code = smtp_errno();
    if (code == 0)
        return "no error reported";
    const char *msg = smtp_strerror(code, buf, size);
    return msg != NULL ? msg : "unknown error";
}

/* Builds the libESMTP session. Returns ERR_OK or ERR_INTERNAL. */
static int
build_session(struct session *s, const char *helo, struct message_state *st, size_t n,
              smtp_session_t *out, auth_context_t *auth, struct err *e)
{
    const struct smtp_config *cfg = s->cfg;
    char ebuf[128];
    smtp_session_t session = smtp_create_session();
    *out = session;
    if (session == NULL)
        return err_set(e, ERR_INTERNAL, "cannot create SMTP session: out of memory");

    static const int stages[] = {Timeout_GREETING, Timeout_ENVELOPE, Timeout_DATA, Timeout_TRANSFER,
                                 Timeout_DATA2};
    bool ok = smtp_set_server(session, s->server) && smtp_set_hostname(session, helo) &&
              smtp_set_eventcb(session, event_cb, s) &&
              smtp_set_monitorcb(session, monitor_cb, s, 0);
    /* Milliseconds, not the seconds the documentation says; without the flag anything below
     * the RFC 5321 minimums (up to ten minutes) is silently raised. */
    for (size_t i = 0; ok && i < sizeof stages / sizeof stages[0]; i++)
        ok = smtp_set_timeout(session, stages[i] | Timeout_OVERRIDE_RFC2822_MINIMUM,
                              s->timeout_ms) > 0;
    if (ok && cfg->tls == SMTP_TLS_STARTTLS)
        ok = smtp_starttls_enable(session, Starttls_REQUIRED) &&
             smtp_starttls_set_ctx(session, tls_ctx);
    if (ok && s->want_auth) {
        *auth = auth_create_context();
        ok = *auth != NULL &&
             auth_set_mechanism_flags(*auth, AUTH_PLUGIN_PLAIN, 0) && /* PLAIN and LOGIN */
             auth_set_interact_cb(*auth, auth_interact, s) && smtp_auth_set_context(session, *auth);
    }
    for (size_t i = 0; ok && i < n; i++) {
        struct message_state *ms = &st[i];
        if (ms->msg->outcome == SMTP_FAILED)
            continue;
        ms->handle = smtp_add_message(session);
        ok = ms->handle != NULL && smtp_set_reverse_path(ms->handle, ms->msg->sender) &&
             smtp_set_messagecb(ms->handle, message_cb, ms);
    }
    if (ok) {
        offer_next(s); /* the first message; the others one by one (see offer_next) */
        ok = !s->stopping || s->held_back_any;
    }
    if (!ok)
        return err_set(e, ERR_INTERNAL, "cannot set up SMTP session: %s",
                       libesmtp_error(ebuf, sizeof ebuf));
    return ERR_OK;
}

/* The session as a whole failed when a message was left without a final reply, or when TLS,
 * the greeting or AUTH went wrong (those can fail a session that otherwise ran to QUIT).
 * Returns ERR_OK or ERR_UNAVAILABLE with the first cause. */
static int
session_verdict(struct session *s, bool complete, const char *openssl_why, struct err *e)
{
    char ebuf[128];
    const char *srv = s->server;
    if (s->tls_error[0] != '\0')
        return err_set(e, ERR_UNAVAILABLE, "TLS with %s failed: %s", srv, s->tls_error);
    if (s->starttls.code / 100 == 2 && !s->tls_ok)
        return err_set(e, ERR_UNAVAILABLE, "TLS with %s failed: %s", srv, openssl_why);
    if (s->extna_starttls)
        return err_set(e, ERR_UNAVAILABLE, "%s does not offer STARTTLS", srv);
    if (s->starttls.code / 100 == 4 || s->starttls.code / 100 == 5)
        return err_set(e, ERR_UNAVAILABLE, "%s refused STARTTLS: %d %s", srv, s->starttls.code,
                       s->starttls.text);
    if (s->greeted && s->greeting.code != 220)
        return err_set(e, ERR_UNAVAILABLE, "%s refused the session: %d %s", srv, s->greeting.code,
                       s->greeting.text);
    if (!s->mail_sent && s->closing.code == 421)
        return err_set(e, ERR_UNAVAILABLE, "%s refused the session: 421 %s", srv, s->closing.text);
    if (s->want_auth && !s->authenticated) {
        if (s->auth_rejected)
            return err_set(e, ERR_UNAVAILABLE, "authentication failed: %d %s", s->auth_reply.code,
                           s->auth_reply.text);
        if (s->mail_sent)
            return err_set(e, ERR_UNAVAILABLE,
                           "authentication failed: %s offers no AUTH mechanism we can use", srv);
    }
    if (s->refused_530.code != 0)
        return err_set(e, ERR_UNAVAILABLE, "%s requires authentication or TLS: %d %s", srv,
                       s->refused_530.code, s->refused_530.text);
    if (complete)
        return ERR_OK;
    if (!s->greeted && s->timed_out_cmd[0] != '\0')
        return err_set(e, ERR_UNAVAILABLE, "no greeting from %s within %d ms", srv, s->timeout_ms);
    if (!s->greeted)
        return err_set(e, ERR_UNAVAILABLE, "%s closed the connection before its greeting: %s", srv,
                       libesmtp_error(ebuf, sizeof ebuf));
    if (s->closing.code == 421)
        return err_set(e, ERR_UNAVAILABLE, "%s closed the session: 421 %s", srv, s->closing.text);
    if (s->timed_out_cmd[0] != '\0')
        return err_set(e, ERR_UNAVAILABLE, "no reply from %s to %s within %d ms", srv,
                       s->timed_out_cmd, s->timeout_ms);
    if (s->npending > 0)
        return err_set(e, ERR_UNAVAILABLE, "connection to %s lost waiting for the reply to %s: %s",
                       srv, s->pending[0], libesmtp_error(ebuf, sizeof ebuf));
    return err_set(e, ERR_UNAVAILABLE, "connection to %s lost after %s: %s", srv,
                   s->last_cmd[0] != '\0' ? s->last_cmd : "connect",
                   libesmtp_error(ebuf, sizeof ebuf));
}

/* The relay answered, but refused the session for load: a 4xx greeting ("421 4.7.0 Too many
 * connections"), or a 421 before the first transaction. */
static bool
refused_for_load(const struct session *s)
{
    if (s->greeted && s->greeting.code / 100 == 4)
        return true;
    return !s->mail_sent && s->closing.code == 421;
}

static void
log_session(const struct session *s, const struct smtp_message *msgs, size_t n, long long elapsed,
            int rc)
{
    if (!log_enabled(LOG_LEVEL_DEBUG))
        return;
    int counts[SMTP_UNKNOWN + 1] = {0};
    for (size_t i = 0; i < n; i++)
        if ((unsigned)msgs[i].outcome <= SMTP_UNKNOWN)
            counts[msgs[i].outcome]++;
    json_t *f =
        json_pack("{s:s, s:i, s:b, s:b, s:I, s:i, s:i, s:i, s:i, s:i, s:s}", "host", s->cfg->host,
                  "port", s->cfg->port, "tls", s->tls_ok, "auth", s->authenticated, "elapsed_ms",
                  (json_int_t)elapsed, "sent", counts[SMTP_SENT], "deferred", counts[SMTP_DEFERRED],
                  "failed", counts[SMTP_FAILED], "unknown", counts[SMTP_UNKNOWN], "not_attempted",
                  counts[SMTP_NOT_ATTEMPTED], "result", err_str((enum err_code)rc));
    if (f != NULL && (s->throttled || s->quota || refused_for_load(s)))
        json_object_update_new(f, json_pack("{s:b, s:b, s:b, s:i}", "throttled", s->throttled,
                                            "quota", s->quota, "refused", refused_for_load(s),
                                            "stop_code", s->stop_reply.code));
    log_debug("smtp session finished", f);
}

static void
fill_report(struct smtp_session_report *r, const struct session *s)
{
    memset(r, 0, sizeof *r);
    if (s == NULL)
        return;
    const struct reply *why = NULL;
    if (refused_for_load(s)) {
        r->refused = true;
        why = s->greeted && s->greeting.code != 220 ? &s->greeting : &s->closing;
    } else if (s->throttled || s->quota) {
        r->throttled = s->throttled;
        r->quota = s->quota;
        why = &s->stop_reply;
        snprintf(r->enhanced, sizeof r->enhanced, "%s", s->stop_enhanced);
    }
    if (why == NULL)
        return;
    r->code = why->code;
    const char *text = why->text;
    const char *rest;
    if (r->enhanced[0] == '\0' &&
        parse_enhanced(text, why->code, r->enhanced, sizeof r->enhanced, &rest)) {
        text = rest;
        while (*text == ' ')
            text++;
    }
    snprintf(r->text, sizeof r->text, "%s", text);
}

/* The first session of a process checks that the relay answers; concurrent ones wait for
 * that check instead of each opening a connection of its own (a relay capping connections
 * at two would see the probes of two sessions use up its cap). */
static int
probe_once(const struct smtp_config *cfg, struct err *e)
{
    if (atomic_load(&relay_known_good))
        return ERR_OK;
    pthread_mutex_lock(&probe_lock);
    int rc = ERR_OK;
    if (!atomic_load(&relay_known_good)) {
        int connect_ms =
            cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
        rc = probe_connect(cfg, connect_ms, e);
        if (rc == ERR_OK)
            atomic_store(&relay_known_good, true);
    }
    pthread_mutex_unlock(&probe_lock);
    return rc;
}

int
smtp_send_batch(const struct smtp_config *cfg, struct smtp_message *msgs, size_t n,
                const struct smtp_hooks *hooks, struct smtp_session_report *report, struct err *e)
{
    char helo[256];
    if (report != NULL)
        fill_report(report, NULL);
    int rc = check_config(cfg, helo, sizeof helo, e);
    if (rc != ERR_OK) {
        for (size_t i = 0; i < n; i++)
            set_outcome(&msgs[i], SMTP_NOT_ATTEMPTED, 0, "");
        return rc;
    }
    if (n == 0)
        return ERR_OK;

    struct session *s = calloc(1, sizeof *s);
    struct message_state *st = calloc(n, sizeof *st);
    smtp_session_t session = NULL;
    auth_context_t auth = NULL;
    if (s == NULL || st == NULL) {
        for (size_t i = 0; i < n; i++)
            set_outcome(&msgs[i], SMTP_NOT_ATTEMPTED, 0, "");
        rc = err_set(e, ERR_INTERNAL, "cannot send SMTP batch: out of memory");
        goto done;
    }
    s->cfg = cfg;
    snprintf(s->server, sizeof s->server, "%s:%d", cfg->host, cfg->port);
    s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    if (s->timeout_ms < MIN_TIMEOUT_MS)
        s->timeout_ms = MIN_TIMEOUT_MS;
    s->want_auth = cfg->username != NULL;
    s->w_line_start = true;
    s->last_event_ms = clock_mono_ms();
    s->st = st;
    s->n = n;
    s->hooks = hooks;
    s->last_offered = n;
    pending_push(s, "greeting");

    if (screen_messages(msgs, n, st, s) == 0)
        goto done; /* nothing may be offered; not a session failure */

    /* The probe costs the relay an empty connection, so it runs once per process, and again
     * after a session could not reach the relay: a relay that went away is then noticed
     * within connect_timeout instead of libESMTP's untimed connect. */
    rc = probe_once(cfg, e);
    if (rc != ERR_OK)
        goto done;

    rc = build_session(s, helo, st, n, &session, &auth, e);
    if (rc != ERR_OK)
        goto done;

    long long started = clock_mono_ms();
    ERR_clear_error();
    current = s;
    if (s->last_offered < n)
        smtp_start_session(session); /* its result says little: see session_verdict */
    current = NULL;
    note_timeout(s, clock_mono_ms());
    char openssl_why[256];
    openssl_error(openssl_why, sizeof openssl_why);

    bool complete = true;
    for (size_t i = 0; i < n; i++) {
        struct message_state *ms = &st[i];
        if (ms->handle == NULL || ms->reported)
            continue;
        if (ms->held_back) {
            set_outcome(&msgs[i], SMTP_NOT_ATTEMPTED, 0, "not sent: held back before its data");
        } else if (!ms->recipient_added) {
            set_outcome(&msgs[i], SMTP_NOT_ATTEMPTED, 0,
                        s->throttled || s->quota
                            ? "not offered: the session stopped after a throttling reply"
                            : "not offered: the session stopped before it");
            continue; /* never offered: no after_reply */
        } else if (!classify(ms)) {
            complete = false;
        }
    }
    if (s->want_auth && !s->authenticated) {
        /* Nothing was sent unauthenticated (message_cb refuses the data); a refusal such
         * as "530 authentication required" says nothing about the message itself. */
        for (size_t i = 0; i < n; i++) {
            if (st[i].handle != NULL && msgs[i].outcome != SMTP_SENT)
                set_outcome(&msgs[i], SMTP_NOT_ATTEMPTED, 0, "not sent: authentication failed");
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct message_state *ms = &st[i];
        if (ms->handle == NULL || ms->reported || !ms->offered)
            continue;
        ms->reported = true;
        if (hooks != NULL && hooks->after_reply != NULL)
            hooks->after_reply(hooks->arg, i);
    }
    bool deliberate = s->held_back_any || s->throttled || s->quota;
    if (report != NULL && refused_for_load(s)) {
        rc = ERR_OK; /* the relay is up: the caller runs fewer sessions */
    } else {
        rc = session_verdict(s, complete || deliberate, openssl_why, e);
    }
    if (rc != ERR_OK && !s->greeted)
        atomic_store(&relay_known_good, false); /* probe again before the next session */
    log_session(s, msgs, n, clock_mono_ms() - started, rc);

done:
    if (report != NULL)
        fill_report(report, s);
    if (session != NULL)
        smtp_destroy_session(session);
    if (auth != NULL)
        auth_destroy_context(auth);
    free(st);
    free(s);
    return rc;
}
