/* store_event: the statements behind `status` and `event`. The labels they write and the
 * actions they match on are passed in or generated from the lists of transition.h, so no
 * stage, status or action is spelled here. */
#include "store_event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One statement builds the whole document, so it is a consistent snapshot. Timestamps are
 * ISO 8601 in UTC, as the storefront's API prints them. */
static const char SQL_STATUS[] =
    "WITH o AS (SELECT c.* FROM checkout_orchestrations c WHERE c.order_id = $1::uuid"
    "            ORDER BY c.created_at LIMIT 1)"
    "SELECT json_build_object("
    "  'orderId', o.order_id,"
    "  'currentStage', o.current_stage,"
    "  'status', o.stage_status,"
    "  'startedAt', to_json(o.started_at),"
    "  'completedAt', to_json(o.completed_at),"
    "  'failedAt', to_json(o.failed_at),"
    "  'nextActionAt', to_json(o.next_action_at),"
    "  'metadata', COALESCE(o.metadata::json, '{}'::json),"
    "  'events', COALESCE((SELECT json_agg(json_build_object("
    "                 'stage', ev.stage, 'status', ev.status, 'note', ev.transition_note,"
    "                 'payload', COALESCE(ev.payload::json, '{}'::json),"
    "                 'createdAt', to_json(ev.created_at)) ORDER BY ev.created_at, ev.id)"
    "               FROM checkout_orchestration_events ev"
    "              WHERE ev.orchestration_id = o.id), '[]'::json))::text"
    "  FROM o";

/* Events take clock_timestamp(), not now(): the two events of a created orchestration are
 * written in one transaction and must still sort in the order they happened. */

static const char SQL_FIND[] =
    "SELECT c.id::text, c.current_stage::text FROM checkout_orchestrations c"
    " WHERE c.order_id = $1::uuid ORDER BY c.created_at LIMIT 1 FOR UPDATE";

/* $2 and $3: the first stage and status. Untyped, they take the types of the columns they
 * are inserted into, as the literals they replace did. */
static const char SQL_CREATE[] =
    "WITH o AS (INSERT INTO checkout_orchestrations"
    "             (id, order_id, user_id, current_stage, stage_status, metadata)"
    "           SELECT gen_random_uuid(), id, user_id, $2, $3, '{}'"
    "             FROM orders WHERE id = $1::uuid"
    "           RETURNING id, current_stage),"
    " e AS (INSERT INTO checkout_orchestration_events"
    "         (id, orchestration_id, stage, status, transition_note, payload, created_at)"
    "       SELECT gen_random_uuid(), id, $2, $3,"
    "              'Checkout orchestration initialized', '{}'::jsonb, clock_timestamp() FROM o)"
    " SELECT id::text, current_stage::text FROM o";

/* The new value of timestamp column c under each enum transition_set, g being the given
 * time's parameter. */
#define ACTION_KEEP(c, g) c
#define ACTION_NOW(c, g) "now()"
#define ACTION_NOW_IF_NULL(c, g) "COALESCE(" c ", now())"
#define ACTION_NULL(c, g) "NULL"
#define ACTION_GIVEN(c, g) g "::timestamptz"

/* `WHEN <number> THEN <value>` for one action; args is (c, g). */
#define ACTION_ARM(name, number, args) " WHEN " #number " THEN " ACTION_##name args

/* `c = <value>` for a timestamp column, from the action's number in parameter a. The arms
 * come from TRANSITION_SETS, so the numbers are the enum's. */
#define SET_TS(c, a, g) c " = CASE " a "::int" TRANSITION_SETS(ACTION_ARM, (c, g)) " ELSE " c " END"

/* The SET_TS arms are pieces of one string literal. */
/* clang-format off */
static const char SQL_APPLY[] =
    "WITH u AS ("
    "  UPDATE checkout_orchestrations SET"
    "    current_stage = $2, stage_status = $3,"
    "    " SET_TS("started_at", "$4", "$9") ","
    "    " SET_TS("completed_at", "$5", "$9") ","
    "    " SET_TS("failed_at", "$6", "$9") ","
    "    " SET_TS("next_action_at", "$7", "$9") ","
    "    " SET_TS("locked_until", "$8", "$9") ","
    "    metadata = (CASE WHEN json_typeof(metadata::json) = 'object'"
    "                     THEN metadata::jsonb ELSE '{}'::jsonb END)"
    "               || COALESCE($10::jsonb, '{}'::jsonb),"
    "    last_transition_at = now(), updated_at = now()"
    "  WHERE id = $1::uuid RETURNING id)"
    " INSERT INTO checkout_orchestration_events"
    "   (id, orchestration_id, stage, status, transition_note, payload, created_at)"
    " SELECT gen_random_uuid(), id, $11, $12, $13, COALESCE($14::jsonb, '{}'::jsonb),"
    "        clock_timestamp()"
    "   FROM u";
/* clang-format on */

int
store_event_status(struct db *db, const char *order_id, char **json, struct err *e)
{
    const char *params[] = {order_id};
    struct db_res *r = NULL;
    *json = NULL;
    int rc = db_exec(db, SQL_STATUS, 1, params, &r, e);
    if (rc == ERR_OK && db_res_rows(r) > 0) {
        *json = strdup(db_res_get(r, 0, 0));
        if (*json == NULL)
            rc = err_set(e, ERR_INTERNAL, "out of memory");
    }
    db_res_free(r);
    return rc;
}

int
store_event_check_timestamp(struct db *db, const char *text, struct err *e)
{
    const char *params[] = {text};
    return db_exec(db, "SELECT $1::timestamptz", 1, params, NULL, e);
}

int
store_event_find_or_create(struct db *db, const char *order_id, char id[STORE_UUID_LEN + 1],
                           enum transition_stage *stage, struct err *e)
{
    struct db_res *r = NULL;
    const char *find[] = {order_id};
    int rc = db_exec(db, SQL_FIND, 1, find, &r, e);
    if (rc == ERR_OK && db_res_rows(r) == 0) {
        db_res_free(r);
        r = NULL;
        const char *create[] = {order_id, transition_stage_name(TRANSITION_STAGE_PAYMENT),
                                transition_status_name(TRANSITION_STATUS_NOT_STARTED)};
        rc = db_exec(db, SQL_CREATE, 3, create, &r, e);
        if (rc == ERR_OK && db_res_rows(r) == 0)
            rc = err_set(e, ERR_NOT_FOUND, "order %s not found", order_id);
    }
    if (rc == ERR_OK) {
        snprintf(id, STORE_UUID_LEN + 1, "%s", db_res_get(r, 0, 0));
        *stage = transition_stage_parse(db_res_get(r, 0, 1));
    }
    db_res_free(r);
    return rc;
}

int
store_event_write(struct db *db, const char *id, const struct transition_result *t,
                  const struct store_event_extra *x, struct err *e)
{
    const enum transition_set sets[] = {t->started_at, t->completed_at, t->failed_at,
                                        t->next_action_at, t->locked_until};
    char acts[5][12];
    for (int i = 0; i < 5; i++)
        snprintf(acts[i], sizeof acts[i], "%d", (int)sets[i]);
    /* $1 .. $14 of SQL_APPLY */
    const char *params[] = {id,
                            transition_stage_name(t->stage),
                            transition_status_name(t->status),
                            acts[0],
                            acts[1],
                            acts[2],
                            acts[3],
                            acts[4],
                            x->next_action_at,
                            x->metadata_patch,
                            transition_stage_name(t->event_stage),
                            transition_status_name(t->event_status),
                            x->note,
                            x->payload};
    return db_exec(db, SQL_APPLY, 14, params, NULL, e);
}
