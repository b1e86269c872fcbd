/* transition: smplat's CheckoutOrchestrationService.apply_update, without I/O. */
#include "transition.h"

#include <string.h>

static const char *const STAGES[] = {"payment", "verification", "loyalty_hold", "fulfillment",
                                     "completed"};
static const char *const STATUSES[] = {"not_started", "in_progress", "waiting", "completed",
                                       "failed"};

struct transition_result
transition_apply(enum transition_stage current, enum transition_stage stage,
                 enum transition_status status)
{
    struct transition_result r = {
        .stage = current,
        .status = status,
        .event_stage = stage,
        .event_status = status,
    };
    switch (status) {
    case STATUS_FAILED:
        /* the stage and next_action_at stay; the lease goes */
        r.failed_at = SET_NOW;
        r.locked_until = SET_NULL;
        break;
    case STATUS_COMPLETED:
        /* advances from the orchestration's own stage, whatever stage was named */
        r.next_action_at = SET_NULL;
        r.locked_until = SET_NULL;
        if (current == STAGE_COMPLETED) {
            r.status = STATUS_COMPLETED;
            r.completed_at = SET_NOW_IF_NULL;
        } else {
            r.stage = (enum transition_stage)(current + 1);
            if (r.stage == STAGE_COMPLETED) {
                r.status = STATUS_COMPLETED;
                r.completed_at = SET_NOW;
            } else {
                r.status = STATUS_NOT_STARTED;
            }
        }
        break;
    case STATUS_NOT_STARTED:
    case STATUS_IN_PROGRESS:
    case STATUS_WAITING:
        r.stage = stage;
        r.locked_until = SET_NULL;
        r.next_action_at = SET_NULL;
        if (status == STATUS_IN_PROGRESS)
            r.started_at = SET_NOW_IF_NULL;
        if (status == STATUS_WAITING) {
            r.next_action_at = SET_GIVEN;
            r.locked_until = SET_GIVEN;
        }
        break;
    case STATUS_INVALID:
        break;
    }
    return r;
}

enum transition_stage
transition_stage_parse(const char *s)
{
    for (int i = 0; s != NULL && i < 5; i++)
        if (strcmp(s, STAGES[i]) == 0)
            return (enum transition_stage)i;
    return STAGE_INVALID;
}

enum transition_status
transition_status_parse(const char *s)
{
    for (int i = 0; s != NULL && i < 5; i++)
        if (strcmp(s, STATUSES[i]) == 0)
            return (enum transition_status)i;
    return STATUS_INVALID;
}

const char *
transition_stage_name(enum transition_stage s)
{
    return s >= STAGE_PAYMENT && s <= STAGE_COMPLETED ? STAGES[s] : "invalid";
}

const char *
transition_status_name(enum transition_status s)
{
    return s >= STATUS_NOT_STARTED && s <= STATUS_FAILED ? STATUSES[s] : "invalid";
}
