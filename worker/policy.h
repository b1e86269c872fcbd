/* policy: the pure decisions of a sweep. What to do with a claimed orchestration, and how
 * to finalise it once the outcome is known. No I/O, so every rule is unit-tested. */
#ifndef WORKER_POLICY_H
#define WORKER_POLICY_H

#include <stdbool.h>
#include <stddef.h>

/* The delivery ledger's statuses (recovery_deliveries.status): the enumerator and the word
 * the database stores, in one list. The migrations' CHECK constraint names the same words;
 * SQL that spells a status as a literal checks its word against this list at compile time
 * (POLICY_LEDGER_WORD_<word>, see store.c), and SQL that is handed a status gets it from
 * policy_ledger_name. */
#define POLICY_LEDGER_STATUSES(X)                                                                  \
    X(QUEUED, queued)   /* written before the send: the message is not on the wire yet */          \
    X(SENDING, sending) /* its data is about to go, or went, out; no reply recorded */             \
    X(SENT, sent)                                                                                  \
    X(DEFERRED, deferred) /* a temporary refusal: due again after a backoff */                     \
    X(FAILED, failed)     /* a permanent refusal */                                                \
    X(UNKNOWN, unknown)   /* the data went out and no reply came back */                           \
    X(RELEASED, released) /* handed back without being offered to the relay */

enum policy_ledger {
    POLICY_LEDGER_NONE = 0, /* this due occurrence has no ledger row */
#define POLICY_LEDGER_ENUM_(id, word) POLICY_LEDGER_##id,
    POLICY_LEDGER_STATUSES(POLICY_LEDGER_ENUM_)
#undef POLICY_LEDGER_ENUM_
};

/* One constant per word of the list, for compile-time checks of SQL literals:
 * POLICY_LEDGER_WORD_sent == POLICY_LEDGER_SENT, and a word outside the list does not
 * compile. */
enum policy_ledger_word {
#define POLICY_LEDGER_WORD_(id, word) POLICY_LEDGER_WORD_##word = POLICY_LEDGER_##id,
    POLICY_LEDGER_STATUSES(POLICY_LEDGER_WORD_)
#undef POLICY_LEDGER_WORD_
};

/* The database's word for a status ("sent"); NULL for POLICY_LEDGER_NONE. */
const char *policy_ledger_name(enum policy_ledger s);

/* The status a database word names; POLICY_LEDGER_NONE for NULL or a word not in the list. */
enum policy_ledger policy_ledger_parse(const char *word);

/* Whether a row in this status may have reached the member without a recorded reply (a
 * worker stopped with it 'sending', or the relay dropped the connection after its data). */
bool policy_ledger_in_doubt(enum policy_ledger s);

/* What the claim query learned about one orchestration (read at claim time, in the same
 * statement that leased it, so opt-outs are current). */
struct policy_facts {
    bool order_found;
    bool has_user;
    bool email_valid;                 /* the member's address passed mime_address_valid */
    bool opted_out;                   /* the gating preference is false */
    bool has_member;                  /* a loyalty member exists for the user */
    long pending_intents;             /* pending, unexpired checkout intents */
    long prompts_sent;                /* ledger rows 'sent' for this orchestration */
    long deferrals;                   /* ledger rows 'deferred' since the last sent one */
    enum policy_ledger ledger_status; /* this due occurrence's ledger row, if any */
    long ledger_attempts;
    long long cap_wait_ms;   /* > 0: the member had a prompt too recently; wait this long
                              * (policy_member_cap_wait_ms) */
    long long quiet_wait_ms; /* > 0: inside quiet hours; they end in this long */
    long long age_ms;        /* since the orchestration's created_at; < 0 when unknown */
};

enum policy_action {
    POLICY_SEND = 0,
    POLICY_ESCALATE_NO_ORDER, /* the order is gone: note it, escalate, stop nudging */
    POLICY_ESCALATE_NO_USER,  /* the order has no member: escalate */
    POLICY_NO_INTENTS,        /* nothing pending for the member: note, no email */
    POLICY_OPT_OUT,           /* member opted out: no email */
    POLICY_MAX_PROMPTS,       /* cap reached: stop nudging, say so */
    POLICY_INVALID_ADDRESS,   /* the member's address cannot be used: skip with an event */
    POLICY_ALREADY_SENT,      /* the ledger says this occurrence was delivered: finalise only */
    POLICY_ALREADY_FAILED,    /* the relay refused it for good last time: finalise as failed */
    POLICY_ORPHANED,          /* a dead worker left it 'sending': finalise, do not resend */
    POLICY_QUIET_HOURS,       /* not now: deferred to the end of the quiet hours */
    POLICY_MEMBER_CAPPED,     /* not now: the member's prompt frequency cap; deferred */
    POLICY_GIVE_UP,           /* older than the recovery window: say so, stop nudging */
};

/* What to do with a message whose data was on the wire when a worker stopped, or after
 * which a relay dropped the connection (sweep.on_unknown_delivery), with the word that names
 * each in the configuration. In enum order. */
#define POLICY_UNKNOWNS(X)                                                                         \
    X(SKIP, skip)     /* do not resend; record that delivery is unknown */                         \
    X(RESEND, resend) /* resend with the same Message-ID (policy_resend_limit) */

