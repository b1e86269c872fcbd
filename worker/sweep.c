/* sweep: the claim → decide → ledger → send → record → finalise loop, batch by batch. */
#include "sweep.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mime.h"
#include "buf.h"
#include "clock.h"
#include "failpoint.h"
#include "links.h"
#include "log.h"
#include "journal.h"
#include "policy.h"
#include "send.h"
#include "smtp.h"
#include "store.h"

/* Everything the sweep decided and learned about one claimed row. */
struct item {
    struct policy_facts facts; /* as decided; finalise uses the same */
    enum policy_action action;
    enum policy_delivery delivery;
    char message_id[MIME_MESSAGE_ID_MAX + 1]; /* this due occurrence's, sent now or not */
    struct buf message;                       /* rendered prompt, for rows to send */
    size_t send_slot;                         /* index into the batch's smtp messages, when sent */
    bool ledger_ok;                           /* the ledger let us send this occurrence */
    bool released;                            /* handed back unfinished */
};

struct ctx {
    struct db *db;
    const struct settings *s;
    const struct prompt_templates *t;
    const char *run_id;
    const struct sweep_options *opt;
    struct sweep_summary *sum;
    struct journal *journal;
    struct send_pool *pool;
    struct links *links;     /* signs resume and unsubscribe links; read-only while sending */
    long long quiet_wait_ms; /* > 0 while inside the quiet hours (per batch) */
    unsigned int seed;
};

void
sweep_new_run_id(char out[17])
{
    unsigned char raw[8];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        /* The kernel's source should never fail; fall back to time and pid. */
        unsigned long long v =
            (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
        memcpy(raw, &v, sizeof raw);
    }
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static struct policy_facts
facts_of(const struct ctx *c, const struct store_row *row)
{
    struct policy_facts f = {
        .order_found = row->order_id != NULL,
        .has_user = row->user_id != NULL && row->email != NULL,
        .email_valid = row->email != NULL && mime_address_valid(row->email),
        .opted_out = !policy_consents(c->s->consent, row->order_updates, row->marketing_messages),
        .has_member = row->has_member,
        .pending_intents = row->pending_intents,
        .prompts_sent = row->prompts_sent,
        .deferrals = row->deferrals,
        .ledger_status = policy_ledger_parse(row->ledger_status),
        .ledger_attempts = row->ledger_attempts,
        .cap_wait_ms =
            policy_member_cap_wait_ms(c->s->member_min_interval_ms, row->since_last_prompt_ms),
        .quiet_wait_ms = c->quiet_wait_ms,
        .age_ms = row->age_ms,
    };
    return f;
}

static int
render(const struct ctx *c, const struct store_row *row, struct item *it, struct err *e)
{
    struct links_target tg = {row->order_id, row->id, row->stage};
    time_t now = time(NULL);
    struct buf url, unsub;
    buf_init(&url, PROMPT_URL_MAX);
    buf_init(&unsub, PROMPT_UNSUBSCRIBE_URL_MAX);
    int rc = links_resume_url(c->links, &tg, now, &url, e);
    if (rc == ERR_OK)
        rc = links_unsubscribe_url(c->links, &tg, now, &unsub, e);
    struct prompt_input in = {
        .stage = row->stage,
        .member_name = row->display_name,
        .member_email = row->email,
        .order_id = row->order_id,
        .order_number = row->order_number,
        .total = row->total,
        .currency = row->currency,
        .pending_intents = row->pending_intents,
        .resume_url = buf_str(&url),
        .unsubscribe_url = unsub.len > 0 ? buf_str(&unsub) : NULL,
        .unsubscribe_mailto = c->s->unsubscribe_mailto,
        .sender_email = c->s->sender_email,
        .sender_name = c->s->sender_name,
        .message_id = it->message_id,
        .date = now,
    };
    buf_init(&it->message, 0);
    if (rc == ERR_OK)
        rc = prompt_render(c->t, &in, &it->message, e);
    if (rc == ERR_OK && it->message.failed)
        rc = err_set(e, ERR_DATA, "message too large");
    buf_free(&url);
    buf_free(&unsub);
    return rc;
}

/* Whether now is inside the quiet hours, in their zone (asked of PostgreSQL, which knows
 * the zones and their daylight saving). */
static int
quiet_now(struct ctx *c, struct err *e)
{
    c->quiet_wait_ms = 0;
    if (c->s->quiet_start_min == c->s->quiet_end_min)
        return ERR_OK;
    int now_s = 0;
    int rc = store_local_time(c->db, c->s->quiet_hours_zone, &now_s, e);
    if (rc == ERR_DATA)
        return err_set(e, ERR_CONFIG, "sweep.quiet_hours_zone: unknown time zone \"%s\"",
                       c->s->quiet_hours_zone);
    if (rc == ERR_OK)
        c->quiet_wait_ms = policy_quiet_wait_ms(c->s->quiet_start_min, c->s->quiet_end_min, now_s);
    return rc;
}

/* The frequency cap within one batch (policy_member_repeats): a member's repeats are decided
 * again as capped by the prompt the batch sends them now. */
static void
cap_within_batch(const struct ctx *c, const struct store_batch *b, struct item *items,
                 const struct policy_rules *rules)
{
    long long window = c->s->member_min_interval_ms;
    const char **members = calloc(b->n ? b->n : 1, sizeof *members);
    bool *repeat = calloc(b->n ? b->n : 1, sizeof *repeat);
    if (members != NULL && repeat != NULL) {
        for (size_t i = 0; i < b->n; i++)
            members[i] = items[i].action == POLICY_SEND ? b->rows[i].user_id : NULL;
        if (policy_member_repeats(window, members, b->n, repeat)) {
            for (size_t i = 0; i < b->n; i++) {
                if (!repeat[i])
                    continue;
                items[i].facts.cap_wait_ms = policy_member_cap_wait_ms(window, 0);
                items[i].action = policy_decide(&items[i].facts, rules);
            }
        }
    }
    free(members);
    free(repeat);
}

/* The settings as policy's rules, for the decisions and for the ledger's re-checks alike. */
static struct policy_rules
rules_of(const struct settings *s)
{
    struct policy_rules r = {
        .max_prompts = s->max_prompts,
        .on_unknown = s->on_unknown_delivery,
        .give_up_after_ms = s->give_up_after_ms,
    };
    return r;
}

/* Decide every row; render the prompts of those to send. */
static void
decide(struct ctx *c, const struct store_batch *b, struct item *items)
{
    struct policy_rules rules = rules_of(c->s);
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &items[i];
        it->facts = facts_of(c, &b->rows[i]);
        prompt_message_id(it->message_id, b->rows[i].id, b->rows[i].due_us, c->s->sender_email);
        it->action = policy_decide(&it->facts, &rules);
        buf_init(&it->message, 0);
    }
    cap_within_batch(c, b, items, &rules);
    for (size_t i = 0; i < b->n; i++) {
        const struct store_row *row = &b->rows[i];
        struct item *it = &items[i];
        if (it->action != POLICY_SEND)
            continue;
        struct err e;
        err_clear(&e);
        if (render(c, row, it, &e) != ERR_OK) {
            log_warn("prompt cannot be built; skipping",
                     json_pack("{s:s,s:s}", "orchestration_id", row->id, "error", e.msg));
            it->action = POLICY_INVALID_ADDRESS;
            buf_free(&it->message);
        }
    }
}

