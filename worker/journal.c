/* journal: group commit of the ledger's per-message steps on a connection of its own. */
#include "journal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "failpoint.h"
#include "log.h"
#include "policy.h"
#include "store.h"

/* How long an entry may wait for others to ride with it. */
#define RESULT_LAG_MS 50

struct entry {
    const char *id; /* borrowed from the batch, which outlives the flush; the same
                     * delivery has the same pointers */
    const char *due_at;
    char status[16];
    int code;
    char enhanced[16];
    char text[256];
    bool *applied; /* where the writer says whether it took effect, or NULL */
};

struct journal {
    struct db *db;
    char run_id[64];
    pthread_t tid;
    pthread_mutex_t lock;
    pthread_cond_t work; /* the writer waits for entries */
    pthread_cond_t done; /* the sessions wait for commits */
    struct entry *queue; /* posted, not yet taken by the writer */
    size_t n, cap;
    long long oldest_ms; /* when the oldest of them was posted */
    int waiters;         /* threads blocked until a commit */
    bool urgent;         /* a flush waits: write what there is now */
    uint64_t posted;     /* sequence of the last entry posted */
    uint64_t committed;  /* every entry up to this one is written (or the journal failed) */
    bool failed;
    bool closing;
    long writes, entries; /* for the log */
    struct err err;
};

static void
write_group(struct journal *j, struct entry *g, size_t n, uint64_t last)
{
    pthread_mutex_lock(&j->lock);
    bool failed = j->failed;
    if (failed) {
        /* nothing more is written once a write failed: the waiters learn it at once */
        for (size_t i = 0; i < n; i++)
            if (g[i].applied != NULL)
                *g[i].applied = false;
        j->committed = last;
        pthread_cond_broadcast(&j->done);
    }
    pthread_mutex_unlock(&j->lock);
    if (failed)
        return;
    struct store_progress *p = calloc(n, sizeof *p);
    bool *applied = calloc(n, sizeof *applied);
    struct err e;
    err_clear(&e);
    int rc;
    if (p == NULL || applied == NULL) {
        rc = err_set(&e, ERR_INTERNAL, "journal: out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            p[i].id = g[i].id;
            p[i].due_at = g[i].due_at;
            p[i].status = g[i].status;
            p[i].code = g[i].code;
            p[i].enhanced = g[i].enhanced;
            p[i].text = g[i].text;
        }
        failpoint("before_journal_write");
        rc = store_ledger_progress(j->db, j->run_id, p, n, applied, &e);
        failpoint("after_journal_write");
    }
    pthread_mutex_lock(&j->lock);
    if (rc != ERR_OK && !j->failed) {
        j->failed = true;
        j->err = e;
        log_error("delivery journal failed; no further message is sent",
                  json_pack("{s:s}", "error", e.msg));
    }
    for (size_t i = 0; i < n; i++)
        if (g[i].applied != NULL)
            *g[i].applied = rc == ERR_OK && applied[i];
    j->committed = last;
    j->writes++;
    j->entries += (long)n;
    pthread_cond_broadcast(&j->done);
    pthread_mutex_unlock(&j->lock);
    free(p);
    free(applied);
}

/* Whether the writer should write now: somebody waits for a commit, a flush or the close
 * asks for it, or the oldest entry has waited RESULT_LAG_MS. Otherwise entries gather: marks
 * are posted ahead of need (while the session's MAIL and RCPT are on their way) and replies
 * need not be written at once, so one write carries many. */
static bool
due_locked(const struct journal *j, long long now)
{
    return j->n > 0 &&
           (j->waiters > 0 || j->urgent || j->closing || now - j->oldest_ms >= RESULT_LAG_MS);
}

static bool
key_in(const struct entry *g, size_t n, const struct entry *en)
{
    for (size_t i = 0; i < n; i++)
        if (g[i].id == en->id && g[i].due_at == en->due_at)
            return true;
    return false;
}

static void *
writer(void *arg)
{
    struct journal *j = arg;
    struct entry *group = NULL;
    size_t group_cap = 0;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        while (!due_locked(j, clock_mono_ms()) && !(j->closing && j->n == 0)) {
            if (j->n == 0) {
                pthread_cond_wait(&j->work, &j->lock);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 5 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&j->work, &j->lock, &ts);
            }
        }
        if (j->n == 0)
            break; /* closing, and nothing left */
        j->urgent = false;
        /* Take everything posted so far. Once a write failed nothing more is written, and
         * the waiters learn it at once. */
        if (!j->failed && group_cap < j->n) {
            struct entry *g = realloc(group, j->n * sizeof *g);
            if (g == NULL) {
                j->failed = true;
                err_set(&j->err, ERR_INTERNAL, "journal: out of memory");
            } else {
                group = g;
                group_cap = j->n;
            }
        }
        if (j->failed) {
            for (size_t i = 0; i < j->n; i++)
                if (j->queue[i].applied != NULL)
                    *j->queue[i].applied = false;
            j->n = 0;
            j->committed = j->posted;
            pthread_cond_broadcast(&j->done);
            continue;
        }
        size_t n = j->n;
        memcpy(group, j->queue, n * sizeof *group);
        uint64_t last = j->posted;
        j->n = 0;
        pthread_mutex_unlock(&j->lock);
        /* One UPDATE applies to a row once, whatever the input says, and sees it as it was
         * before the statement: a message's reply and its next mark (offered again) must not
         * share a statement. So a key seen earlier in the group starts the next statement. */
        for (size_t start = 0, end; start < n; start = end) {
            for (end = start + 1; end < n && !key_in(group + start, end - start, &group[end]);)
                end++;
            write_group(j, group + start, end - start, last - (uint64_t)(n - end));
        }
        pthread_mutex_lock(&j->lock);
    }
    pthread_mutex_unlock(&j->lock);
    free(group);
    return NULL;
}

