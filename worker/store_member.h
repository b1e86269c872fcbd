/* store_member: the SQL about a member's own choices, answered for the HTTP endpoints: the
 * one-click unsubscribe (notification_preferences and its audit event). */
#ifndef WORKER_STORE_MEMBER_H
#define WORKER_STORE_MEMBER_H

#include <stdbool.h>

#include "db.h"
#include "err.h"

enum store_opt_out_result {
    STORE_OPT_OUT_DONE = 0,  /* a preference was turned off (or its row created off) */
    STORE_OPT_OUT_ALREADY,   /* nothing to change: already off */
    STORE_OPT_OUT_NO_MEMBER, /* the order is gone or has no member */
};

struct store_opt_out {
    const char *order_id;         /* from the verified token */
    const char *orchestration_id; /* the event goes on it when it still belongs to the order */
    bool order_updates;           /* set notification_preferences.order_updates false */
    bool marketing_messages;      /* set notification_preferences.marketing_messages false */
    const char *payload;          /* the event's payload, JSON text (no address, no name) */
};

/* In one statement: finds the order's member, turns the preferences off (creating the
 * member's notification_preferences row when missing, id gen_random_uuid(), the other
 * preferences at the storefront's defaults) and, when anything changed, records the event
 * "Member unsubscribed from recovery emails" on the orchestration (its current stage and
 * status). Running it again changes nothing and records nothing. */
int store_member_opt_out(struct db *db, const struct store_opt_out *o,
                         enum store_opt_out_result *out, struct err *e);

#endif
