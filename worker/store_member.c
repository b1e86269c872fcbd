/* store_member: one-click unsubscribe as one statement, so the preference and its audit
 * event are written together or not at all. */
#include "store_member.h"

#include <stdlib.h>
#include <string.h>

#define NOTE_UNSUBSCRIBED "Member unsubscribed from recovery emails"

/* $1 order, $2 orchestration, $3 turn order_updates off, $4 turn marketing_messages off,
 * $5 payload. The upsert's WHERE makes a repeat a no-op (no row returned, no event). */
static const char SQL_OPT_OUT[] =
    "WITH target AS ("
    "  SELECT o.user_id FROM orders o WHERE o.id = $1::uuid AND o.user_id IS NOT NULL"
    "), up AS ("
    "  INSERT INTO notification_preferences AS np"
    "         (id, user_id, order_updates, payment_updates, fulfillment_alerts,"
    "          marketing_messages, created_at, updated_at)"
    "  SELECT gen_random_uuid(), t.user_id, NOT $3::boolean, true, true, false, now(), now()"
    "    FROM target t"
    "  ON CONFLICT (user_id) DO UPDATE"
    "     SET order_updates = CASE WHEN $3::boolean THEN false ELSE np.order_updates END,"
    "         marketing_messages = CASE WHEN $4::boolean THEN false"
    "                                   ELSE np.marketing_messages END,"
    "         updated_at = now()"
    "   WHERE ($3::boolean AND np.order_updates IS DISTINCT FROM false)"
    "      OR ($4::boolean AND np.marketing_messages IS DISTINCT FROM false)"
    "  RETURNING np.user_id"
    "), ev AS ("
    "  INSERT INTO checkout_orchestration_events"
    "         (id, orchestration_id, stage, status, transition_note, payload, created_at)"
    "  SELECT gen_random_uuid(), c.id, c.current_stage, c.stage_status, '" NOTE_UNSUBSCRIBED "',"
    "         $5::jsonb, now()"
    "    FROM checkout_orchestrations c"
    "   WHERE c.id = $2::uuid AND c.order_id = $1::uuid AND EXISTS (SELECT 1 FROM up)"
    "  RETURNING id"
    ") SELECT (SELECT count(*) FROM target), (SELECT count(*) FROM up),"
    "         (SELECT count(*) FROM ev)";

int
store_member_opt_out(struct db *db, const struct store_opt_out *o, enum store_opt_out_result *out,
                     struct err *e)
{
    const char *params[] = {o->order_id, o->orchestration_id, o->order_updates ? "true" : "false",
                            o->marketing_messages ? "true" : "false", o->payload};
    struct db_res *r = NULL;
    int rc = db_exec(db, SQL_OPT_OUT, 5, params, &r, e);
    if (rc == ERR_OK) {
        const char *target = db_res_get(r, 0, 0);
        const char *changed = db_res_get(r, 0, 1);
        if (target == NULL || strcmp(target, "0") == 0)
            *out = STORE_OPT_OUT_NO_MEMBER;
        else if (changed == NULL || strcmp(changed, "0") == 0)
            *out = STORE_OPT_OUT_ALREADY;
        else
            *out = STORE_OPT_OUT_DONE;
    }
    db_res_free(r);
    if (rc != ERR_OK)
        err_prefix(e, "unsubscribe");
    return rc;
}
