/* cmd_event: `event ORDER_ID --stage S --status S [--note T] [--next-action-at TS]
 * [--metadata-patch JSON] [--payload JSON]`: one transition through the storefront's state
 * machine, in one transaction, then the orchestration printed as `status` prints it.
 * Invalid input is refused before anything is written. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "log.h"
#include "transition.h"

static void
usage(FILE *out)
{
    fputs("usage: recovery-worker event ORDER_ID --stage STAGE --status STATUS [--note TEXT]\n"
          "                             [--next-action-at TIMESTAMP] [--metadata-patch JSON]\n"
          "                             [--payload JSON]\n"
          "\n"
          "Applies one transition as the storefront's checkout API does, records its event,\n"
          "and prints the orchestration. STAGE: payment, verification, loyalty_hold,\n"
          "fulfillment, completed. STATUS: not_started, in_progress, waiting, completed,\n"
          "failed. `completed` advances to the next stage; `waiting` sets next_action_at\n"
          "and locked_until (to --next-action-at, or clears them); `failed` sets failed_at.\n"
          "JSON arguments must be objects. The orchestration is created if the order has\n"
          "none yet.\n",
          out);
}

/* Events take clock_timestamp(), not now(): the two events of a created orchestration are
 * written in one transaction and must still sort in the order they happened. */

/* `col = <action>` for a timestamp column, from a small-integer parameter. */
#define SET_TS(col, action, given)                                                             \
    col " = CASE " action "::int WHEN 1 THEN now() WHEN 2 THEN COALESCE(" col ", now())"      \
        " WHEN 3 THEN NULL WHEN 4 THEN " given "::timestamptz ELSE " col " END"

static const char SQL_FIND[] =
    "SELECT c.id::text, c.current_stage::text FROM checkout_orchestrations c"
    " WHERE c.order_id = $1::uuid ORDER BY c.created_at LIMIT 1 FOR UPDATE";

static const char SQL_CREATE[] =
    "WITH o AS (INSERT INTO checkout_orchestrations"
    "             (id, order_id, user_id, current_stage, stage_status, metadata)"
    "           SELECT gen_random_uuid(), id, user_id, 'payment', 'not_started', '{}'"
    "             FROM orders WHERE id = $1::uuid"
    "           RETURNING id, current_stage),"
    " e AS (INSERT INTO checkout_orchestration_events"
    "         (id, orchestration_id, stage, status, transition_note, payload, created_at)"
    "       SELECT gen_random_uuid(), id, 'payment', 'not_started',"
    "              'Checkout orchestration initialized', '{}'::jsonb, clock_timestamp() FROM o)"
    " SELECT id::text, current_stage::text FROM o";

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

struct event_args {
    const char *order_id;
    enum transition_stage stage;
    enum transition_status status;
    const char *note;
    const char *next_action_at;
    const char *metadata_patch;
    const char *payload;
};

static bool
json_object_arg(const char *name, const char *text)
{
    if (text == NULL)
        return true;
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    bool ok = json_is_object(j);
    if (j == NULL)
        fprintf(stderr, "recovery-worker event: %s is not valid JSON: %s (column %d)\n", name,
                jerr.text, jerr.column);
    else if (!ok)
        fprintf(stderr, "recovery-worker event: %s must be a JSON object\n", name);
    json_decref(j);
    return ok;
}

static int
parse(int argc, char **argv, struct event_args *a)
{
    static const struct option longopts[] = {
        {"stage", required_argument, NULL, 's'},
        {"status", required_argument, NULL, 't'},
        {"note", required_argument, NULL, 'n'},
        {"next-action-at", required_argument, NULL, 'a'},
        {"metadata-patch", required_argument, NULL, 'm'},
        {"payload", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *stage = NULL, *status = NULL;
    optind = 0; /* 0, not 1: glibc then re-reads the option string and permutes again */
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            stage = optarg;
            break;
        case 't':
            status = optarg;
            break;
        case 'n':
            a->note = optarg;
            break;
        case 'a':
            a->next_action_at = optarg;
            break;
        case 'm':
            a->metadata_patch = optarg;
            break;
        case 'p':
            a->payload = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return err_exit_status(ERR_USAGE);
        }
    }
    if (optind != argc - 1 || !cmd_is_uuid(argv[optind])) {
        fprintf(stderr, "recovery-worker event: needs exactly one ORDER_ID (a UUID)\n");
        return err_exit_status(ERR_USAGE);
    }
    a->order_id = argv[optind];
    a->stage = transition_stage_parse(stage);
    a->status = transition_status_parse(status);
    if (a->stage == STAGE_INVALID) {
        fprintf(stderr, "recovery-worker event: --stage must be one of payment, verification, "
                        "loyalty_hold, fulfillment, completed\n");
        return err_exit_status(ERR_USAGE);
    }
    if (a->status == STATUS_INVALID) {
        fprintf(stderr, "recovery-worker event: --status must be one of not_started, "
                        "in_progress, waiting, completed, failed\n");
        return err_exit_status(ERR_USAGE);
    }
    if (!json_object_arg("--metadata-patch", a->metadata_patch) ||
        !json_object_arg("--payload", a->payload))
        return err_exit_status(ERR_USAGE);
    return -1; /* go on */
}