/* A claimed batch on its way through the protocol. While one batch is with the relay, the
 * next one is claimed and prepared, and the previous one recorded, so the database work
 * overlaps the sending. */
struct batch {
    struct store_batch b;
    struct item *items;
    size_t *idx; /* rows to send, in batch order */
    size_t nsend;
    struct smtp_message *msgs; /* the rows the ledger let through */
    struct send_key *keys;     /* their ledger rows */
    bool *recorded;            /* the journal holds the outcome */
    size_t nmsgs;
    struct send_job *job; /* while with the relay */
    int relay_rc;         /* the relay failed while sending this batch */
    struct err relay_err;
};

/* Hands the batch's messages to the session pool. */
static void
batch_start(const struct ctx *c, struct batch *bt)
{
    bt->relay_rc = ERR_OK;
    err_clear(&bt->relay_err);
    if (bt->nmsgs > 0)
        bt->job = send_start(c->pool, bt->msgs, bt->keys, bt->recorded, bt->nmsgs);
}

/* Waits for the batch's sessions to end. */
static void
batch_wait(struct batch *bt)
{
    if (bt->job == NULL)
        return;
    bt->relay_rc = send_finish(bt->job, &bt->relay_err);
    bt->job = NULL;
    failpoint("after_send");
}

static void
batch_free(struct batch *bt)
{
    if (bt == NULL)
        return;
    for (size_t i = 0; bt->items != NULL && i < bt->b.n; i++)
        buf_free(&bt->items[i].message);
    free(bt->items);
    free(bt->idx);
    free(bt->msgs);
    free(bt->keys);
    free(bt->recorded);
    store_batch_free(&bt->b);
    free(bt);
}

