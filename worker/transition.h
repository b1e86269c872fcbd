/* transition: the storefront's checkout state machine (smplat's apply_update), as a pure
 * function, so `recovery-worker event` changes an orchestration exactly as the storefront's
 * own API would. */
#ifndef WORKER_TRANSITION_H
#define WORKER_TRANSITION_H

#include <stdbool.h>

/* The storefront's enum labels (checkout_orchestration_stage_enum and
 * checkout_orchestration_status_enum, in their order) and the enumerators that stand for
 * them. The worker's lists of stages and statuses (parsing, messages, the prompt copy) and
 * the labels the `event` command writes come from these two. */
#define TRANSITION_STAGES(X)                                                                       \
    X(PAYMENT, "payment")                                                                          \
    X(VERIFICATION, "verification")                                                                \
    X(LOYALTY_HOLD, "loyalty_hold")                                                                \
    X(FULFILLMENT, "fulfillment")                                                                  \
    X(COMPLETED, "completed")

#define TRANSITION_STATUSES(X)                                                                     \
    X(NOT_STARTED, "not_started")                                                                  \
    X(IN_PROGRESS, "in_progress")                                                                  \
    X(WAITING, "waiting")                                                                          \
    X(COMPLETED, "completed")                                                                      \
    X(FAILED, "failed")

#define TRANSITION_STAGE_ENUMERATOR(name, label) TRANSITION_STAGE_##name,
#define TRANSITION_STATUS_ENUMERATOR(name, label) TRANSITION_STATUS_##name,
#define TRANSITION_ONE(name, label) +1

/* Outside the enums, so a switch over one needs no case for a count. */
#define TRANSITION_STAGE_COUNT (0 TRANSITION_STAGES(TRANSITION_ONE))
#define TRANSITION_STATUS_COUNT (0 TRANSITION_STATUSES(TRANSITION_ONE))

/* In the storefront's order: TRANSITION_STAGE_COMPLETED is the last, and
 * transition_apply() advances a stage by adding one. */
enum transition_stage {
    TRANSITION_STAGES(TRANSITION_STAGE_ENUMERATOR) TRANSITION_STAGE_INVALID = -1,
};

enum transition_status {
    TRANSITION_STATUSES(TRANSITION_STATUS_ENUMERATOR) TRANSITION_STATUS_INVALID = -1,
};

/* What happens to a timestamp column. The numbers are what the `event` statement
 * (worker/store_event.c) receives and matches on, so they are spelled out here, once. X is
 * called as X(name, number, args), args passed through for callers that need context. */
#define TRANSITION_SETS(X, args)                                                                   \
    X(KEEP, 0, args)        /* unchanged */                                                        \
    X(NOW, 1, args)         /* now() */                                                            \
    X(NOW_IF_NULL, 2, args) /* COALESCE(column, now()) */                                          \
    X(NULL, 3, args)        /* NULL */                                                             \
    X(GIVEN, 4, args)       /* the --next-action-at value (may be NULL) */

#define TRANSITION_SET_ENUMERATOR(name, number, args) TRANSITION_SET_##name = number,

enum transition_set { TRANSITION_SETS(TRANSITION_SET_ENUMERATOR, ~) };

struct transition_result {
    enum transition_stage stage;   /* new current_stage */
    enum transition_status status; /* new stage_status */
    enum transition_set started_at;
    enum transition_set completed_at;
    enum transition_set failed_at;
    enum transition_set next_action_at;
    enum transition_set locked_until;
    enum transition_stage event_stage;
    enum transition_status event_status;
};

/* The new state of an orchestration at `current` stage after the update (stage, status). */
struct transition_result transition_apply(enum transition_stage current,
                                          enum transition_stage stage,
                                          enum transition_status status);

/* Labels to enumerators and back. Parsing is exact (case-sensitive); an unknown label is
 * *_INVALID, and the name of an invalid value is "invalid". Names are static strings. */
enum transition_stage transition_stage_parse(const char *s);
enum transition_status transition_status_parse(const char *s);
const char *transition_stage_name(enum transition_stage s);
const char *transition_status_name(enum transition_status s);

#endif
