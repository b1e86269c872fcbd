/* send: the session pool and its per-message hooks. */
#include "send.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "failpoint.h"
#include "log.h"
#include "pace.h"

void
send_smtp_config(const struct settings *s, struct smtp_config *out)
{
    memset(out, 0, sizeof *out);
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

enum policy_ledger
send_ledger_status(enum smtp_outcome o)
{
    switch (o) {
    case SMTP_NOT_ATTEMPTED:
        return POLICY_LEDGER_RELEASED;
    case SMTP_SENT:
        return POLICY_LEDGER_SENT;
    case SMTP_DEFERRED:
        return POLICY_LEDGER_DEFERRED;
    case SMTP_FAILED:
        return POLICY_LEDGER_FAILED;
    case SMTP_UNKNOWN:
        return POLICY_LEDGER_UNKNOWN;
    }
    return POLICY_LEDGER_UNKNOWN;
}

/* A relay that refuses this many sessions in a row that were ours alone, and never let one
 * in, is refusing us rather than capping us: the sweep ends with exit 69. */
#define REFUSALS_MAX 3

/* The furthest ahead a send slot may be booked: smtp.throttle_budget, and at least this. */
#define PACE_HORIZON_MIN_MS 60000

struct send_pool {
    struct smtp_config cfg;
    struct journal *journal;
    volatile sig_atomic_t *stop;
    struct pace *pace;
    atomic_bool halt;            /* send nothing more this sweep (quota, budget, stop) */
    atomic_bool quota;           /* the relay's daily quota ran out */
    atomic_llong first_throttle; /* when the relay first throttled (monotonic ms), 0: never */
    long long budget_ms;         /* smtp.throttle_budget */
    int refusals;                /* lone sessions refused in a row (under the job's lock) */
    bool admitted;               /* a session got in this sweep (under the job's lock) */
    size_t sessions;             /* sweep.concurrency */
    size_t per_session;          /* smtp.messages_per_session */
    long long grace_ms;          /* sweep.shutdown_grace */
};

struct send_pool *
send_pool_new(const struct settings *s, struct journal *j, volatile sig_atomic_t *stop,
              struct err *e)
{
    struct send_pool *p = calloc(1, sizeof *p);
    if (p == NULL) {
        err_set(e, ERR_INTERNAL, "out of memory");
        return NULL;
    }
    send_smtp_config(s, &p->cfg);
    p->journal = j;
    p->stop = stop;
    p->sessions = s->concurrency > 0 ? (size_t)s->concurrency : 1;
    p->per_session = s->smtp_messages_per_session > 0 ? (size_t)s->smtp_messages_per_session : 1;
    p->grace_ms = s->shutdown_grace_ms;
    p->budget_ms = s->smtp_throttle_budget_ms;
    atomic_init(&p->halt, false);
    atomic_init(&p->quota, false);
    atomic_init(&p->first_throttle, 0);
    p->pace = pace_new(s->smtp_max_rate, (int)p->sessions, NULL);
    if (p->pace == NULL) {
        free(p);
        err_set(e, ERR_INTERNAL, "out of memory");
        return NULL;
    }
    return p;
}

void
send_pool_free(struct send_pool *p)
{
    if (p == NULL)
        return;
    pace_free(p->pace);
    free(p);
}

bool
send_pool_halted(const struct send_pool *p)
{
    return atomic_load(&p->halt);
}

void
send_pool_stats(const struct send_pool *p, struct send_stats *out)
{
    struct pace_stats ps;
    pace_get_stats(p->pace, &ps);
    out->throttle_replies = (long)ps.throttles;
    out->refused_sessions = (long)ps.refused_sessions;
    out->rate = ps.rate;
    out->quota_exhausted = atomic_load(&p->quota);
}

static bool
stopping(const struct send_pool *p)
{
    return atomic_load(&p->halt) || (p->stop != NULL && *p->stop);
}

/* Stops all sending for the rest of the sweep (the rows stay due), saying why once. */
static void
halt(struct send_pool *p, const char *why, const struct smtp_message *m)
{
    if (atomic_exchange(&p->halt, true))
        return;
    log_warn(why, m != NULL ? json_pack("{s:i,s:s,s:s}", "smtp_code", m->code, "smtp_enhanced",
                                        m->enhanced, "smtp_text", m->text)
                            : NULL);
}

/* Throttled messages are retried within the sweep for smtp.throttle_budget from the relay's
 * first throttling reply; after that the sweep stops sending and leaves them due. */
static bool
within_budget(struct send_pool *p)
{
    long long first = atomic_load(&p->first_throttle);
    if (first == 0 || clock_mono_ms() - first < p->budget_ms)
        return true;
    halt(p, "the relay kept throttling for smtp.throttle_budget; the rest stays due", NULL);
    return false;
}

struct send_job {
    struct send_pool *pool;
    struct smtp_message *msgs;
    const struct send_key *keys;
    bool *recorded;
    struct journal_mark *marks; /* each message's 'sending' mark, posted ahead of its data */
    bool *keep_back;            /* the journal would not mark it: never offer it again */
    size_t n;
    size_t chunk;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* the queue, the sessions or the threads changed */
    size_t *queue;          /* ring of message indices waiting for a session */
    size_t qhead, qlen;
    size_t active;       /* sessions open */
    size_t unproven;     /* of them, not yet let in by the relay */
    size_t taken;        /* messages with a session now */
    size_t running;      /* threads not yet finished */
    long long resume_at; /* after a refused session, no new one starts before this */
    pthread_t *tid;
    size_t nthreads;
    int relay_rc; /* first session failure */
    struct err relay_err;
};

/* One session's view: its messages are job->msgs[idx[i]], sent from local[i]. */
struct session_arg {
    struct send_job *job;
    const size_t *idx;
    struct smtp_message *local;
    bool admitted; /* the relay took a command of a transaction (under the job's lock) */
};

/* The relay let this session in: the next one may start (see session_thread). */
static void
admitted(struct session_arg *sa)
{
    struct send_job *job = sa->job;
    pthread_mutex_lock(&job->lock);
    if (!sa->admitted) {
        sa->admitted = true;
        job->unproven--;
        pthread_cond_broadcast(&job->changed);
    }
    pthread_mutex_unlock(&job->lock);
}

/* Posts message k's 'sending' mark, so that the write is under way while the session's
 * MAIL and RCPT are. */
static void
premark(struct send_job *job, size_t k)
{
    if (job->marks[k].seq == 0 && !stopping(job->pool))
        journal_mark(job->pool->journal, job->keys[k].id, job->keys[k].due_at, &job->marks[k]);
}

/* Before a message's MAIL FROM: nothing once the sweep stops sending, and a slot under the
 * relay's pace (so that refused attempts are paced too); then its 'sending' mark is posted,
 * to be written while MAIL and RCPT are on their way. */
static bool
before_mail(void *arg, size_t i)
{
    struct session_arg *sa = arg;
    struct send_job *job = sa->job;
    struct send_pool *p = job->pool;
    if (stopping(p))
        return false;
    long long horizon = p->budget_ms > PACE_HORIZON_MIN_MS ? p->budget_ms : PACE_HORIZON_MIN_MS;
    if (!pace_acquire(p->pace, clock_mono_ms() + horizon, &p->halt)) {
        /* the slot would come later than the budget allows: what is left stays due */
        halt(p,
             "the relay's pace leaves no slot within smtp.throttle_budget; the rest stays "
             "due",
             NULL);
        return false;
    }
    /* Not before the relay let the session in: a refused session would leave the mark of a
     * message that never went near the wire. */
    if (sa->admitted)
        premark(job, sa->idx[i]);
    return true;
}

/* The last step before a message's data goes out: nothing once the sweep stops sending, and
 * nothing the journal has not durably marked 'sending'. The mark's write also carries the
 * reply to the session's previous message, posted before it. */
static bool
before_data(void *arg, size_t i)
{
    struct session_arg *sa = arg;
    struct send_job *job = sa->job;
    size_t k = sa->idx[i];
    admitted(sa);
    if (stopping(job->pool))
        return false;
    premark(job, k);
    if (!journal_wait(job->pool->journal, &job->marks[k])) {
        /* not ours any more (its lease was lost), or the database failed: either way it is
         * not offered again, and without the journal nothing more goes out */
        job->keep_back[k] = true;
        if (journal_failed(job->pool->journal))
            halt(job->pool, "the delivery journal failed; nothing more is sent", NULL);
        return false;
    }
    failpoint("before_data");
    return true;
}

static bool
relay_limit(enum smtp_reply_kind kind)
{
    return kind == SMTP_KIND_THROTTLE || kind == SMTP_KIND_QUOTA;
}

/* The ledger's word for what a session brought back: a message refused for the relay's
 * limits, not its own, is handed back as never offered. */
static enum policy_ledger
ledger_status(const struct smtp_message *m)
{
    if (m->outcome == SMTP_DEFERRED && relay_limit(m->kind))
        return POLICY_LEDGER_RELEASED;
    return send_ledger_status(m->outcome);
}

/* Each reply as it comes: to the journal, and to the pace (accepted, or throttled). */
static void
after_reply(void *arg, size_t i)
{
    struct session_arg *sa = arg;
    struct send_job *job = sa->job;
    struct send_pool *p = job->pool;
    size_t k = sa->idx[i];
    const struct smtp_message *m = &sa->local[i];
    admitted(sa);
    journal_outcome(p->journal, job->keys[k].id, job->keys[k].due_at,
                    policy_ledger_name(ledger_status(m)), m->code, m->enhanced, m->text,
                    &job->recorded[k]);
    if (m->outcome == SMTP_SENT) {
        pace_accepted(p->pace);
    } else if (m->kind == SMTP_KIND_THROTTLE) {
        long long zero = 0;
        atomic_compare_exchange_strong(&p->first_throttle, &zero, clock_mono_ms());
        pace_throttled(p->pace);
    } else if (m->kind == SMTP_KIND_QUOTA) {
        atomic_store(&p->quota, true);
        halt(p, "the relay's daily quota is exhausted; nothing more is sent this sweep", m);
    }
    failpoint("after_reply");
}

/* Whether a message the session brought back goes to another session: one never offered
 * (or refused for the relay's limits, made so above), while the sweep still sends. */
static bool
again(struct send_job *job, size_t k)
{
    struct send_pool *p = job->pool;
    return job->msgs[k].outcome == SMTP_NOT_ATTEMPTED && !job->keep_back[k] && !stopping(p) &&
           within_budget(p);
}

/* Under the job's lock: what a session brought back. */
static void
session_done(struct send_job *job, const size_t *idx, size_t len, bool alone, int rc,
             const struct smtp_session_report *rep, const struct err *e)
{
    struct send_pool *p = job->pool;
    job->active--;
    job->taken -= len;
    if (rc == ERR_OK && !rep->refused) {
        p->refusals = 0;
        p->admitted = true;
    }
    if (rc == ERR_OK && rep->refused) {
        /* refusals spend the throttle budget too, so a relay that stops letting us in ends
         * the sending, not the sweep's patience */
        long long zero = 0;
        atomic_compare_exchange_strong(&p->first_throttle, &zero, clock_mono_ms());
        if (alone)
            p->refusals++;
        if (job->active == 0 && !p->admitted && p->refusals >= REFUSALS_MAX) {
            /* it keeps refusing a single session and never let one in: the relay is
             * refusing us, not capping us */
            rc = ERR_UNAVAILABLE;
            struct err re;
            err_set(&re, ERR_UNAVAILABLE, "%s:%d refused the session: %d %s", p->cfg.host,
                    p->cfg.port, rep->code, rep->text);
            if (job->relay_rc == ERR_OK) {
                job->relay_rc = rc;
                job->relay_err = re;
            }
        } else {
            /* the relay caps connections below our session count: go on with fewer (a
             * burst of sessions may all be refused at once: then one, after a pause) */
            pace_session_refused(p->pace, (int)job->active);
            job->resume_at = clock_mono_ms() + (100LL << (p->refusals < 5 ? p->refusals : 5));
            log_info("relay refused a session; going on with fewer",
                     json_pack("{s:i,s:i,s:s}", "sessions", (int)job->active, "smtp_code",
                               rep->code, "smtp_text", rep->text));
        }
    } else if (rc != ERR_OK && job->relay_rc == ERR_OK) {
        job->relay_rc = rc;
        job->relay_err = *e;
    }
    for (size_t i = 0; i < len; i++) {
        size_t k = idx[i];
        struct smtp_message *m = &job->msgs[k];
        if (m->outcome == SMTP_DEFERRED && relay_limit(m->kind))
            m->outcome = SMTP_NOT_ATTEMPTED; /* the relay's limit, not the row's: no backoff */
        if (rc != ERR_OK || job->relay_rc != ERR_OK || !again(job, k))
            continue;
        m->kind = SMTP_KIND_NONE;
        job->marks[k].seq = 0;
        job->queue[(job->qhead + job->qlen) % job->n] = k;
        job->qlen++;
    }
    pthread_cond_broadcast(&job->changed);
}

static void
wait_changed(struct send_job *job, long long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&job->changed, &job->lock, &ts);
}

