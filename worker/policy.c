/* policy: decisions of the sweep, kept free of I/O. The order of the checks follows the
 * storefront's own job (order, member, intents, consent), with the worker's ledger rules
 * (delivered, unknown, cap) in front so a retry never sends twice. */
#include "policy.h"

#include <stdlib.h>
#include <string.h>

#define NOTE_NO_MEMBER "Missing member for checkout recovery"
#define NOTE_NO_INTENTS "No pending checkout intents"
#define NOTE_NO_ORDER "Missing order for checkout recovery"
#define NOTE_MAX_PROMPTS "Recovery prompt limit reached"
#define NOTE_INVALID_ADDRESS "Member email address cannot be used"
#define NOTE_REJECTED "Recovery prompt rejected by the mail server"
#define NOTE_UNKNOWN "Recovery prompt delivery unknown"
#define NOTE_GAVE_UP "Recovery window closed"

const char *
policy_ledger_name(enum policy_ledger s)
{
    switch (s) {
    case POLICY_LEDGER_NONE:
        return NULL;
#define NAME(id, word)                                                                             \
    case POLICY_LEDGER_##id:                                                                       \
        return #word;
        POLICY_LEDGER_STATUSES(NAME)
#undef NAME
    }
    return NULL;
}

enum policy_ledger
policy_ledger_parse(const char *word)
{
    if (word == NULL)
        return POLICY_LEDGER_NONE;
#define PARSE(id, w)                                                                               \
    if (strcmp(word, #w) == 0)                                                                     \
        return POLICY_LEDGER_##id;
    POLICY_LEDGER_STATUSES(PARSE)
#undef PARSE
    return POLICY_LEDGER_NONE;
}

bool
policy_ledger_in_doubt(enum policy_ledger s)
{
    return s == POLICY_LEDGER_SENDING || s == POLICY_LEDGER_UNKNOWN;
}

enum policy_action
policy_decide(const struct policy_facts *f, const struct policy_rules *r)
{
    /* A previous attempt at this same due occurrence decides first: never send twice. */
    if (f->ledger_status == POLICY_LEDGER_SENT)
        return POLICY_ALREADY_SENT;
    if (f->ledger_status == POLICY_LEDGER_FAILED)
        return POLICY_ALREADY_FAILED;
    if (policy_ledger_in_doubt(f->ledger_status)) {
        if (f->ledger_attempts >= policy_resend_limit(f->ledger_status, r->on_unknown))
            return POLICY_ORPHANED;
    }
    /* Whatever else holds, a checkout older than the window is not worth another nudge, and
     * an orchestration that stays waiting for any reason must not be swept forever. */
    if (r->give_up_after_ms > 0 && f->age_ms >= r->give_up_after_ms)
        return POLICY_GIVE_UP;
    if (!f->order_found)
        return POLICY_ESCALATE_NO_ORDER;
    if (!f->has_user)
        return POLICY_ESCALATE_NO_USER;
    if (!f->has_member || f->pending_intents <= 0)
        return POLICY_NO_INTENTS;
    if (f->opted_out)
        return POLICY_OPT_OUT;
    if (f->prompts_sent >= r->max_prompts)
        return POLICY_MAX_PROMPTS;
    if (!f->email_valid)
        return POLICY_INVALID_ADDRESS;
    if (f->quiet_wait_ms > 0)
        return POLICY_QUIET_HOURS;
    if (f->cap_wait_ms > 0)
        return POLICY_MEMBER_CAPPED;
    return POLICY_SEND;
}

int
policy_resend_limit(enum policy_ledger ledger_status, enum policy_unknown on_unknown)
{
    if (on_unknown == POLICY_UNKNOWN_SKIP)
        return 0;
    if (ledger_status == POLICY_LEDGER_SENDING)
        return POLICY_RESEND_LIMIT_SENDING;
    if (ledger_status == POLICY_LEDGER_UNKNOWN)
        return POLICY_RESEND_LIMIT_UNKNOWN;
    return 0;
}

long long
policy_member_cap_wait_ms(long long window_ms, long long since_ms)
{
    if (window_ms <= 0 || since_ms < 0 || since_ms >= window_ms)
        return 0;
    return window_ms - since_ms;
}

struct member_ref {
    const char *member;
    size_t row;
};

static int
member_cmp(const void *a, const void *b)
{
    const struct member_ref *x = a, *y = b;
    int d = strcmp(x->member, y->member);
    return d != 0 ? d : (x->row > y->row) - (x->row < y->row);
}

bool
policy_member_repeats(long long window_ms, const char *const *send_members, size_t n, bool *repeat)
{
    if (window_ms <= 0)
        return true;
    struct member_ref *refs = calloc(n ? n : 1, sizeof *refs);
    if (refs == NULL)
        return false;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (send_members[i] != NULL)
            refs[m++] = (struct member_ref){send_members[i], i};
    /* by member, then batch order: each run's first row is the one sent now */
    qsort(refs, m, sizeof *refs, member_cmp);
    for (size_t k = 1; k < m; k++)
        if (strcmp(refs[k].member, refs[k - 1].member) == 0)
            repeat[refs[k].row] = true;
    free(refs);
    return true;
}

/* base * 2^n, capped, plus up to a fifth of jitter so deferred rows spread out. */
static long long
backoff_ms(const struct policy_timing *t, long n, double jitter01)
{
    long long d = t->backoff_base_ms;
    for (long i = 0; i < n && d < t->backoff_max_ms; i++)
        d *= 2;
    if (d > t->backoff_max_ms)
        d = t->backoff_max_ms;
    if (jitter01 < 0 || jitter01 >= 1)
        jitter01 = 0;
    return d + (long long)((double)d * 0.2 * jitter01);
}

/* Up to a tenth more (at most 10 minutes), so rows deferred together do not all come due in
 * the same instant. */
static long long
spread(long long wait_ms, double jitter01)
{
    if (jitter01 < 0 || jitter01 >= 1)
        return 0;
    long long extra = wait_ms / 10 < 600000 ? wait_ms / 10 : 600000;
    return (long long)((double)extra * jitter01);
}

long long
policy_quiet_wait_ms(int start_min, int end_min, int now_s)
{
    if (start_min == end_min)
        return 0;
    int start = start_min * 60, end = end_min * 60;
    bool inside = start < end ? (now_s >= start && now_s < end) : (now_s >= start || now_s < end);
    if (!inside)
        return 0;
    int wait = end - now_s;
    if (wait <= 0)
        wait += 24 * 3600;
    return (long long)wait * 1000;
}

struct policy_final
policy_finalise(enum policy_action a, enum policy_delivery d, const struct policy_facts *f,
                const struct policy_timing *t, double jitter01)
{
    struct policy_final out = {
        .outcome = policy_action_name(a),
        .note = NULL,
        .escalate = false,
        .stop = false,
        .next_ms = t->retry_interval_ms,
    };
    switch (a) {
    case POLICY_SEND:
        break;
    case POLICY_ESCALATE_NO_ORDER:
        out.note = NOTE_NO_ORDER;
        out.escalate = true;
        out.stop = true; /* retrying cannot bring the order back */
        return out;
    case POLICY_ESCALATE_NO_USER:
        out.note = NOTE_NO_MEMBER;
        out.escalate = true;
        return out;
    case POLICY_NO_INTENTS:
        out.note = NOTE_NO_INTENTS;
        return out;
    case POLICY_OPT_OUT:
        return out;
    case POLICY_MAX_PROMPTS:
        out.note = NOTE_MAX_PROMPTS;
        out.stop = true;
        return out;
    case POLICY_INVALID_ADDRESS:
        out.note = NOTE_INVALID_ADDRESS;
        out.escalate = true;
        out.stop = true;
        return out;
    case POLICY_ALREADY_SENT:
        return out;
    case POLICY_ALREADY_FAILED:
        out.outcome = "failed";
        out.note = NOTE_REJECTED;
        out.escalate = true;
        out.stop = true;
        return out;
    case POLICY_ORPHANED:
        out.note = NOTE_UNKNOWN;
        return out;
    case POLICY_QUIET_HOURS:
        out.next_ms = f->quiet_wait_ms + spread(f->quiet_wait_ms, jitter01);
        return out;
    case POLICY_MEMBER_CAPPED:
        out.next_ms = f->cap_wait_ms + spread(f->cap_wait_ms, jitter01);
        return out;
    case POLICY_GIVE_UP:
        out.note = NOTE_GAVE_UP;
        out.stop = true;
        return out;
    }

    switch (d) {
    case POLICY_DELIVERY_SENT:
    case POLICY_DELIVERY_NONE:
        out.outcome = "sent";
        break;
    case POLICY_DELIVERY_DEFERRED:
        out.outcome = "deferred";
        out.next_ms = backoff_ms(t, f->deferrals, jitter01);
        break;
    case POLICY_DELIVERY_FAILED:
        out.outcome = "failed";
        out.note = NOTE_REJECTED;
        out.escalate = true;
        out.stop = true; /* a permanent refusal for this recipient: do not retry each sweep */
        break;
    case POLICY_DELIVERY_UNKNOWN:
        out.outcome = "unknown";
        out.note = NOTE_UNKNOWN;
        break;
    }
    return out;
}

const char *
policy_consent_name(enum policy_consent basis)
{
    switch (basis) {
#define NAME(id, word)                                                                             \
    case POLICY_CONSENT_##id:                                                                      \
        return #word;
        POLICY_CONSENTS(NAME)
#undef NAME
    }
    return policy_consent_name(POLICY_CONSENT_ORDER_UPDATES);
}

struct policy_consent_terms
policy_consent_terms(enum policy_consent basis)
{
    struct policy_consent_terms t = {
        .needs_order_updates =
            basis == POLICY_CONSENT_ORDER_UPDATES || basis == POLICY_CONSENT_BOTH,
        .needs_marketing = basis == POLICY_CONSENT_MARKETING || basis == POLICY_CONSENT_BOTH,
        /* The storefront sends order notices to a member who never said otherwise; marketing
         * needs an opt-in. */
        .order_updates_unset = true,
        .marketing_unset = false,
    };
    return t;
}

static bool
pref_on(enum policy_pref p, bool unset)
{
    return p == POLICY_PREF_UNSET ? unset : p == POLICY_PREF_ON;
}

bool
policy_consents(enum policy_consent basis, enum policy_pref order_updates,
                enum policy_pref marketing_messages)
{
    struct policy_consent_terms t = policy_consent_terms(basis);
    return (!t.needs_order_updates || pref_on(order_updates, t.order_updates_unset)) &&
           (!t.needs_marketing || pref_on(marketing_messages, t.marketing_unset));
}

struct policy_opt_out
policy_unsubscribe(enum policy_consent basis)
{
    struct policy_opt_out o = {false, false};
    switch (basis) {
    case POLICY_CONSENT_ORDER_UPDATES:
        o.order_updates = true;
        break;
    case POLICY_CONSENT_MARKETING:
        o.marketing_messages = true;
        break;
    case POLICY_CONSENT_BOTH:
        /* Prompts need both, so turning off marketing_messages is enough to stop them.
         * The member asked to stop these reminders, which the operator classed as
         * marketing; turning off order_updates too would also silence the storefront's
         * shipping and payment notices, which the member did not ask for. */
        o.marketing_messages = true;
        break;
    }
    return o;
}

const char *
policy_action_name(enum policy_action a)
{
    switch (a) {
    case POLICY_SEND:
        return "send";
    case POLICY_ESCALATE_NO_ORDER:
        return "missing_order";
    case POLICY_ESCALATE_NO_USER:
        return "missing_member";
    case POLICY_NO_INTENTS:
        return "no_intents";
    case POLICY_OPT_OUT:
        return "skipped_opt_out";
    case POLICY_MAX_PROMPTS:
        return "max_prompts";
    case POLICY_INVALID_ADDRESS:
        return "invalid_address";
    case POLICY_ALREADY_SENT:
        return "already_sent";
    case POLICY_ALREADY_FAILED:
        return "already_failed";
    case POLICY_ORPHANED:
        return "delivery_unknown";
    case POLICY_QUIET_HOURS:
        return "quiet_hours";
    case POLICY_MEMBER_CAPPED:
        return "member_capped";
    case POLICY_GIVE_UP:
        return "gave_up";
    }
    return "unknown";
}
