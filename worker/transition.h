/* transition: the storefront's checkout state machine (smplat's apply_update), as a pure
 * function, so `recovery-worker event` changes an orchestration exactly as the storefront's
 * own API would. */
#ifndef WORKER_TRANSITION_H
#define WORKER_TRANSITION_H

#include <stdbool.h>

enum transition_stage {
    STAGE_PAYMENT = 0,
    STAGE_VERIFICATION,
    STAGE_LOYALTY_HOLD,
    STAGE_FULFILLMENT,
    STAGE_COMPLETED,
    STAGE_INVALID = -1,
};

enum transition_status {
    STATUS_NOT_STARTED = 0,
    STATUS_IN_PROGRESS,
    STATUS_WAITING,
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_INVALID = -1,
};

/* What happens to a timestamp column. */
enum transition_set {
    SET_KEEP = 0,    /* unchanged */
    SET_NOW,         /* now() */
    SET_NOW_IF_NULL, /* COALESCE(column, now()) */
    SET_NULL,        /* NULL */
    SET_GIVEN,       /* the --next-action-at value (may be NULL) */
};

struct transition_result {
    enum transition_stage stage;    /* new current_stage */
    enum transition_status status;  /* new stage_status */
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

enum transition_stage transition_stage_parse(const char *s);
enum transition_status transition_status_parse(const char *s);
const char *transition_stage_name(enum transition_stage s);
const char *transition_status_name(enum transition_status s);

#endif