static enum policy_delivery
delivery_of(enum smtp_outcome o)
{
    switch (o) {
    case SMTP_SENT:
        return POLICY_DELIVERY_SENT;
    case SMTP_DEFERRED:
        return POLICY_DELIVERY_DEFERRED;
    case SMTP_FAILED:
        return POLICY_DELIVERY_FAILED;
    case SMTP_UNKNOWN:
        return POLICY_DELIVERY_UNKNOWN;
    case SMTP_NOT_ATTEMPTED:
        return POLICY_DELIVERY_NONE;
    }
    return POLICY_DELIVERY_NONE;
}

static void
count(struct sweep_summary *sum, const struct item *it, const struct policy_final *f)
{
    if (f->escalate)
        sum->escalations++;
    switch (it->action) {
    case POLICY_SEND:
        break;
    case POLICY_OPT_OUT:
        sum->skipped_opt_out++;
        return;
    case POLICY_NO_INTENTS:
        sum->no_intents++;
        return;
    case POLICY_MAX_PROMPTS:
        sum->max_prompts++;
        return;
    case POLICY_INVALID_ADDRESS:
        sum->invalid_address++;
        return;
    case POLICY_ALREADY_SENT:
        sum->already_sent++;
        return;
    case POLICY_ALREADY_FAILED:
        sum->failed++;
        return;
    case POLICY_ORPHANED:
        sum->unknown++;
        return;
    case POLICY_QUIET_HOURS:
        sum->quiet_hours++;
        return;
    case POLICY_MEMBER_CAPPED:
        sum->member_capped++;
        return;
    case POLICY_GIVE_UP:
        sum->gave_up++;
        return;
    case POLICY_ESCALATE_NO_ORDER:
    case POLICY_ESCALATE_NO_USER:
        return;
    }
    switch (it->delivery) {
    case POLICY_DELIVERY_SENT:
        sum->nudges_sent++;
        break;
    case POLICY_DELIVERY_DEFERRED:
        sum->deferred++;
        break;
    case POLICY_DELIVERY_FAILED:
        sum->failed++;
        break;
    case POLICY_DELIVERY_UNKNOWN:
        sum->unknown++;
        break;
    case POLICY_DELIVERY_NONE:
        break;
    }
}

/* The event payload: what happened, never who it happened to (no address, no name, no
 * reply text, which may quote the address). */
static json_t *
payload_of(const struct ctx *c, const struct store_row *row, const struct item *it,
           const struct policy_final *f, const struct smtp_message *m)
{
    json_t *p = json_pack("{s:s,s:s,s:s,s:I}", "outcome", f->outcome, "runId", c->run_id, "stage",
                          row->stage, "intentCount", (json_int_t)row->pending_intents);
    if (it->action == POLICY_SEND || it->action == POLICY_ALREADY_SENT ||
        it->action == POLICY_ORPHANED) {
        json_object_set_new(p, "messageId", json_string(it->message_id));
    }
    if (m != NULL && m->code > 0) {
        json_object_set_new(p, "smtpCode", json_integer(m->code));
        if (m->enhanced[0] != '\0')
            json_object_set_new(p, "smtpEnhancedCode", json_string(m->enhanced));
    }
    if (f->escalate)
        json_object_set_new(p, "escalated", json_true());
    if (f->stop)
        json_object_set_new(p, "nudgesStopped", json_true());
    if (it->action == POLICY_SEND || it->action == POLICY_OPT_OUT)
        json_object_set_new(p, "consentBasis", json_string(policy_consent_name(c->s->consent)));
    return p;
}

static struct policy_timing
timing_of(const struct settings *s)
{
    struct policy_timing t = {
        .retry_interval_ms = s->retry_interval_ms,
        .backoff_base_ms = s->backoff_base_ms,
        .backoff_max_ms = s->backoff_max_ms,
    };
    return t;
}

static double
jitter(struct ctx *c)
{
    return (double)rand_r(&c->seed) / ((double)RAND_MAX + 1.0);
}

static void
log_row(const struct store_row *row, const char *outcome, const char *what)
{
    log_info(what, json_pack("{s:s,s:s?,s:s}", "orchestration_id", row->id, "order_id",
                             row->order_id, "outcome", outcome));
}

/* What finalising one row writes: policy's verdict, the metadata patch and the event
 * payload. The sweep writes it (finalise); a dry run prints it instead. */
struct preview {
    struct policy_final pf;
    json_t *patch;     /* new */
    json_t *payload;   /* new */
    long long next_ms; /* next_action_at = now + next_ms; < 0 clears it */
};