struct journal *
journal_start(struct db *db, const char *run_id, struct err *e)
{
    struct journal *j = calloc(1, sizeof *j);
    if (j == NULL) {
        err_set(e, ERR_INTERNAL, "journal: out of memory");
        return NULL;
    }
    j->db = db;
    snprintf(j->run_id, sizeof j->run_id, "%s", run_id);
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->work, NULL);
    pthread_cond_init(&j->done, NULL);
    err_clear(&j->err);
    if (pthread_create(&j->tid, NULL, writer, j) != 0) {
        pthread_mutex_destroy(&j->lock);
        pthread_cond_destroy(&j->work);
        pthread_cond_destroy(&j->done);
        free(j);
        err_set(e, ERR_INTERNAL, "journal: cannot start its thread");
        return NULL;
    }
    return j;
}

/* Appends an entry under the lock; returns its sequence, 0 when it cannot be queued. */
static uint64_t
post_locked(struct journal *j, const struct entry *en)
{
    if (j->failed)
        return 0;
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 64;
        struct entry *q = realloc(j->queue, cap * sizeof *q);
        if (q == NULL)
            return 0;
        j->queue = q;
        j->cap = cap;
    }
    if (j->n == 0) {
        j->oldest_ms = clock_mono_ms();
        pthread_cond_signal(&j->work); /* starts the writer's lag clock */
    }
    j->queue[j->n++] = *en;
    return ++j->posted;
}

void
journal_mark(struct journal *j, const char *id, const char *due_at, struct journal_mark *m)
{
    struct entry en = {.id = id, .due_at = due_at, .applied = &m->applied};
    snprintf(en.status, sizeof en.status, "%s", policy_ledger_name(POLICY_LEDGER_SENDING));
    pthread_mutex_lock(&j->lock);
    m->applied = false;
    m->seq = post_locked(j, &en);
    pthread_mutex_unlock(&j->lock);
}

bool
journal_wait(struct journal *j, const struct journal_mark *m)
{
    pthread_mutex_lock(&j->lock);
    if (m->seq != 0 && j->committed < m->seq) {
        j->waiters++;
        pthread_cond_signal(&j->work);
        while (j->committed < m->seq)
            pthread_cond_wait(&j->done, &j->lock);
        j->waiters--;
    }
    bool ok = m->seq != 0 && m->applied;
    pthread_mutex_unlock(&j->lock);
    return ok;
}

void
journal_outcome(struct journal *j, const char *id, const char *due_at, const char *status, int code,
                const char *enhanced, const char *text, bool *recorded)
{
    struct entry en = {.id = id, .due_at = due_at, .code = code, .applied = recorded};
    snprintf(en.status, sizeof en.status, "%s", status);
    snprintf(en.enhanced, sizeof en.enhanced, "%s", enhanced != NULL ? enhanced : "");
    snprintf(en.text, sizeof en.text, "%s", text != NULL ? text : "");
    pthread_mutex_lock(&j->lock);
    if (recorded != NULL)
        *recorded = false;
    (void)post_locked(j, &en); /* when refused, the batch's completion records it instead */
    pthread_mutex_unlock(&j->lock);
}

bool
journal_failed(struct journal *j)
{
    pthread_mutex_lock(&j->lock);
    bool failed = j->failed;
    pthread_mutex_unlock(&j->lock);
    return failed;
}

int
journal_flush(struct journal *j, struct err *e)
{
    pthread_mutex_lock(&j->lock);
    uint64_t target = j->posted;
    j->urgent = true;
    pthread_cond_signal(&j->work);
    while (j->committed < target)
        pthread_cond_wait(&j->done, &j->lock);
    int rc = ERR_OK;
    if (j->failed) {
        *e = j->err;
        rc = e->code != ERR_OK ? e->code : ERR_UNAVAILABLE;
    }
    pthread_mutex_unlock(&j->lock);
    return rc;
}

void
journal_stop(struct journal *j)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->lock);
    j->closing = true;
    pthread_cond_signal(&j->work);
    pthread_mutex_unlock(&j->lock);
    pthread_join(j->tid, NULL);
    log_debug("delivery journal closed", json_pack("{s:I,s:I}", "writes", (json_int_t)j->writes,
                                                   "entries", (json_int_t)j->entries));
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->work);
    pthread_cond_destroy(&j->done);
    free(j->queue);
    free(j);
}