enum policy_unknown {
#define POLICY_UNKNOWN_ENUM_(id, word) POLICY_UNKNOWN_##id,
    POLICY_UNKNOWNS(POLICY_UNKNOWN_ENUM_)
#undef POLICY_UNKNOWN_ENUM_
};

struct policy_rules {
    int max_prompts;
    enum policy_unknown on_unknown;
    long long give_up_after_ms; /* the recovery window from created_at; 0 = never closes */
};

enum policy_action policy_decide(const struct policy_facts *f, const struct policy_rules *r);

/* The member frequency cap: how long a member last sent a prompt since_ms ago (< 0: never)
 * must still wait for another, under a cap of window_ms (<= 0: no cap). 0: not capped. */
long long policy_member_cap_wait_ms(long long window_ms, long long since_ms);

/* The member cap within one batch: a member with several rows to send gets one prompt now,
 * the first in batch order; for the others, that prompt counts as one sent just now (a
 * since_ms of 0 to policy_member_cap_wait_ms). send_members[i] is row i's member when
 * policy_decide said POLICY_SEND, else NULL; repeat[i] is set for the rows that must wait
 * (none when window_ms <= 0). false when out of memory (nothing set). */
bool policy_member_repeats(long long window_ms, const char *const *send_members, size_t n,
                           bool *repeat);

/* How many attempts an in-doubt delivery may have in all, by what left it in doubt: a worker
 * that stopped with it 'sending' (each such stop is a separate event, so it is tried again a
 * few times; a bound keeps a message that crashes the worker from looping), or a relay that
 * dropped the connection after its data ('unknown', resent once). 0 under the skip policy. */
int policy_resend_limit(enum policy_ledger ledger_status, enum policy_unknown on_unknown);

#define POLICY_RESEND_LIMIT_SENDING 3
#define POLICY_RESEND_LIMIT_UNKNOWN 2

/* The result of sending, for POLICY_SEND rows. */
enum policy_delivery {
    POLICY_DELIVERY_NONE = 0, /* not a send row */
    POLICY_DELIVERY_SENT,
    POLICY_DELIVERY_DEFERRED,
    POLICY_DELIVERY_FAILED,
    POLICY_DELIVERY_UNKNOWN,
};

/* How to finalise: the event payload's outcome, the metadata note, when to act next. */
struct policy_final {
    const char *outcome; /* "sent", "skipped_opt_out", ... (event payload, metrics) */
    const char *note;    /* metadata note, or NULL */
    bool escalate;       /* counts in `escalations` and sets the escalation note */
    bool stop;           /* next_action_at cleared: no further nudges */
    long long next_ms;   /* delay until next_action_at when !stop */
};

struct policy_timing {
    long long retry_interval_ms;
    long long backoff_base_ms;
    long long backoff_max_ms;
};

/* jitter01 is a number in [0,1) supplied by the caller (random in production, fixed in
 * tests); it spreads deferred retries by up to a fifth of the delay. */
struct policy_final policy_finalise(enum policy_action a, enum policy_delivery d,
                                    const struct policy_facts *f, const struct policy_timing *t,
                                    double jitter01);

const char *policy_action_name(enum policy_action a);

/* The member preference(s) the prompts depend on (email.consent), with the word that names
 * each in the configuration and in the event payload's consentBasis. */
#define POLICY_CONSENTS(X)                                                                         \
    X(ORDER_UPDATES, order_updates)  /* as the storefront does: order_updates */                   \
    X(MARKETING, marketing_messages) /* opt-in: marketing_messages */                              \
    X(BOTH, both)

enum policy_consent {
#define POLICY_CONSENT_ENUM_(id, word) POLICY_CONSENT_##id,
    POLICY_CONSENTS(POLICY_CONSENT_ENUM_)
#undef POLICY_CONSENT_ENUM_
};

const char *policy_consent_name(enum policy_consent basis);

/* One of the member's stored notification preferences: unset when they have no preference
 * row, or a NULL in it. */
enum policy_pref { POLICY_PREF_UNSET = 0, POLICY_PREF_OFF, POLICY_PREF_ON };

/* The consent rule in the terms the ledger's re-check (store_ledger_begin) takes: which
 * preferences must be on, and what an unset one counts as. */
struct policy_consent_terms {
    bool needs_order_updates;
    bool needs_marketing;
    bool order_updates_unset; /* an unset order_updates counts as this (the storefront's default) */
    bool marketing_unset;     /* an unset marketing_messages counts as this (opt-in: off) */
};

struct policy_consent_terms policy_consent_terms(enum policy_consent basis);

/* Whether the member's preferences allow a prompt under the consent basis. */
bool policy_consents(enum policy_consent basis, enum policy_pref order_updates,
                     enum policy_pref marketing_messages);

/* What a one-click unsubscribe turns off: the preferences to set false. */
struct policy_opt_out {
    bool order_updates;
    bool marketing_messages;
};

/* The preferences an unsubscribe sets false so that no further prompt goes out under this
 * consent basis, and no more than that. */
struct policy_opt_out policy_unsubscribe(enum policy_consent basis);

/* How long until the quiet hours [start_min, end_min) (minutes of the local day; the window
 * may wrap past midnight) end, seen from local time now_s (seconds of the local day). 0 when
 * outside them, or when start_min == end_min (no quiet hours). */
long long policy_quiet_wait_ms(int start_min, int end_min, int now_s);

#endif
