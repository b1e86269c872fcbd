/* store_event: the SQL of the `status` and `event` commands: one orchestration read as the
 * storefront's API prints it, and one transition written as its API writes it. */
#ifndef WORKER_STORE_EVENT_H
#define WORKER_STORE_EVENT_H

#include "db.h"
#include "err.h"
#include "store.h"
#include "transition.h"

/* The order's orchestration and its events as one JSON document in the shape of the
 * storefront's GET /api/v1/checkout/orchestrations/{order_id}, read in one statement (a
 * consistent snapshot). *json is new (free()), or NULL with ERR_OK when the order has no
 * orchestration. */
int store_event_status(struct db *db, const char *order_id, char **json, struct err *e);

/* ERR_DATA when PostgreSQL does not read text as a timestamptz. */
int store_event_check_timestamp(struct db *db, const char *text, struct err *e);

/* Locks the order's orchestration (FOR UPDATE, until the transaction ends) or creates it as
 * the storefront's get_or_create does, with its "initialized" event. Sets id and *stage
 * (TRANSITION_STAGE_INVALID for a label the worker does not know). ERR_NOT_FOUND when the
 * order does not exist. */
int store_event_find_or_create(struct db *db, const char *order_id, char id[STORE_UUID_LEN + 1],
                               enum transition_stage *stage, struct err *e);

/* What `event` writes besides the transition itself. Strings borrowed; each may be NULL. */
struct store_event_extra {
    const char *next_action_at; /* the TRANSITION_SET_GIVEN time (store_event_check_timestamp) */
    const char *metadata_patch; /* a JSON object merged into metadata */
    const char *note;           /* the event's transition_note */
    const char *payload;        /* a JSON object: the event's payload ({} when NULL) */
};

/* Applies t to orchestration id (stage, status, the five timestamps, the metadata patch,
 * last_transition_at and updated_at) and records its event, in one statement. */
int store_event_write(struct db *db, const char *id, const struct transition_result *t,
                      const struct store_event_extra *x, struct err *e);

#endif