static struct preview
preview_of(const struct ctx *c, const struct store_row *row, const struct item *it,
           const struct smtp_message *m, double jitter01)
{
    struct policy_timing timing = timing_of(c->s);
    struct preview p;
    p.pf = policy_finalise(it->action, it->delivery, &it->facts, &timing, jitter01);
    p.patch = json_pack("{s:s}", "lastRecoveryOutcome", p.pf.outcome);
    if (p.pf.note != NULL)
        json_object_set_new(p.patch, "note", json_string(p.pf.note));
    p.payload = payload_of(c, row, it, &p.pf, m);
    p.next_ms = p.pf.stop ? -1 : p.pf.next_ms;
    return p;
}

/* Finalise the rows that were not released; count and log them. */
static int
finalise(struct ctx *c, const struct store_batch *b, struct item *items,
         const struct smtp_message *msgs, struct err *e)
{
    struct store_final *fin = calloc(b->n, sizeof *fin);
    struct policy_final *pf = calloc(b->n, sizeof *pf);
    bool *done = calloc(b->n, sizeof *done);
    bool *lost = calloc(b->n, sizeof *lost);
    int rc = ERR_OK;
    size_t n = 0;
    if (fin == NULL || pf == NULL || done == NULL || lost == NULL) {
        rc = err_set(e, ERR_INTERNAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < b->n; i++) {
        const struct item *it = &items[i];
        if (it->released)
            continue;
        const struct store_row *row = &b->rows[i];
        const struct smtp_message *m = it->action == POLICY_SEND ? &msgs[it->send_slot] : NULL;
        struct preview p = preview_of(c, row, it, m, jitter(c));
        pf[n] = p.pf;
        fin[n].row = i;
        fin[n].patch = p.patch;
        fin[n].payload = p.payload;
        fin[n].next_ms = p.next_ms;
        n++;
    }
    rc = store_finalise(c->db, c->run_id, b, fin, n, done, lost, e);
    for (size_t k = 0; k < n; k++) {
        const struct item *it = &items[fin[k].row];
        const struct store_row *row = &b->rows[fin[k].row];
        if (rc == ERR_OK && lost[k]) {
            c->sum->lost_leases++;
            log_warn("lease lost to another worker; not finalised",
                     json_pack("{s:s,s:s}", "orchestration_id", row->id, "outcome", pf[k].outcome));
        } else if (rc == ERR_OK && !done[k]) {
            c->sum->superseded++;
            log_info("orchestration changed by the storefront; not finalised",
                     json_pack("{s:s,s:s}", "orchestration_id", row->id, "outcome", pf[k].outcome));
        } else if (rc == ERR_OK) {
            log_row(row, pf[k].outcome, "orchestration finalised");
        }
        /* Deliveries are counted whatever happened to the finalisation: the member got it. */
        if (rc == ERR_OK || it->delivery != POLICY_DELIVERY_NONE)
            count(c->sum, it, &pf[k]);
        json_decref(fin[k].patch);
        json_decref(fin[k].payload);
    }
out:
    free(fin);
    free(pf);
    free(done);
    free(lost);
    return rc;
}

/* Ledger rows a dead worker left 'sending' become 'unknown': the relay may or may not have
 * taken the message, and the default policy does not resend it. */
static int
mark_orphans(struct ctx *c, const struct store_batch *b, const struct item *items, struct err *e)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        if (items[i].action == POLICY_ORPHANED)
            n++;
    if (n == 0)
        return ERR_OK;
    struct store_delivery *d = calloc(n, sizeof *d);
    if (d == NULL)
        return err_set(e, ERR_INTERNAL, "out of memory");
    n = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (items[i].action != POLICY_ORPHANED)
            continue;
        d[n].row = i;
        d[n].status = policy_ledger_name(POLICY_LEDGER_UNKNOWN);
        d[n].text = "worker stopped before the reply was recorded";
        n++;
    }
    int rc = store_ledger_finish(c->db, NULL, b, d, n, e);
    free(d);
    return rc;
}

/* Decides every row, renders the prompts, and writes the 'queued' ledger rows of those the
 * ledger lets through (re-checking that each is still waiting and still ours). */
