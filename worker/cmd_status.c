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
#include "store_event.h"

int
cmd_print_status(struct db *db, const char *order_id)
{
    struct err e;
    err_clear(&e);
    char *json = NULL;
    int status = 0;
    if (store_event_status(db, order_id, &json, &e) != ERR_OK) {
        status = cmd_fail("status failed", &e);
    } else if (json == NULL) {
        fprintf(stderr, "recovery-worker: no checkout orchestration for order %s\n", order_id);
        status = err_exit_status(ERR_USAGE);
    } else {
        json_error_t jerr;
        json_t *doc = json_loads(json, 0, &jerr);
        char *text = doc != NULL ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        printf("%s\n", text != NULL ? text : json);
        free(text);
        json_decref(doc);
    }
    free(json);
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
