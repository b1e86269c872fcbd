/* pace: how fast and over how many sessions to send to one relay. A token bucket shared by
 * every session holds the configured maximum rate; an adaptive controller, in the spirit of
 * Postfix's destination concurrency feedback and TCP's AIMD, cuts the rate and the session
 * count when the relay throttles or refuses sessions, and lets them grow back while
 * messages are accepted. Thread-safe; pure apart from the clock and the sleep, which tests
 * replace. */
#ifndef COMMON_PACE_H
#define COMMON_PACE_H

#include <stdatomic.h>
#include <stdbool.h>

struct pace;

/* What the controller did so far (for metrics and logs). */
struct pace_stats {
    long long accepted;         /* pace_accepted calls */
    long long throttles;        /* pace_throttled calls (throttling replies) */
    long long rate_cuts;        /* throttles that cut the rate (one per hold period) */
    long long refused_sessions; /* pace_session_refused calls */
    double rate;                /* messages per second now allowed; 0: unlimited */
    int session_limit;          /* sessions now allowed */
};

/* A new controller: max_rate messages per second across all sessions (0: no fixed limit;
 * the adaptive rate applies once the relay throttles), max_sessions sessions at most (>= 1).
 * now_ms is a monotonic clock in milliseconds; NULL: clock_mono_ms. NULL when out of memory
 * or when max_rate < 0 or max_sessions < 1. Free with pace_free (NULL-safe). */
struct pace *pace_new(double max_rate, int max_sessions, long long (*now_ms)(void));
void pace_free(struct pace *p);

/* Tests only: how pace_acquire waits (it is given milliseconds; default nanosleep). */
void pace_set_sleep(struct pace *p, void (*sleep_ms)(long long ms));

/* Waits for a send slot under the current rate: at most one message per 1/rate seconds
 * across all callers, with no burst beyond one, so that at 5 per second no one-second
 * window holds more than 6 slots. Returns true when the slot is taken, false when
 * deadline_ms (on the now_ms clock) would pass first or *stop became true (stop may be NULL).
 * With no rate in force it returns at once. */
bool pace_acquire(struct pace *p, long long deadline_ms, const atomic_bool *stop);

/* The relay accepted a message: the adaptive rate grows by about one message per second
 * each second (1/rate per message), and the session limit by one every
 * PACE_SESSION_GROWTH accepted messages, up to max_sessions and never above a connection
 * cap the relay showed. */
void pace_accepted(struct pace *p);

/* The relay throttled (a reply smtp_reply_kind calls THROTTLE): the rate becomes half the
 * acceptance rate observed over the last two seconds (at least PACE_MIN_RATE), and the
 * session limit is halved (at least 1). Further throttles within PACE_HOLD_MS of a cut are
 * counted but cut nothing: the sessions in flight when the relay started throttling all
 * hear about it. */
void pace_throttled(struct pace *p);

/* The relay refused a session (4xx greeting, connection cap) while sessions_working others
 * were open: its cap is below the session count, so the limit becomes sessions_working (at
 * least 1) and never grows above it again. */
void pace_session_refused(struct pace *p, int sessions_working);

int pace_session_limit(const struct pace *p);
double pace_rate(const struct pace *p); /* 0: unlimited */
void pace_get_stats(const struct pace *p, struct pace_stats *out);

#define PACE_MIN_RATE 0.2      /* messages per second: the floor of a throttled rate */
#define PACE_HOLD_MS 1000      /* after a cut, further throttles cut nothing this long */
#define PACE_SESSION_GROWTH 20 /* accepted messages per extra session */
#define PACE_WINDOW_MS 2000    /* the acceptance rate is observed over this window */

#endif
