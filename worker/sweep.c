/* sweep: the claim → decide → ledger → send → record → finalise loop, batch by batch. */
#include "sweep.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "failpoint.h"
#include "links.h"
#include "log.h"
#include "policy.h"
#include "smtp.h"
#include "store.h"

/* Everything the sweep decided and learned about one claimed row. */
struct item {
    enum policy_action action;
    enum policy_delivery delivery;
    char message_id[160];
    struct buf message;     /* rendered prompt, for rows to send */
    size_t send_slot;       /* index into the batch's smtp messages, when sent */
    bool ledger_ok;         /* the ledger let us send this occurrence */
    bool released;          /* handed back unfinished */
};

struct ctx {
    struct db *db;
    const struct settings *s;
    const struct prompt_templates *t;
    const char *run_id;
    const struct sweep_options *opt;
    struct sweep_summary *sum;
    struct smtp_config smtp;
    struct links *links;    /* signs resume and unsubscribe links; read-only while sending */
    unsigned int seed;
};

static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
sweep_new_run_id(char out[17])
{
    unsigned char raw[8];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        /* The kernel's source should never fail; fall back to time and pid. */
        unsigned long long v = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
        memcpy(raw, &v, sizeof raw);
    }
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static const char *
sender_domain(const char *sender)
{
    const char *at = sender != NULL ? strrchr(sender, '@') : NULL;
    return at != NULL && at[1] != '\0' ? at + 1 : "localhost";
}

/* Deterministic per due occurrence, so a resend carries the same id and a duplicate can be
 * recognised by the receiving side as well as in the ledger. */
static void
build_message_id(char *out, size_t n, const struct store_row *row, const char *sender)
{
    snprintf(out, n, "recovery.%s.%s@%s", row->id, row->due_us != NULL ? row->due_us : "0",
             sender_domain(sender));
}


static struct policy_facts
facts_of(const struct store_row *row)
{
    struct policy_facts f = {
        .order_found = row->order_id != NULL,
        .has_user = row->user_id != NULL && row->email != NULL,
        .email_valid = row->email != NULL && smtp_address_valid(row->email),
        .opted_out = row->opted_out,
        .has_member = row->has_member,
        .pending_intents = row->pending_intents,
        .prompts_sent = row->prompts_sent,
        .deferrals = row->deferrals,
        .ledger_status = row->ledger_status,
        .ledger_attempts = row->ledger_attempts,
    };
    return f;
}

