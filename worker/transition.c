/* transition: smplat's CheckoutOrchestrationService.apply_update, without I/O. */
#include "transition.h"

#include <string.h>

#define LABEL(name, label) label,

static const char *const STAGES[TRANSITION_STAGE_COUNT] = {TRANSITION_STAGES(LABEL)};
static const char *const STATUSES[TRANSITION_STATUS_COUNT] = {TRANSITION_STATUSES(LABEL)};

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
    case TRANSITION_STATUS_FAILED:
        /* the stage and next_action_at stay; the lease goes */
        r.failed_at = TRANSITION_SET_NOW;
        r.locked_until = TRANSITION_SET_NULL;
        break;
    case TRANSITION_STATUS_COMPLETED:
        /* advances from the orchestration's own stage, whatever stage was named */
        r.next_action_at = TRANSITION_SET_NULL;
        r.locked_until = TRANSITION_SET_NULL;
        if (current == TRANSITION_STAGE_COMPLETED) {
            r.status = TRANSITION_STATUS_COMPLETED;
            r.completed_at = TRANSITION_SET_NOW_IF_NULL;
        } else {
            r.stage = (enum transition_stage)(current + 1);
            if (r.stage == TRANSITION_STAGE_COMPLETED) {
                r.status = TRANSITION_STATUS_COMPLETED;
                r.completed_at = TRANSITION_SET_NOW;
            } else {
                r.status = TRANSITION_STATUS_NOT_STARTED;
            }
        }
        break;
    case TRANSITION_STATUS_NOT_STARTED:
    case TRANSITION_STATUS_IN_PROGRESS:
    case TRANSITION_STATUS_WAITING:
        r.stage = stage;
        r.locked_until = TRANSITION_SET_NULL;
        r.next_action_at = TRANSITION_SET_NULL;
        if (status == TRANSITION_STATUS_IN_PROGRESS)
            r.started_at = TRANSITION_SET_NOW_IF_NULL;
        if (status == TRANSITION_STATUS_WAITING) {
            r.next_action_at = TRANSITION_SET_GIVEN;
            r.locked_until = TRANSITION_SET_GIVEN;
        }
        break;
    case TRANSITION_STATUS_INVALID:
        break;
    }
    return r;
}

enum transition_stage
transition_stage_parse(const char *s)
{
    for (int i = 0; s != NULL && i < TRANSITION_STAGE_COUNT; i++)
        if (strcmp(s, STAGES[i]) == 0)
            return (enum transition_stage)i;
    return TRANSITION_STAGE_INVALID;
}

enum transition_status
transition_status_parse(const char *s)
{
    for (int i = 0; s != NULL && i < TRANSITION_STATUS_COUNT; i++)
        if (strcmp(s, STATUSES[i]) == 0)
            return (enum transition_status)i;
    return TRANSITION_STATUS_INVALID;
}

const char *
transition_stage_name(enum transition_stage s)
{
    return s >= 0 && s < TRANSITION_STAGE_COUNT ? STAGES[s] : "invalid";
}

const char *
transition_status_name(enum transition_status s)
{
    return s >= 0 && s < TRANSITION_STATUS_COUNT ? STATUSES[s] : "invalid";
}