/* A session thread: takes up to `chunk` waiting messages, sends them over one session, gives
 * back what the relay's limits kept from going out, and again, while there is work, as many
 * sessions at once as the pace allows. */
static void *
session_thread(void *arg)
{
    struct send_job *job = arg;
    struct send_pool *p = job->pool;
    size_t *idx = calloc(job->chunk, sizeof *idx);
    struct smtp_message *local = calloc(job->chunk, sizeof *local);
    pthread_mutex_lock(&job->lock);
    while (idx != NULL && local != NULL && job->relay_rc == ERR_OK && !stopping(p)) {
        if (job->qlen == 0) {
            if (job->taken == 0)
                break; /* nothing waits, and nothing can come back */
            wait_changed(job, 100);
            continue;
        }
        /* Slow start: one session at a time until the relay let the last one in, so a
         * connection cap is met by one refused session, not a burst of them. */
        if (job->active >= (size_t)pace_session_limit(p->pace) || job->unproven > 0) {
            wait_changed(job, 100);
            continue;
        }
        long long now = clock_mono_ms();
        if (now < job->resume_at) {
            wait_changed(job, job->resume_at - now);
            continue;
        }
        size_t len = job->qlen < job->chunk ? job->qlen : job->chunk;
        for (size_t i = 0; i < len; i++) {
            idx[i] = job->queue[job->qhead];
            job->qhead = (job->qhead + 1) % job->n;
        }
        job->qlen -= len;
        bool alone = job->active == 0; /* a refusal of a lone session says more */
        job->active++;
        job->unproven++;
        job->taken += len;
        pthread_mutex_unlock(&job->lock);

        for (size_t i = 0; i < len; i++)
            local[i] = job->msgs[idx[i]];
        struct session_arg sa = {job, idx, local, false};
        struct smtp_hooks hooks = {.before_mail = before_mail,
                                   .before_data = before_data,
                                   .after_reply = after_reply,
                                   .arg = &sa};
        struct smtp_session_report rep;
        struct err e;
        err_clear(&e);
        int rc = smtp_send_batch(&p->cfg, local, len, &hooks, &rep, &e);
        if (rep.quota)
            halt(p, "the relay's daily quota is exhausted; nothing more is sent this sweep", NULL);

        pthread_mutex_lock(&job->lock);
        if (!sa.admitted)
            job->unproven--;
        for (size_t i = 0; i < len; i++)
            job->msgs[idx[i]] = local[i];
        session_done(job, idx, len, alone, rc, &rep, &e);
    }
    job->running--;
    pthread_cond_broadcast(&job->changed);
    pthread_mutex_unlock(&job->lock);
    free(idx);
    free(local);
    return NULL;
}

