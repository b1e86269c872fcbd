/* cmd_status: `status ORDER_ID` and `check-config`: read-only views for operators. The
 * orchestration JSON has the shape of the storefront's
 * GET /api/v1/checkout/orchestrations/{order_id}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "log.h"
#include "prompt.h"

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

int
cmd_print_status(struct db *db, const char *order_id)
{
    struct err e;
    err_clear(&e);
    const char *params[] = {order_id};
    struct db_res *r = NULL;
    int status = 0;
    if (db_exec(db, SQL_STATUS, 1, params, &r, &e) != ERR_OK) {
        status = cmd_fail("status failed", &e);
    } else if (db_res_rows(r) == 0) {
        fprintf(stderr, "recovery-worker: no checkout orchestration for order %s\n", order_id);
        status = err_exit_status(ERR_USAGE);
    } else {
        json_error_t jerr;
        json_t *doc = json_loads(db_res_get(r, 0, 0), 0, &jerr);
        char *text = doc != NULL ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        printf("%s\n", text != NULL ? text : db_res_get(r, 0, 0));
        free(text);
        json_decref(doc);
    }
    db_res_free(r);
    return status;
}

int
cmd_status(const struct settings *s, int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        puts("usage: recovery-worker status ORDER_ID\n\n"
             "Prints the order's checkout orchestration and its events as JSON.");
        return 0;
    }
    if (argc != 2 || !cmd_is_uuid(argv[1])) {
        fprintf(stderr, "usage: recovery-worker status ORDER_ID (a UUID)\n");
        return err_exit_status(ERR_USAGE);
    }
    struct err e;
    err_clear(&e);
    log_set_context("command", "status");
    struct db *db = cmd_connect(s, false, &e);
    if (db == NULL)
        return cmd_fail("status failed", &e);
    int status = cmd_print_status(db, argv[1]);
    db_close(db);
    return status;
}

int
cmd_check_config(const struct settings *s, int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0) {
            puts("usage: recovery-worker check-config\n\n"
                 "Loads and validates the configuration (file and environment) and prints\n"
                 "the effective settings with secrets masked. Exit 78 when it is invalid.");
            return 0;
        }
        fprintf(stderr, "usage: recovery-worker check-config\n");
        return err_exit_status(ERR_USAGE);
    }
    /* the templates are configuration too: a bad one fails here, not at send time */
    struct err e;
    err_clear(&e);
    struct prompt_templates *t = prompt_templates_load(s->templates_dir, &e);
    if (t == NULL) {
        fprintf(stderr, "%s\n", e.msg);
        return err_exit_status(e.code);
    }
    prompt_templates_free(t);
    settings_print(s, stdout);
    return 0;
}
