/* metrics: the Prometheus text exposition format (version 0.0.4), pushed to a Pushgateway,
 * and healthchecks.io-style heartbeat pings; both over common/http. */
#ifndef COMMON_METRICS_H
#define COMMON_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

/* The Content-Type of the text the builder makes, for a push or a scrape. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum metrics_type { METRICS_GAUGE = 0, METRICS_COUNTER, METRICS_UNTYPED };

/* One metric family: its name, its TYPE and its HELP text. The builder borrows it for its
 * whole life, so families are meant to live in static tables. */
struct metrics_family {
    const char *name;
    enum metrics_type type;
    const char *help;
};

struct metrics_label {
    const char *name;
    const char *value;
};

#define METRICS_FAMILIES_MAX 64

/* A text builder. Plain data so it can live on the stack, but touch it only through the
 * functions below. */
struct metrics {
    struct buf out;
    const struct metrics_family *families[METRICS_FAMILIES_MAX]; /* written so far, borrowed */
    size_t nfamilies;
    bool failed;     /* sticky: the first failure wins */
    char error[160]; /* why it failed */
};

/* Prepares an empty builder. */
void metrics_init(struct metrics *m);

/* Appends one sample of family f. The HELP and TYPE lines are written before the family's
 * first sample; a family's samples must be added one after another (the format wants them
 * together), and adding to a family after another one has started fails the builder.
 * Label values are escaped (backslash, double quote, newline); names are checked against
 * the format's grammar; values print as the shortest text that reads back the same, with
 * NaN, +Inf and -Inf spelled as the format wants. labels may be NULL when nlabels is 0.
 * Returns false once the builder has failed (see metrics_error). */
bool metrics_add(struct metrics *m, const struct metrics_family *f,
                 const struct metrics_label *labels, size_t nlabels, double value);

/* The exposition text so far (borrowed, valid until the next add or metrics_free), or NULL
 * when the builder has failed. */
const char *metrics_text(const struct metrics *m);

/* Why the builder failed ("" when it has not). Never NULL. */
const char *metrics_error(const struct metrics *m);

/* Frees the text; the builder may be initialised again. NULL-safe. */
void metrics_free(struct metrics *m);

/* Whether s is a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or label name
 * ([a-zA-Z_][a-zA-Z0-9_]*, and not starting with "__", which Prometheus reserves). */
bool metrics_name_valid(const char *s);
bool metrics_label_name_valid(const char *s);

/* How a push treats what the Pushgateway already holds for the same grouping key. */
enum metrics_push_method {
    METRICS_PUT,  /* replace every metric of the group */
    METRICS_POST, /* replace only the families present in the pushed text */
};

/* The push URL <base>/metrics/job/<job>{/<label>/<value>}: a trailing '/' on base is
 * dropped; a segment is percent-encoded (RFC 3986 unreserved characters kept), and one that
 * contains '/', is empty, or is "." or "..", takes the Pushgateway's base64 form
 * (<label>@base64/<RFC 4648 base64url without padding>, "=" for empty). New; free with
 * free(). NULL with ERR_CONFIG for an empty base or job, a base with a query or fragment,
 * or a bad label name ("job" included); ERR_INTERNAL when out of memory. */
char *metrics_push_url(const char *base, const char *job, const struct metrics_label *grouping,
                       size_t ngrouping, struct err *e);

/* Pushes text (exposition format, borrowed) to metrics_push_url(base, job, grouping), with
 * timeout_ms for the whole request (0: http's default). Errors as http_request's, prefixed
 * "metrics push". */
int metrics_push(const char *base, const char *job, const struct metrics_label *grouping,
                 size_t ngrouping, const char *text, enum metrics_push_method method,
                 long timeout_ms, struct err *e);

enum metrics_heartbeat_phase {
    METRICS_HEARTBEAT_START,   /* <url>/start */
    METRICS_HEARTBEAT_SUCCESS, /* <url> */
    METRICS_HEARTBEAT_FAIL,    /* <url>/fail */
};

/* The ping URL for a phase: the suffix goes after the path (a trailing '/' dropped) and
 * before any query string; a fragment is dropped. New; free with free(). NULL when out of
 * memory or url is NULL. */
char *metrics_heartbeat_url(const char *url, enum metrics_heartbeat_phase phase);

/* Pings the heartbeat for a phase: POST with body (text/plain, borrowed; a check's log
 * line) when body is non-NULL, else GET. Error messages hide the URL's path, which for
 * such services is the secret. Errors as http_request's, prefixed "heartbeat <phase>". */
int metrics_heartbeat(const char *url, enum metrics_heartbeat_phase phase, const char *body,
                      long timeout_ms, struct err *e);

/* "start", "success" or "fail". */
const char *metrics_heartbeat_phase_name(enum metrics_heartbeat_phase phase);

#endif