/* Chunks of at most messages_per_session, as many as there are sessions or a multiple of
 * it, so that no session is left carrying a last chunk alone. */
struct send_job *
send_start(struct send_pool *p, struct smtp_message *msgs, const struct send_key *keys,
           bool *recorded, size_t n)
{
    struct send_job *job = calloc(1, sizeof *job);
    size_t sessions = p->sessions < n ? p->sessions : n;
    if (sessions == 0)
        sessions = 1;
    pthread_t *tid = calloc(sessions, sizeof *tid);
    struct journal_mark *marks = calloc(n ? n : 1, sizeof *marks);
    size_t *queue = calloc(n ? n : 1, sizeof *queue);
    bool *keep_back = calloc(n ? n : 1, sizeof *keep_back);
    if (job == NULL || tid == NULL || marks == NULL || queue == NULL || keep_back == NULL) {
        free(job);
        free(tid);
        free(marks);
        free(queue);
        free(keep_back);
        return NULL;
    }
    job->keep_back = keep_back;
    job->pool = p;
    job->msgs = msgs;
    job->keys = keys;
    job->recorded = recorded;
    job->marks = marks;
    job->queue = queue;
    job->n = n;
    job->tid = tid;
    job->relay_rc = ERR_OK;
    err_clear(&job->relay_err);
    for (size_t i = 0; i < n; i++) {
        recorded[i] = false;
        queue[i] = i;
    }
    job->qlen = n;
    size_t rounds = n == 0 ? 1 : (n + sessions * p->per_session - 1) / (sessions * p->per_session);
    size_t chunks = sessions * rounds;
    job->chunk = n == 0 ? 1 : (n + chunks - 1) / chunks;
    pthread_mutex_init(&job->lock, NULL);
    pthread_cond_init(&job->changed, NULL);
    if (n == 0)
        return job;
    job->running = sessions;
    for (job->nthreads = 0; job->nthreads < sessions; job->nthreads++)
        if (pthread_create(&job->tid[job->nthreads], NULL, session_thread, job) != 0)
            break;
    pthread_mutex_lock(&job->lock);
    job->running -= sessions - job->nthreads; /* the threads that did not start */
    if (job->nthreads == 0)
        job->running = 1; /* no thread could start: send on this one */
    pthread_mutex_unlock(&job->lock);
    if (job->nthreads == 0)
        session_thread(job);
    return job;
}

