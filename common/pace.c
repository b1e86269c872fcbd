/* pace: a shared token bucket (virtual scheduling: each slot is booked 1/rate after the one
 * before, so the bucket never holds more than one token) under an additive-increase,
 * multiplicative-decrease controller of the rate and the session count. */
#include "pace.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"

#define RING 256 /* acceptance times kept to observe the rate */

struct pace {
    pthread_mutex_t lock;
    long long (*now_ms)(void);
    void (*sleep_ms)(long long ms);

    double max_rate; /* configured; 0: none */
    int max_sessions;

    double adaptive;   /* the controller's rate; 0: the relay never throttled */
    double next_slot;  /* when the next slot may be given, on the now_ms clock */
    bool slot_started; /* next_slot is meaningful */
    long long hold_until;
    bool held;

    int session_limit;
    int session_cap; /* the most sessions the relay allowed; max_sessions until it refused */
    int growth;      /* accepted messages since the session limit last changed */

    long long ring[RING];
    size_t ring_n, ring_head;

    struct pace_stats stats;
};

static void
default_sleep(long long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

struct pace *
pace_new(double max_rate, int max_sessions, long long (*now_ms)(void))
{
    if (!(max_rate >= 0) || max_sessions < 1)
        return NULL;
    struct pace *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return NULL;
    }
    p->now_ms = now_ms != NULL ? now_ms : clock_mono_ms;
    p->sleep_ms = default_sleep;
    p->max_rate = max_rate;
    p->max_sessions = max_sessions;
    p->session_limit = max_sessions;
    p->session_cap = max_sessions;
    p->stats.session_limit = max_sessions;
    p->stats.rate = max_rate;
    return p;
}

void
pace_free(struct pace *p)
{
    if (p == NULL)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void
pace_set_sleep(struct pace *p, void (*sleep_ms)(long long ms))
{
    p->sleep_ms = sleep_ms != NULL ? sleep_ms : default_sleep;
}

/* The rate in force: the lower of the configured and the adaptive one; 0: none. Locked. */
static double
effective_rate(const struct pace *p)
{
    if (p->adaptive > 0 && (p->max_rate <= 0 || p->adaptive < p->max_rate))
        return p->adaptive;
    return p->max_rate;
}

static void
publish(struct pace *p)
{
    p->stats.rate = effective_rate(p);
    p->stats.session_limit = p->session_limit;
}

bool
pace_acquire(struct pace *p, long long deadline_ms, const atomic_bool *stop)
{
    if (stop != NULL && atomic_load(stop))
        return false;
    pthread_mutex_lock(&p->lock);
    double rate = effective_rate(p);
    if (rate <= 0) {
        pthread_mutex_unlock(&p->lock);
        return true;
    }
    long long now = p->now_ms();
    double slot = p->slot_started && p->next_slot > (double)now ? p->next_slot : (double)now;
    if (slot > (double)deadline_ms) {
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    p->next_slot = slot + 1000.0 / rate;
    p->slot_started = true;
    pthread_mutex_unlock(&p->lock);

    /* The slot is booked: wait for it in short steps, so that a stop is seen soon. */
    long long at = (long long)slot;
    if ((double)at < slot)
        at++;
    for (;;) {
        now = p->now_ms();
        if (now >= at)
            return true;
        if (stop != NULL && atomic_load(stop))
            return false;
        long long step = at - now;
        p->sleep_ms(step < 50 ? step : 50);
    }
}

void
pace_accepted(struct pace *p)
{
    pthread_mutex_lock(&p->lock);
    long long now = p->now_ms();
    p->ring[p->ring_head] = now;
    p->ring_head = (p->ring_head + 1) % RING;
    if (p->ring_n < RING)
        p->ring_n++;
    p->stats.accepted++;

    if (p->adaptive > 0) {
        p->adaptive += 1.0 / p->adaptive; /* about +1 message/s per second */
        if (p->max_rate > 0 && p->adaptive >= p->max_rate)
            p->adaptive = p->max_rate;
    }
    int ceiling = p->session_cap < p->max_sessions ? p->session_cap : p->max_sessions;
    if (p->session_limit < ceiling && ++p->growth >= PACE_SESSION_GROWTH) {
        p->session_limit++;
        p->growth = 0;
    }
    publish(p);
    pthread_mutex_unlock(&p->lock);
}

/* Messages accepted per second over the last PACE_WINDOW_MS, measured from the oldest one in
 * the window but over no less than a second (a burst of ten in 100 ms is not 100/s). Locked. */
static double
observed_rate(const struct pace *p, long long now)
{
    size_t count = 0;
    long long oldest = now;
    for (size_t k = 0; k < p->ring_n; k++) {
        long long t = p->ring[(p->ring_head + RING - 1 - k) % RING];
        if (now - t > PACE_WINDOW_MS)
            break;
        count++;
        oldest = t;
    }
    long long span = now - oldest;
    if (span < 1000)
        span = 1000;
    return (double)count * 1000.0 / (double)span;
}

void
pace_throttled(struct pace *p)
{
    pthread_mutex_lock(&p->lock);
    long long now = p->now_ms();
    p->stats.throttles++;
    if (p->held && now < p->hold_until) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    double seen = observed_rate(p, now);
    double current = effective_rate(p);
    if (current > 0 && current < seen)
        seen = current;
    double cut = seen / 2;
    p->adaptive = cut > PACE_MIN_RATE ? cut : PACE_MIN_RATE;
    /* The relay wants a pause: the next slot is a whole interval away. */
    double next = (double)now + 1000.0 / effective_rate(p);
    if (!p->slot_started || p->next_slot < next)
        p->next_slot = next;
    p->slot_started = true;
    p->session_limit = p->session_limit / 2 > 1 ? p->session_limit / 2 : 1;
    p->growth = 0;
    p->held = true;
    p->hold_until = now + PACE_HOLD_MS;
    p->stats.rate_cuts++;
    publish(p);
    pthread_mutex_unlock(&p->lock);
}

void
pace_session_refused(struct pace *p, int sessions_working)
{
    pthread_mutex_lock(&p->lock);
    p->stats.refused_sessions++;
    int cap = sessions_working > 1 ? sessions_working : 1;
    if (cap < p->session_cap)
        p->session_cap = cap;
    if (p->session_limit > cap)
        p->session_limit = cap;
    p->growth = 0;
    publish(p);
    pthread_mutex_unlock(&p->lock);
}

int
pace_session_limit(const struct pace *p)
{
    struct pace_stats st;
    pace_get_stats(p, &st);
    return st.session_limit;
}

double
pace_rate(const struct pace *p)
{
    struct pace_stats st;
    pace_get_stats(p, &st);
    return st.rate;
}

void
pace_get_stats(const struct pace *p, struct pace_stats *out)
{
    /* The lock guards the counters; taking it does not change what p means. */
    pthread_mutex_t *lock = (pthread_mutex_t *)&p->lock;
    pthread_mutex_lock(lock);
    *out = p->stats;
    pthread_mutex_unlock(lock);
}