static int
batch_prepare(struct ctx *c, struct batch *bt, struct err *e)
{
    const struct store_batch *b = &bt->b;
    bt->items = calloc(b->n, sizeof *bt->items);
    if (bt->items == NULL)
        return err_set(e, ERR_INTERNAL, "out of memory");
    failpoint("after_claim");
    int rc = quiet_now(c, e);
    if (rc != ERR_OK)
        return rc;
    decide(c, b, bt->items);
    rc = mark_orphans(c, b, bt->items, e);
    if (rc != ERR_OK)
        return rc;
    for (size_t i = 0; i < b->n; i++)
        if (bt->items[i].action == POLICY_SEND)
            bt->nsend++;
    if (bt->nsend == 0)
        return ERR_OK;
    bt->idx = calloc(bt->nsend, sizeof *bt->idx);
    bt->msgs = calloc(bt->nsend, sizeof *bt->msgs);
    bt->keys = calloc(bt->nsend, sizeof *bt->keys);
    bt->recorded = calloc(bt->nsend, sizeof *bt->recorded);
    char **mids = calloc(bt->nsend, sizeof *mids);
    bool *ok = calloc(bt->nsend, sizeof *ok);
    if (bt->idx == NULL || bt->msgs == NULL || bt->keys == NULL || bt->recorded == NULL ||
        mids == NULL || ok == NULL) {
        rc = err_set(e, ERR_INTERNAL, "out of memory");
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (bt->items[i].action != POLICY_SEND)
            continue;
        bt->idx[k] = i;
        mids[k] = bt->items[i].message_id;
        k++;
    }
    /* the rules the ledger re-checks, from policy */
    struct policy_rules rules = rules_of(c->s);
    struct policy_consent_terms consent = policy_consent_terms(c->s->consent);
    rc = store_ledger_begin(c->db, c->run_id, b, bt->idx, mids, bt->nsend,
                            policy_resend_limit(POLICY_LEDGER_SENDING, rules.on_unknown),
                            policy_resend_limit(POLICY_LEDGER_UNKNOWN, rules.on_unknown), &consent,
                            c->s->member_min_interval_ms, ok, e);
    if (rc != ERR_OK)
        goto out;
    failpoint("after_ledger_begin");
    for (k = 0; k < bt->nsend; k++) {
        struct item *it = &bt->items[bt->idx[k]];
        it->ledger_ok = ok[k];
        if (!ok[k])
            continue;
        if (policy_ledger_in_doubt(it->facts.ledger_status))
            c->sum->resent_in_doubt++;
        bt->keys[bt->nmsgs].id = b->rows[bt->idx[k]].id;
        bt->keys[bt->nmsgs].due_at = b->rows[bt->idx[k]].due_at;
        struct smtp_message *m = &bt->msgs[bt->nmsgs];
        it->send_slot = bt->nmsgs++;
        m->sender = c->s->sender_email;
        m->recipient = b->rows[bt->idx[k]].email;
        m->data = buf_str(&it->message);
        m->len = it->message.len;
        m->outcome = SMTP_NOT_ATTEMPTED;
    }
out:
    free(mids);
    free(ok);
    return rc;
}

/* Records in the ledger the replies the journal did not (refusals of MAIL or RCPT, and all
 * of them when the journal failed), hands back what was never offered, and finalises the
 * rest. Called after batch_wait, or instead of sending when the relay is down. */
static int
batch_complete(struct ctx *c, struct batch *bt, struct err *e)
{
    const struct store_batch *b = &bt->b;
    struct err je;
    err_clear(&je);
    int jrc = bt->nmsgs > 0 ? journal_flush(c->journal, &je) : ERR_OK;
    struct store_delivery *del = calloc(bt->nsend ? bt->nsend : 1, sizeof *del);
    size_t *release = calloc(bt->nsend ? bt->nsend : 1, sizeof *release);
    size_t *keep = calloc(bt->nsend ? bt->nsend : 1, sizeof *keep);
    int rc = ERR_OK;
    if (del == NULL || release == NULL || keep == NULL) {
        rc = err_set(e, ERR_INTERNAL, "out of memory");
        goto out;
    }
    size_t nd = 0, nrel = 0, nkeep = 0;
    for (size_t k = 0; k < bt->nsend; k++) {
        struct item *it = &bt->items[bt->idx[k]];
        it->released = !it->ledger_ok;
        if (!it->ledger_ok) {
            /* changed by the storefront (or taken over) since the claim: hands off */
            keep[nkeep++] = bt->idx[k];
            c->sum->superseded++;
            continue;
        }
        const struct smtp_message *msg = &bt->msgs[it->send_slot];
        if (msg->outcome == SMTP_NOT_ATTEMPTED) {
            it->released = true;
            release[nrel++] = bt->idx[k];
            c->sum->released++;
        }
        if (msg->outcome == SMTP_UNKNOWN) {
            /* In doubt (the data went out, no reply came back): not finalised. Once its lease
             * has run out a sweep resends it with the same Message-ID, or records it, as
             * sweep.on_unknown_delivery says. */
            it->released = true;
            keep[nkeep++] = bt->idx[k];
            c->sum->unknown++;
        }
        it->delivery = delivery_of(msg->outcome);
        /* A message offered again after the journal recorded its earlier turn, and then not
         * sent, still needs its 'released' here. */
        if (bt->recorded[it->send_slot] && msg->outcome != SMTP_NOT_ATTEMPTED)
            continue;
        del[nd].row = bt->idx[k];
        del[nd].status = policy_ledger_name(send_ledger_status(msg->outcome));
        del[nd].code = msg->code;
        del[nd].enhanced = msg->enhanced;
        del[nd].text = msg->text;
        nd++;
    }
    rc = store_ledger_finish(c->db, c->run_id, b, del, nd, e);
    failpoint("after_ledger_finish");
    if (rc == ERR_OK && nrel > 0)
        rc = store_release(c->db, c->run_id, b, release, nrel, true, e);
    if (rc == ERR_OK && nkeep > 0)
        rc = store_release(c->db, c->run_id, b, keep, nkeep, false, e);
    if (rc == ERR_OK)
        rc = finalise(c, b, bt->items, bt->msgs, e);
    failpoint("after_finalise");
    if (rc == ERR_OK && jrc != ERR_OK) {
        /* what the journal could not write is recorded above; the sweep still stops */
        *e = je;
        rc = jrc;
    }
out:
    free(del);
    free(release);
    free(keep);
    return rc;
}