static int
render(const struct ctx *c, const struct store_row *row, struct item *it, struct err *e)
{
    struct links_target tg = {row->order_id, row->id, row->stage};
    time_t now = time(NULL);
    struct buf url, unsub;
    buf_init(&url, 2048);
    buf_init(&unsub, 898); /* List-Unsubscribe's limit, less its angle brackets */
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

/* Decide every row; render the prompts of those to send. */
static void
decide(struct ctx *c, const struct store_batch *b, struct item *items)
{
    struct policy_rules rules = {
        .max_prompts = c->s->max_prompts,
        .on_unknown = c->s->on_unknown_delivery == UNKNOWN_DELIVERY_RESEND
                          ? POLICY_UNKNOWN_RESEND
                          : POLICY_UNKNOWN_SKIP,
    };
    for (size_t i = 0; i < b->n; i++) {
        const struct store_row *row = &b->rows[i];
        struct policy_facts f = facts_of(row);
        struct item *it = &items[i];
        it->action = policy_decide(&f, &rules);
        buf_init(&it->message, 0);
        if (it->action != POLICY_SEND)
            continue;
        build_message_id(it->message_id, sizeof it->message_id, row, c->s->sender_email);
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

struct send_pool {
    const struct smtp_config *cfg;
    struct smtp_message *msgs;
    size_t n;
    size_t chunk;
    size_t next; /* next chunk start, under lock */
    pthread_mutex_t lock;
    int rc;      /* first session error */
    struct err err;
};

static void *
send_worker(void *arg)
{
    struct send_pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        size_t start = p->next;
        bool stop = start >= p->n || p->rc != ERR_OK;
        if (!stop)
            p->next = start + p->chunk;
        pthread_mutex_unlock(&p->lock);
        if (stop)
            return NULL;
        size_t len = p->n - start < p->chunk ? p->n - start : p->chunk;
        struct err e;
        err_clear(&e);
        int rc = smtp_send_batch(p->cfg, p->msgs + start, len, &e);
        if (rc != ERR_OK) {
            pthread_mutex_lock(&p->lock);
            if (p->rc == ERR_OK) {
                p->rc = rc;
                p->err = e;
            }
            pthread_mutex_unlock(&p->lock);
        }
    }
}

/* Sends msgs over up to `concurrency` sessions at once, each carrying up to
 * messages_per_session messages. A session failure stops handing out new chunks; messages
 * never offered stay SMTP_NOT_ATTEMPTED. */
static int
send_all(const struct ctx *c, struct smtp_message *msgs, size_t n, struct err *e)
{
    if (n == 0)
        return ERR_OK;
    struct send_pool p = {.cfg = &c->smtp, .msgs = msgs, .n = n, .rc = ERR_OK};
    size_t sessions = (size_t)c->s->concurrency;
    p.chunk = (n + sessions - 1) / sessions;
    if (p.chunk > (size_t)c->s->smtp_messages_per_session)
        p.chunk = (size_t)c->s->smtp_messages_per_session;
    size_t chunks = (n + p.chunk - 1) / p.chunk;
    size_t threads = chunks < sessions ? chunks : sessions;
    pthread_mutex_init(&p.lock, NULL);
    err_clear(&p.err);
    pthread_t tid[64];
    size_t started = 0;
    if (threads <= 1) {
        send_worker(&p);
    } else {
        for (; started < threads && started < 64; started++)
            if (pthread_create(&tid[started], NULL, send_worker, &p) != 0)
                break;
        if (started == 0)
            send_worker(&p);
        for (size_t i = 0; i < started; i++)
            pthread_join(tid[i], NULL);
    }
    pthread_mutex_destroy(&p.lock);
    if (p.rc != ERR_OK && e != NULL)
        *e = p.err;
    return p.rc;
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

/* The ledger's word for an outcome: a message never offered is handed back, "released". */
static const char *
ledger_status_of(enum smtp_outcome o)
{
    return o == SMTP_NOT_ATTEMPTED ? "released" : smtp_outcome_name(o);
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
    case POLICY_ORPHANED:
        sum->unknown++;
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
    json_t *p = json_pack("{s:s,s:s,s:s,s:I}", "outcome", f->outcome, "runId", c->run_id,
                          "stage", row->stage, "intentCount", (json_int_t)row->pending_intents);
    if (it->action == POLICY_SEND || it->action == POLICY_ALREADY_SENT ||
        it->action == POLICY_ORPHANED) {
        char mid[160];
        build_message_id(mid, sizeof mid, row, c->s->sender_email);
        json_object_set_new(p, "messageId", json_string(mid));
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
        json_object_set_new(p, "consentBasis", json_string("order_updates"));
    return p;
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

/* Finalise the rows that were not released; count and log them. */
static int
finalise(struct ctx *c, const struct store_batch *b, struct item *items,
         const struct smtp_message *msgs, struct err *e)
{
    struct policy_timing timing = {
        .retry_interval_ms = c->s->retry_interval_ms,
        .backoff_base_ms = c->s->backoff_base_ms,
        .backoff_max_ms = c->s->backoff_max_ms,
    };
    struct store_final *fin = calloc(b->n, sizeof *fin);
    struct policy_final *pf = calloc(b->n, sizeof *pf);
    size_t *of = calloc(b->n, sizeof *of);
    bool *done = calloc(b->n, sizeof *done);
    bool *lost = calloc(b->n, sizeof *lost);
    int rc = ERR_OK;
    size_t n = 0;
    if (fin == NULL || pf == NULL || of == NULL || done == NULL || lost == NULL) {
        rc = err_set(e, ERR_INTERNAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < b->n; i++) {
        const struct item *it = &items[i];
        if (it->released)
            continue;
        const struct store_row *row = &b->rows[i];
        const struct smtp_message *m = it->action == POLICY_SEND ? &msgs[it->send_slot] : NULL;
        struct policy_facts f = facts_of(row);
        pf[n] = policy_finalise(it->action, it->delivery, &f, &timing, jitter(c));
        json_t *patch = json_pack("{s:s}", "lastRecoveryOutcome", pf[n].outcome);
        if (pf[n].note != NULL)
            json_object_set_new(patch, "note", json_string(pf[n].note));
        fin[n].row = i;
        fin[n].patch = patch;
        fin[n].payload = payload_of(c, row, it, &pf[n], m);
        fin[n].next_ms = pf[n].stop ? -1 : pf[n].next_ms;
        of[n] = i;
        n++;
    }
    rc = store_finalise(c->db, c->run_id, b, fin, n, done, lost, e);
    for (size_t k = 0; k < n; k++) {
        const struct item *it = &items[of[k]];
        const struct store_row *row = &b->rows[of[k]];
        if (rc == ERR_OK && lost[k]) {
            c->sum->lost_leases++;
            log_warn("lease lost to another worker; not finalised",
                     json_pack("{s:s,s:s}", "orchestration_id", row->id, "outcome",
                               pf[k].outcome));
        } else if (rc == ERR_OK && !done[k]) {
            c->sum->superseded++;
            log_info("orchestration changed by the storefront; not finalised",
                     json_pack("{s:s,s:s}", "orchestration_id", row->id, "outcome",
                               pf[k].outcome));
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
    free(of);
    free(done);
    free(lost);
    return rc;
}

/* Ledger, send, record. Returns the database's verdict; the relay's goes to relay_rc and
 * relay_err, after every reply has been recorded. */
static int
deliver(struct ctx *c, const struct store_batch *b, struct item *items,
        struct smtp_message **msgs_out, int *relay_rc, struct err *relay_err, struct err *e)
{
    *relay_rc = ERR_OK;
    size_t nsend = 0;
    for (size_t i = 0; i < b->n; i++)
        if (items[i].action == POLICY_SEND)
            nsend++;
    *msgs_out = NULL;
    if (nsend == 0)
        return ERR_OK;

    size_t *idx = calloc(nsend, sizeof *idx);
    char **mids = calloc(nsend, sizeof *mids);
    bool *ok = calloc(nsend, sizeof *ok);
    struct smtp_message *msgs = calloc(nsend, sizeof *msgs);
    struct store_delivery *del = calloc(nsend, sizeof *del);
    size_t *release = calloc(nsend, sizeof *release);
    int rc = ERR_OK;
    if (idx == NULL || mids == NULL || ok == NULL || msgs == NULL || del == NULL ||
        release == NULL) {
        rc = err_set(e, ERR_INTERNAL, "out of memory");
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (items[i].action != POLICY_SEND)
            continue;
        idx[k] = i;
        mids[k] = items[i].message_id;
        items[i].send_slot = k;
        k++;
    }
    rc = store_ledger_begin(c->db, c->run_id, b, idx, mids, nsend,
                            c->s->on_unknown_delivery == UNKNOWN_DELIVERY_RESEND, ok, e);
    if (rc != ERR_OK)
        goto out;
    failpoint("after_ledger_begin");

    /* Only rows the ledger let through are offered to the relay, in batch order. */
    size_t m = 0;
    for (k = 0; k < nsend; k++) {
        struct item *it = &items[idx[k]];
        it->ledger_ok = ok[k];
        if (!ok[k])
            continue;
        it->send_slot = m;
        msgs[m].sender = c->s->sender_email;
        msgs[m].recipient = b->rows[idx[k]].email;
        msgs[m].data = buf_str(&it->message);
        msgs[m].len = it->message.len;
        msgs[m].outcome = SMTP_NOT_ATTEMPTED;
        m++;
    }
    int send_rc = send_all(c, msgs, m, relay_err);
    failpoint("after_send");

    size_t nd = 0, nrel = 0;
    for (k = 0; k < nsend; k++) {
        struct item *it = &items[idx[k]];
        if (!it->ledger_ok) {
            /* changed by the storefront (or taken over) since the claim: hands off */
            it->released = true;
            release[nrel++] = idx[k];
            c->sum->superseded++;
            continue;
        }
        const struct smtp_message *msg = &msgs[it->send_slot];
        if (msg->outcome == SMTP_NOT_ATTEMPTED) {
            it->released = true;
            release[nrel++] = idx[k];
        }
        it->delivery = delivery_of(msg->outcome);
        del[nd].row = idx[k];
        del[nd].status = ledger_status_of(msg->outcome);
        del[nd].code = msg->code;
        del[nd].enhanced = msg->enhanced;
        del[nd].text = msg->text;
        nd++;
    }
    rc = store_ledger_finish(c->db, b, del, nd, e);
    failpoint("after_ledger_finish");
    if (rc == ERR_OK && nrel > 0) {
        rc = store_release(c->db, c->run_id, b, release, nrel, e);
        for (k = 0; k < nsend; k++)
            if (items[idx[k]].ledger_ok && items[idx[k]].released)
                c->sum->released++;
    }
    *relay_rc = send_rc;
out:
    free(idx);
    free(mids);
    free(ok);
    free(del);
    free(release);
    *msgs_out = msgs;
    return rc;
}

/* Ledger rows a dead worker left 'sending' become 'unknown': the relay may or may not have
 * taken the message, and the default policy does not resend it. */
static int
mark_orphans(struct ctx *c, const struct store_batch *b, const struct item *items,
             struct err *e)
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
        d[n].status = "unknown";
        d[n].text = "worker stopped before the reply was recorded";
        n++;
    }
    int rc = store_ledger_finish(c->db, b, d, n, e);
    free(d);
    return rc;
}

static int
run_batch(struct ctx *c, const struct store_batch *b, struct err *e)
{
    struct item *items = calloc(b->n, sizeof *items);
    if (items == NULL)
        return err_set(e, ERR_INTERNAL, "out of memory");
    failpoint("after_claim");
    decide(c, b, items);
    struct smtp_message *msgs = NULL;
    int relay_rc = ERR_OK;
    struct err relay_err;
    err_clear(&relay_err);
    /* A relay failure still finalises what is known; after a database failure the rows are
     * left to their lease, and 'sending' ledger rows tell the next sweep what happened. */
    int rc = mark_orphans(c, b, items, e);
    if (rc == ERR_OK)
        rc = deliver(c, b, items, &msgs, &relay_rc, &relay_err, e);
    if (rc == ERR_OK)
        rc = finalise(c, b, items, msgs, e);
    failpoint("after_finalise");
    if (rc == ERR_OK && relay_rc != ERR_OK) {
        rc = relay_rc;
        *e = relay_err;
    }
    for (size_t i = 0; i < b->n; i++)
        buf_free(&items[i].message);
    free(items);
    free(msgs);
    return rc;
}

static void
dry_run_write(const struct ctx *c, const struct store_row *row, const struct item *it)
{
    if (c->opt->dry_run_dir == NULL || it->action != POLICY_SEND)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.eml", c->opt->dry_run_dir, row->id);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        log_warn("cannot write dry-run message",
                 json_pack("{s:s,s:s}", "path", path, "error", strerror(errno)));
        return;
    }
    fwrite(buf_str(&it->message), 1, it->message.len, f);
    fclose(f);
}

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
        struct item *items = calloc(b.n, sizeof *items);
        if (items == NULL) {
            rc = err_set(e, ERR_INTERNAL, "out of memory");
            break;
        }
        decide(c, &b, items);
        for (size_t i = 0; i < b.n; i++) {
            const struct store_row *row = &b.rows[i];
            struct item *it = &items[i];
            it->delivery = POLICY_DELIVERY_SENT; /* what a send would be counted as */
            struct policy_facts f = facts_of(row);
            struct policy_timing timing = {c->s->retry_interval_ms, c->s->backoff_base_ms,
                                           c->s->backoff_max_ms};
            struct policy_final pf = policy_finalise(it->action, it->delivery, &f, &timing, 0);
            json_t *line = json_pack("{s:b,s:s,s:s?,s:s,s:s,s:s?,s:b}", "dry_run", 1,
                                     "orchestration_id", row->id, "order_id", row->order_id,
                                     "action", policy_action_name(it->action), "outcome",
                                     pf.outcome, "note", pf.note, "escalate", pf.escalate);
            if (it->action == POLICY_SEND) {
                json_object_set_new(line, "message_id", json_string(it->message_id));
                json_object_set_new(line, "message_bytes", json_integer((json_int_t)it->message.len));
            }
            char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (text != NULL)
                fprintf(c->opt->dry_run_out, "%s\n", text);
            free(text);
            json_decref(line);
            dry_run_write(c, row, it);
            count(c->sum, it, &pf);
            c->sum->processed++;
            buf_free(&it->message);
        }
        free(items);
        if (c->opt->order_id != NULL)
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

static void
smtp_config_of(const struct settings *s, struct smtp_config *out)
{
    out->host = s->smtp_host;
    out->port = s->smtp_port;
    out->tls = s->smtp_tls;
    out->ca_file = s->smtp_ca_file;
    out->username = s->smtp_username;
    out->password = s->smtp_password;
    out->helo_name = s->smtp_helo_name;
    out->timeout_ms = (int)s->smtp_timeout_ms;
    out->connect_timeout_ms = (int)s->smtp_connect_timeout_ms;
}

int
sweep_run(struct db *db, const struct settings *s, const struct prompt_templates *t,
          const char *run_id, const struct sweep_options *opt, struct sweep_summary *sum,
          struct err *e)
{
    long long started = now_ms();
    memset(sum, 0, sizeof *sum);
    struct ctx c = {
        .db = db, .s = s, .t = t, .run_id = run_id, .opt = opt, .sum = sum,
        .seed = (unsigned int)(time(NULL) ^ (getpid() << 16)),
    };
    smtp_config_of(s, &c.smtp);
    c.links = links_new(s, e);
    if (c.links == NULL)
        return e->code;

    int rc = ERR_OK;
    if (opt->dry_run) {
        rc = dry_run(&c, e);
        sum->duration_ms = now_ms() - started;
        links_free(c.links);
        return rc;
    }

    long remaining = opt->limit > 0 ? opt->limit : -1;
    long due = 0;
    double oldest = 0;
    /* the progress line is a nicety: without the count it is simply not drawn */
    bool progress = opt->progress && opt->order_id == NULL &&
                    store_due_stats(db, &due, &oldest, e) == ERR_OK;
    err_clear(e);
    if (remaining >= 0 && due > remaining)
        due = remaining;
    while (rc == ERR_OK) {
        if (opt->stop != NULL && *opt->stop) {
            log_info("stop requested; no further batches", NULL);
            break;
        }
        int lim = s->batch_size;
        if (remaining >= 0 && remaining < lim)
            lim = (int)remaining;
        if (lim <= 0)
            break;
        struct store_batch b = {0};
        rc = store_claim(db, run_id, lim, s->lease_ms, opt->order_id, &b, e);
        if (rc == ERR_OK && b.n > 0) {
            sum->batches++;
            sum->processed += (long)b.n;
            log_debug("batch claimed", json_pack("{s:I}", "rows", (json_int_t)b.n));
            rc = run_batch(&c, &b, e);
        }
        size_t got = b.n;
        store_batch_free(&b);
        if (progress && got > 0)
            draw_progress(sum->processed, due, now_ms() - started);
        if (got == 0 || opt->order_id != NULL)
            break;
        if (remaining >= 0)
            remaining -= (long)got;
    }
    sum->duration_ms = now_ms() - started;
    if (progress)
        fputs("\n", stderr);
    links_free(c.links);
    return rc;
}

json_t *
sweep_summary_json(const struct sweep_summary *sum)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
                     "processed", (json_int_t)sum->processed,
                     "nudges_sent", (json_int_t)sum->nudges_sent,
                     "skipped_opt_out", (json_int_t)sum->skipped_opt_out,
                     "no_intents", (json_int_t)sum->no_intents,
                     "escalations", (json_int_t)sum->escalations,
                     "deferred", (json_int_t)sum->deferred,
                     "failed", (json_int_t)sum->failed,
                     "unknown", (json_int_t)sum->unknown,
                     "already_sent", (json_int_t)sum->already_sent,
                     "max_prompts", (json_int_t)sum->max_prompts,
                     "invalid_address", (json_int_t)sum->invalid_address,
                     "released", (json_int_t)sum->released,
                     "lost_leases", (json_int_t)sum->lost_leases,
                     "superseded", (json_int_t)sum->superseded,
                     "duration_ms", (json_int_t)sum->duration_ms);
}
