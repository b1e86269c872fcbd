/* send: the session pool and its per-message hooks. */
#include "send.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "failpoint.h"
#include "log.h"

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

const char *
send_ledger_status(enum smtp_outcome o)
{
    return o == SMTP_NOT_ATTEMPTED ? "released" : smtp_outcome_name(o);
}

struct send_pool {
    struct smtp_config cfg;
    struct journal *journal;
    volatile sig_atomic_t *stop;
    size_t sessions;     /* sweep.concurrency */
    size_t per_session;  /* smtp.messages_per_session */
    long long grace_ms;  /* sweep.shutdown_grace */
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
    return p;
}

void
send_pool_free(struct send_pool *p)
{
    free(p);
}

struct send_job {
    struct send_pool *pool;
    struct smtp_message *msgs;
    const struct send_key *keys;
    bool *recorded;
    struct journal_mark *marks; /* each message's 'sending' mark, posted ahead of its data */
    size_t n;
    size_t chunk;
    pthread_mutex_t lock;
    pthread_cond_t ended;  /* a session thread finished */
    size_t next;           /* next chunk start, under lock */
    size_t running;        /* session threads not yet finished, under lock */
    pthread_t *tid;
    size_t nthreads;
    int relay_rc;          /* first session failure, under lock */
    struct err relay_err;
};

/* One session's view: its chunk is [base, base + len) in the job's arrays. */
struct session_arg {
    struct send_job *job;
    size_t base;
    size_t len;
};

static bool
stopping(const struct send_pool *p)
{
    return p->stop != NULL && *p->stop;
}

/* Posts message k's 'sending' mark, so that the write is under way while the session's
 * MAIL and RCPT are. */
static void
premark(struct send_job *job, size_t k)
{
    if (job->marks[k].seq == 0 && !stopping(job->pool))
        journal_mark(job->pool->journal, job->keys[k].id, job->keys[k].due_at, &job->marks[k]);
}

/* The last step before a message's data goes out: nothing more once a stop was asked for,
 * and nothing the journal has not durably marked 'sending'. The mark's write also carries the
 * reply to the session's previous message, posted before it. */
static bool
before_data(void *arg, size_t i)
{
    struct session_arg *sa = arg;
    struct send_job *job = sa->job;
    size_t k = sa->base + i;
    if (stopping(job->pool))
        return false;
    premark(job, k);
    if (!journal_wait(job->pool->journal, &job->marks[k]))
        return false;
    failpoint("before_data");
    return true;
}

static void
after_reply(void *arg, size_t i)
{
    struct session_arg *sa = arg;
    struct send_job *job = sa->job;
    size_t k = sa->base + i;
    const struct smtp_message *m = &job->msgs[k];
    journal_outcome(job->pool->journal, job->keys[k].id, job->keys[k].due_at,
                    send_ledger_status(m->outcome), m->code, m->enhanced, m->text,
                    &job->recorded[k]);
    failpoint("after_reply");
    if (i + 1 < sa->len)
        premark(job, k + 1);
}

static void *
session_thread(void *arg)
{
    struct send_job *job = arg;
    for (;;) {
        pthread_mutex_lock(&job->lock);
        size_t start = job->next;
        bool stop = start >= job->n || job->relay_rc != ERR_OK || stopping(job->pool);
        if (!stop)
            job->next = start + job->chunk;
        pthread_mutex_unlock(&job->lock);
        if (stop)
            break;
        size_t len = job->n - start < job->chunk ? job->n - start : job->chunk;
        struct session_arg sa = {job, start, len};
        struct smtp_hooks hooks = {before_data, after_reply, &sa};
        premark(job, start);
        struct err e;
        err_clear(&e);
        int rc = smtp_send_batch(&job->pool->cfg, job->msgs + start, len, &hooks, NULL, &e);
        if (rc != ERR_OK) {
            pthread_mutex_lock(&job->lock);
            if (job->relay_rc == ERR_OK) {
                job->relay_rc = rc;
                job->relay_err = e;
            }
            pthread_mutex_unlock(&job->lock);
        }
    }
    pthread_mutex_lock(&job->lock);
    job->running--;
    pthread_cond_broadcast(&job->ended);
    pthread_mutex_unlock(&job->lock);
    return NULL;
}

/* Equal chunks of at most messages_per_session: the number of chunks is a multiple of the
 * number of sessions, so no session is left carrying a last chunk alone. */
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
    if (job == NULL || tid == NULL || marks == NULL) {
        free(job);
        free(tid);
        free(marks);
        return NULL;
    }
    job->marks = marks;
    job->pool = p;
    job->msgs = msgs;
    job->keys = keys;
    job->recorded = recorded;
    job->n = n;
    job->tid = tid;
    job->relay_rc = ERR_OK;
    err_clear(&job->relay_err);
    for (size_t i = 0; i < n; i++)
        recorded[i] = false;
    size_t rounds = n == 0 ? 1 : (n + sessions * p->per_session - 1) / (sessions * p->per_session);
    size_t chunks = sessions * rounds;
    job->chunk = n == 0 ? 1 : (n + chunks - 1) / chunks;
    pthread_mutex_init(&job->lock, NULL);
    pthread_cond_init(&job->ended, NULL);
    if (n == 0)
        return job;
    job->running = sessions;
    for (job->nthreads = 0; job->nthreads < sessions; job->nthreads++)
        if (pthread_create(&job->tid[job->nthreads], NULL, session_thread, job) != 0)
            break;
    pthread_mutex_lock(&job->lock);
    job->running -= sessions - job->nthreads; /* the threads that did not start */
    pthread_mutex_unlock(&job->lock);
    if (job->nthreads == 0) {
        /* no thread could start: send on this one */
        pthread_mutex_lock(&job->lock);
        job->running = 1;
        pthread_mutex_unlock(&job->lock);
        session_thread(job);
    }
    return job;
}

static struct timespec
in_ms(long long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
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
        struct timespec ts = in_ms(100);
        pthread_cond_timedwait(&job->ended, &job->lock, &ts);
        if (job->running == 0 || interrupted || !stopping(p))
            continue;
        long long now = clock_mono_ms();
        if (stop_seen < 0)
            stop_seen = now;
        if (now - stop_seen >= p->grace_ms) {
            interrupted = true;
            log_warn("shutdown grace over; cutting the SMTP sessions short",
                     json_pack("{s:I}", "sessions", (json_int_t)job->running));
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
    pthread_cond_destroy(&job->ended);
    free(job->tid);
    free(job->marks);
    free(job);
    return rc;
}