/* Claims and prepares the next batch. Returns NULL (and rc ERR_OK) when nothing is due. */
static struct batch *
batch_next(struct ctx *c, int limit, int *rc, struct err *e)
{
    struct batch *bt = calloc(1, sizeof *bt);
    if (bt == NULL) {
        *rc = err_set(e, ERR_INTERNAL, "out of memory");
        return NULL;
    }
    *rc = store_claim(c->db, c->run_id, limit, c->s->lease_ms, c->opt->order_id, &bt->b, e);
    if (*rc != ERR_OK || bt->b.n == 0) {
        batch_free(bt);
        return NULL;
    }
    c->sum->batches++;
    c->sum->processed += (long)bt->b.n;
    log_debug("batch claimed", json_pack("{s:I}", "rows", (json_int_t)bt->b.n));
    *rc = batch_prepare(c, bt, e);
    if (*rc != ERR_OK) {
        /* a database failure: the rows stay leased until their lease runs out */
        batch_free(bt);
        return NULL;
    }
    return bt;
}

/* A preview the operator asked for and did not get is a failed dry run, not a warning: the
 * directory was made and checked before the sweep (cmd_sweep), so what fails here is the
 * file system itself (full, gone). */
static int
dry_run_write(const struct ctx *c, const struct store_row *row, const struct item *it,
              struct err *e)
{
    if (c->opt->dry_run_dir == NULL || it->action != POLICY_SEND)
        return ERR_OK;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s.eml", c->opt->dry_run_dir, row->id) >=
        sizeof path)
        return err_set(e, ERR_USAGE, "--dry-run-dir: path too long");
    FILE *f = fopen(path, "wb");
    bool ok = f != NULL && fwrite(buf_str(&it->message), 1, it->message.len, f) == it->message.len;
    int saved = errno;
    if (f != NULL && fclose(f) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (!ok)
        return err_set(e, ERR_INTERNAL, "cannot write dry-run message %s: %s", path,
                       strerror(saved));
    return ERR_OK;
}

/* One line of a dry run: the decision and what finalising the row would write. */
static void
dry_run_print(const struct ctx *c, const struct store_row *row, const struct item *it,
              const struct preview *p)
{
    json_t *line =
        json_pack("{s:b,s:s,s:s?,s:s,s:s,s:s?,s:b}", "dry_run", 1, "orchestration_id", row->id,
                  "order_id", row->order_id, "action", policy_action_name(it->action), "outcome",
                  p->pf.outcome, "note", p->pf.note, "escalate", p->pf.escalate);
    if (it->action == POLICY_SEND) {
        json_object_set_new(line, "message_id", json_string(it->message_id));
        json_object_set_new(line, "message_bytes", json_integer((json_int_t)it->message.len));
    }
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text != NULL)
        fprintf(c->opt->dry_run_out, "%s\n", text);
    free(text);
    json_decref(line);
}

/* A peeked page through the sweep's own steps: decide (and render), then the preview of
 * finalise, counted as a sweep would count it, with every prompt taken as sent. */