/* Finds the order's orchestration (locked) or creates it as the storefront's get_or_create
 * does. Sets id and stage; ERR_NOT_FOUND when the order does not exist. */
static int
find_or_create(struct db *db, const char *order_id, char id[40], char stage[24], struct err *e)
{
    const char *params[] = {order_id};
    struct db_res *r = NULL;
    int rc = db_exec(db, SQL_FIND, 1, params, &r, e);
    if (rc == ERR_OK && db_res_rows(r) == 0) {
        db_res_free(r);
        r = NULL;
        rc = db_exec(db, SQL_CREATE, 1, params, &r, e);
        if (rc == ERR_OK && db_res_rows(r) == 0)
            rc = err_set(e, ERR_NOT_FOUND, "order %s not found", order_id);
    }
    if (rc == ERR_OK) {
        snprintf(id, 40, "%s", db_res_get(r, 0, 0));
        snprintf(stage, 24, "%s", db_res_get(r, 0, 1));
    }
    db_res_free(r);
    return rc;
}

static int
apply(struct db *db, const struct event_args *a, struct err *e)
{
    char id[40], stage_name[24];
    int rc = db_begin(db, e);
    if (rc == ERR_OK && a->next_action_at != NULL) {
        const char *p[] = {a->next_action_at};
        rc = db_exec(db, "SELECT $1::timestamptz", 1, p, NULL, e);
        if (rc == ERR_DATA)
            rc = err_set(e, ERR_USAGE, "--next-action-at: not a timestamp: %s", a->next_action_at);
    }
    if (rc == ERR_OK)
        rc = find_or_create(db, a->order_id, id, stage_name, e);
    if (rc == ERR_OK) {
        struct transition_result t =
            transition_apply(transition_stage_parse(stage_name), a->stage, a->status);
        char acts[5][4];
        int sets[5] = {t.started_at, t.completed_at, t.failed_at, t.next_action_at,
                       t.locked_until};
        for (int i = 0; i < 5; i++)
            snprintf(acts[i], sizeof acts[i], "%d", sets[i]);
        const char *params[] = {
            id, transition_stage_name(t.stage), transition_status_name(t.status),
            acts[0], acts[1], acts[2], acts[3], acts[4], a->next_action_at, a->metadata_patch,
            transition_stage_name(t.event_stage), transition_status_name(t.event_status),
            a->note, a->payload,
        };
        rc = db_exec(db, SQL_APPLY, 14, params, NULL, e);
    }
    if (rc == ERR_OK)
        rc = db_commit(db, e);
    if (rc != ERR_OK)
        db_rollback(db);
    return rc;
}

int
cmd_event(const struct settings *s, int argc, char **argv)
{
    struct event_args a = {0};
    int st = parse(argc, argv, &a);
    if (st >= 0)
        return st;
    log_set_context("command", "event");
    struct err e;
    err_clear(&e);
    struct db *db = cmd_connect(s, false, &e);
    if (db == NULL)
        return cmd_fail("event failed", &e);
    int rc = apply(db, &a, &e);
    int status = 0;
    if (rc == ERR_NOT_FOUND || rc == ERR_USAGE || rc == ERR_DATA) {
        fprintf(stderr, "recovery-worker event: %s\n", e.msg);
        status = err_exit_status(ERR_USAGE);
    } else if (rc != ERR_OK) {
        status = cmd_fail("event failed", &e);
    } else {
        log_info("transition applied",
                 json_pack("{s:s,s:s,s:s}", "order_id", a.order_id, "stage",
                           transition_stage_name(a.stage), "status",
                           transition_status_name(a.status)));
        status = cmd_print_status(db, a.order_id);
    }
    db_close(db);
    return status;
}