int
send_finish(struct send_job *job, struct err *e)
{
    if (job == NULL)
        return ERR_OK;
    struct send_pool *p = job->pool;
    long long stop_seen = -1;
    bool interrupted = false;
    pthread_mutex_lock(&job->lock);
    while (job->running > 0) {
        /* Wake now and then to notice a stop; once seen, the sessions have the grace to end
         * the messages on the wire, then they are cut short. */
        wait_changed(job, 100);
        if (job->running == 0 || interrupted || !(p->stop != NULL && *p->stop))
            continue;
        atomic_store(&p->halt, true); /* wakes a session waiting for its pace */
        long long now = clock_mono_ms();
        if (stop_seen < 0)
            stop_seen = now;
        if (now - stop_seen >= p->grace_ms) {
            interrupted = true;
            log_warn("shutdown grace over; cutting the SMTP sessions short",
                     json_pack("{s:I}", "sessions", (json_int_t)job->active));
            smtp_interrupt_sessions(&p->cfg);
        }
    }
    pthread_mutex_unlock(&job->lock);
    for (size_t i = 0; i < job->nthreads; i++)
        pthread_join(job->tid[i], NULL);
    /* Marks posted ahead for messages a session never reached point into job->marks: the
     * journal is done with them once everything posted is written. Its failure, if any, is
     * the batch completion's to report. */
    struct err fe;
    err_clear(&fe);
    (void)journal_flush(p->journal, &fe);
    /* Sessions cut short at a stop's request are not a relay failure. */
    int rc = interrupted ? ERR_OK : job->relay_rc;
    if (rc != ERR_OK)
        *e = job->relay_err;
    pthread_mutex_destroy(&job->lock);
    pthread_cond_destroy(&job->changed);
    free(job->tid);
    free(job->marks);
    free(job->queue);
    free(job->keep_back);
    free(job);
    return rc;
}