static int
dry_run_batch(struct ctx *c, const struct store_batch *b, struct err *e)
{
    struct item *items = calloc(b->n, sizeof *items);
    if (items == NULL)
        return err_set(e, ERR_INTERNAL, "out of memory");
    decide(c, b, items);
    int rc = ERR_OK;
    for (size_t i = 0; i < b->n; i++) {
        const struct store_row *row = &b->rows[i];
        struct item *it = &items[i];
        it->delivery = POLICY_DELIVERY_SENT; /* what a send would be counted as */
        struct preview p = preview_of(c, row, it, NULL, 0);
        dry_run_print(c, row, it, &p);
        if (rc == ERR_OK)
            rc = dry_run_write(c, row, it, e);
        count(c->sum, it, &p.pf);
        c->sum->processed++;
        json_decref(p.patch);
        json_decref(p.payload);
        buf_free(&it->message);
    }
    free(items);
    return rc;
}

/* Pages through the due set as a sweep would claim it, without claiming. */
static int
dry_run(struct ctx *c, struct err *e)
{
    struct store_batch b = {0};
    struct store_row *last = NULL;
    struct store_row cursor = {0};
    long remaining = c->opt->limit > 0 ? c->opt->limit : -1;
    int rc = ERR_OK;
    for (;;) {
        int lim = c->s->batch_size;
        if (remaining >= 0 && remaining < lim)
            lim = (int)remaining;
        if (lim <= 0)
            break;
        rc = store_peek(c->db, lim, c->opt->order_id, last, &b, e);
        if (rc != ERR_OK || b.n == 0)
            break;
        rc = dry_run_batch(c, &b, e);
        if (rc != ERR_OK || c->opt->order_id != NULL)
            break;
        /* keep the last row as the cursor of the next page */
        free(cursor.id);
        free(cursor.due_at);
        cursor.id = strdup(b.rows[b.n - 1].id);
        cursor.due_at = strdup(b.rows[b.n - 1].due_at);
        last = &cursor;
        if (remaining >= 0)
            remaining -= (long)b.n;
        store_batch_free(&b);
    }
    store_batch_free(&b);
    free(cursor.id);
    free(cursor.due_at);
    return rc;
}

/* Recording and finalising a batch on the second connection, on a thread of its own, so
 * PostgreSQL works on two batches at once. Counters go to the completion's own summary and
 * are added to the sweep's when it is joined. */
struct completion {
    struct ctx c;
    struct sweep_summary sum;
    struct batch *bt;
    pthread_t tid;
    bool threaded;
    int rc;
    struct err e;
};

static void *
completion_run(void *arg)
{
    struct completion *cp = arg;
    cp->rc = batch_complete(&cp->c, cp->bt, &cp->e);
    return NULL;
}

static void
completion_start(struct completion *cp, const struct ctx *c, struct db *db2, struct batch *bt)
{
    cp->c = *c;
    memset(&cp->sum, 0, sizeof cp->sum);
    cp->c.sum = &cp->sum;
    cp->c.seed = c->seed ^ (unsigned int)(uintptr_t)bt;
    cp->bt = bt;
    cp->rc = ERR_OK;
    err_clear(&cp->e);
    cp->threaded = false;
    if (db2 != NULL) {
        cp->c.db = db2;
        cp->threaded = pthread_create(&cp->tid, NULL, completion_run, cp) == 0;
        if (cp->threaded)
            return;
        cp->c.db = c->db;
    }
    completion_run(cp); /* one connection, or no thread: do it here and now */
}

void
sweep_summary_add(struct sweep_summary *to, const struct sweep_summary *from)
{
#define ADD(field, key, label) to->field += from->field;
    SWEEP_OUTCOMES(ADD)
#undef ADD
}

/* Waits for the completion in progress (if any), adds its counters, keeps the first error. */
static void
completion_join(struct completion *cp, struct sweep_summary *sum, int *rc, struct err *e)
{
    if (cp->bt == NULL)
        return;
    if (cp->threaded)
        pthread_join(cp->tid, NULL);
    sweep_summary_add(sum, &cp->sum);
    if (cp->rc != ERR_OK && *rc == ERR_OK) {
        *rc = cp->rc;
        *e = cp->e;
    }
    batch_free(cp->bt);
    cp->bt = NULL;
}

/* One line, redrawn in place: only ever called when stderr is a terminal. */
static void
draw_progress(long done, long due, long long elapsed_ms)
{
    double rate = elapsed_ms > 0 ? (double)done * 1000.0 / (double)elapsed_ms : 0;
    long left = due > done ? due - done : 0;
    if (rate > 0)
        fprintf(stderr, "\r\033[Kswept %ld/%ld  %.0f/s  ETA %.0fs", done, due, rate,
                (double)left / rate);
    else
        fprintf(stderr, "\r\033[Kswept %ld/%ld", done, due);
    fflush(stderr);
}

