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
#include "store_event.h"
#include "transition.h"

/* "payment, verification, ...": each list is built with a leading ", ", skipped on use. */
#define LIST_ITEM(name, label) ", " label
static const char STAGE_LIST[] = TRANSITION_STAGES(LIST_ITEM);
static const char STATUS_LIST[] = TRANSITION_STATUSES(LIST_ITEM);

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: recovery-worker event ORDER_ID --stage STAGE --status STATUS [--note TEXT]\n"
            "                             [--next-action-at TIMESTAMP] [--metadata-patch JSON]\n"
            "                             [--payload JSON]\n"
            "\n"
            "Applies one transition as the storefront's checkout API does, records its event,\n"
            "and prints the orchestration.\n"
            "STAGE: %s.\n"
            "STATUS: %s.\n"
            "`completed` advances to the next stage; `waiting` sets next_action_at and\n"
            "locked_until (to --next-action-at, or clears them); `failed` sets failed_at.\n"
            "JSON arguments must be objects. The orchestration is created if the order has\n"
            "none yet.\n",
            STAGE_LIST + 2, STATUS_LIST + 2);
}

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
    if (a->stage == TRANSITION_STAGE_INVALID) {
        fprintf(stderr, "recovery-worker event: --stage must be one of %s\n", STAGE_LIST + 2);
        return err_exit_status(ERR_USAGE);
    }
    if (a->status == TRANSITION_STATUS_INVALID) {
        fprintf(stderr, "recovery-worker event: --status must be one of %s\n", STATUS_LIST + 2);
        return err_exit_status(ERR_USAGE);
    }
    if (!json_object_arg("--metadata-patch", a->metadata_patch) ||
        !json_object_arg("--payload", a->payload))
        return err_exit_status(ERR_USAGE);
    return -1; /* go on */
}

static int
apply(struct db *db, const struct event_args *a, struct err *e)
{
    char id[STORE_UUID_LEN + 1];
    enum transition_stage current = TRANSITION_STAGE_INVALID;
    int rc = db_begin(db, e);
    if (rc == ERR_OK && a->next_action_at != NULL) {
        rc = store_event_check_timestamp(db, a->next_action_at, e);
        if (rc == ERR_DATA)
            rc = err_set(e, ERR_USAGE, "--next-action-at: not a timestamp: %s", a->next_action_at);
    }
    if (rc == ERR_OK)
        rc = store_event_find_or_create(db, a->order_id, id, &current, e);
    if (rc == ERR_OK) {
        struct transition_result t = transition_apply(current, a->stage, a->status);
        struct store_event_extra x = {
            .next_action_at = a->next_action_at,
            .metadata_patch = a->metadata_patch,
            .note = a->note,
            .payload = a->payload,
        };
        rc = store_event_write(db, id, &t, &x, e);
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
        log_info("transition applied", json_pack("{s:s,s:s,s:s}", "order_id", a.order_id, "stage",
                                                 transition_stage_name(a.stage), "status",
                                                 transition_status_name(a.status)));
        status = cmd_print_status(db, a.order_id);
    }
    db_close(db);
    return status;
}