int
sweep_run(struct db *db, struct db *journal, struct db *db2, const struct settings *s,
          const struct prompt_templates *t, const char *run_id, const struct sweep_options *opt,
          struct sweep_summary *sum, struct err *e)
{
    long long started = clock_mono_ms();
    memset(sum, 0, sizeof *sum);
    struct ctx c = {
        .db = db,
        .s = s,
        .t = t,
        .run_id = run_id,
        .opt = opt,
        .sum = sum,
        .seed = (unsigned int)time(NULL) ^ ((unsigned int)getpid() << 16),
    };
    c.links = links_new(s, e);
    if (c.links == NULL)
        return e->code;

    int rc = ERR_OK;
    if (opt->dry_run) {
        rc = dry_run(&c, e);
        sum->duration_ms = clock_mono_ms() - started;
        links_free(c.links);
        return rc;
    }
    c.journal = journal_start(journal, run_id, e);
    c.pool = c.journal != NULL ? send_pool_new(s, c.journal, opt->stop, e) : NULL;
    if (c.pool == NULL) {
        journal_stop(c.journal);
        links_free(c.links);
        return e->code;
    }

    long remaining = opt->limit > 0 ? opt->limit : -1;
    long due = 0;
    double oldest = 0;
    /* the progress line is a nicety: without the count it is simply not drawn */
    bool progress =
        opt->progress && opt->order_id == NULL && store_due_stats(db, &due, &oldest, e) == ERR_OK;
    err_clear(e);
    if (remaining >= 0 && due > remaining)
        due = remaining;
    /* Three batches in flight: cur is with the relay, next is claimed and prepared on db,
     * and the one before cur is recorded and finalised on db2 by the completer. */
    struct batch *cur = NULL;
    struct completion done = {0};
    bool more = true;
    int relay_rc = ERR_OK;
    struct err relay_err;
    err_clear(&relay_err);
    for (;;) {
        struct batch *next = NULL;
        if (opt->stop != NULL && *opt->stop && more) {
            log_info("stop requested; no further batches", NULL);
            more = false;
        }
        if (send_pool_halted(c.pool) && more)
            more = false; /* the pool said why */
        int lim = s->batch_size;
        if (remaining >= 0 && remaining < lim)
            lim = (int)remaining;
        if (rc == ERR_OK && relay_rc == ERR_OK && more && lim > 0) {
            next = batch_next(&c, lim, &rc, e);
            if (next == NULL || opt->order_id != NULL)
                more = false;
            if (next != NULL && remaining >= 0)
                remaining -= (long)next->b.n;
        }
        if (cur != NULL) {
            batch_wait(cur);
            if (cur->relay_rc != ERR_OK && relay_rc == ERR_OK) {
                relay_rc = cur->relay_rc;
                relay_err = cur->relay_err;
            }
        }
        /* Once the relay failed, or a stop was asked for, a prepared batch is not sent:
         * completing it releases its messages and finalises the rows that needed no email. */
        bool hold =
            relay_rc != ERR_OK || (opt->stop != NULL && *opt->stop) || send_pool_halted(c.pool);
        if (next != NULL && !hold)
            batch_start(&c, next);
        if (cur != NULL) {
            completion_join(&done, sum, &rc, e);
            if (progress)
                draw_progress(sum->processed, due, clock_mono_ms() - started);
            completion_start(&done, &c, db2, cur);
        }
        cur = next;
        if (cur != NULL && hold) {
            completion_join(&done, sum, &rc, e);
            completion_start(&done, &c, db2, cur);
            cur = NULL;
        }
        if (cur == NULL)
            break;
    }
    completion_join(&done, sum, &rc, e);
    if (rc == ERR_OK && relay_rc != ERR_OK) {
        rc = relay_rc;
        *e = relay_err;
    }
    sum->duration_ms = clock_mono_ms() - started;
    if (progress)
        fputs("\n", stderr);
    struct send_stats st;
    send_pool_stats(c.pool, &st);
    sum->throttle_replies = st.throttle_replies;
    sum->refused_sessions = st.refused_sessions;
    sum->send_rate = st.rate;
    sum->quota_exhausted = st.quota_exhausted;
    send_pool_free(c.pool);
    journal_stop(c.journal);
    links_free(c.links);
    return rc;
}

json_t *
sweep_summary_json(const struct sweep_summary *sum)
{
    json_t *j = json_object();
    json_object_set_new(j, "processed", json_integer((json_int_t)sum->processed));
#define KEY(field, key, label) json_object_set_new(j, key, json_integer((json_int_t)sum->field));
    SWEEP_OUTCOMES(KEY)
#undef KEY
    json_object_set_new(j, "duration_ms", json_integer((json_int_t)sum->duration_ms));
    return j;
}
