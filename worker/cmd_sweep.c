/* cmd_sweep: `sweep [--dry-run [--dry-run-dir DIR]] [--limit N] [--order ORDER_ID]`: one
 * sweep, the SPEC's JSON summary on stdout, the SPEC's exit status. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "failpoint.h"
#include "send.h"
#include "log.h"
#include "prompt.h"
#include "report.h"
#include "smtp.h"
#include "store.h"
#include "sweep.h"

static void
usage(FILE *out)
{
    fputs("usage: recovery-worker sweep [--dry-run [--dry-run-dir DIR]] [--limit N]\n"
          "                             [--order ORDER_ID]\n"
          "\n"
          "Claims every due orchestration (or at most N, or one order's orchestration whether\n"
          "due or not), emails the recovery prompts, records an event for each and moves\n"
          "next_action_at forward. Prints one JSON summary line.\n"
          "\n"
          "  --dry-run          claim, send and write nothing; print each decision as JSON\n"
          "  --dry-run-dir DIR  with --dry-run, also write each message that would be sent\n"
          "                     to DIR/ORCHESTRATION_ID.eml (DIR is created, mode 0700)\n"
          "  --limit N          handle at most N orchestrations\n"
          "  --order ORDER_ID   handle this order's waiting orchestration now\n",
          out);
}

static bool
parse_long(const char *s, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v <= 0)
        return false;
    *out = v;
    return true;
}

/* --dry-run-dir is made as `mkdir -p` would, mode 0700 (the previews hold members'
 * addresses and names), and checked writable before anything else: a preview that cannot be
 * written is refused as bad usage up front, not a warning per message and exit 0. An
 * existing directory keeps its mode. */
static bool
make_dry_run_dir(const char *dir)
{
    char path[4096];
    if (dir[0] == '\0' || (size_t)snprintf(path, sizeof path, "%s", dir) >= sizeof path - 64) {
        fprintf(stderr, "recovery-worker sweep: --dry-run-dir: path empty or too long\n");
        return false;
    }
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char was = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "recovery-worker sweep: --dry-run-dir: cannot create %s: %s\n", path,
                    strerror(errno));
            return false;
        }
        *p = was;
        if (was == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "recovery-worker sweep: --dry-run-dir: %s is not a writable directory\n",
                dir);
        return false;
    }
    return true;
}

int
cmd_sweep(const struct settings *s, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dry-run", no_argument, NULL, 'n'},     {"dry-run-dir", required_argument, NULL, 'D'},
        {"limit", required_argument, NULL, 'l'}, {"order", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    /* progress only for a person watching: never into a log file or a pipe */
    struct sweep_options opt = {
        .dry_run_out = stdout, .progress = isatty(STDERR_FILENO) == 1, .stop = &cmd_stop_requested};
    optind = 0; /* 0, not 1: glibc then re-reads the option string and permutes again */
    int c;
    while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            opt.dry_run = true;
            break;
        case 'D':
            opt.dry_run_dir = optarg;
            break;
        case 'l':
            if (!parse_long(optarg, &opt.limit)) {
                fprintf(stderr, "recovery-worker sweep: --limit needs a positive integer\n");
                return err_exit_status(ERR_USAGE);
            }
            break;
        case 'o':
            if (!cmd_is_uuid(optarg)) {
                fprintf(stderr, "recovery-worker sweep: --order needs an order id (a UUID)\n");
                return err_exit_status(ERR_USAGE);
            }
            opt.order_id = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return err_exit_status(ERR_USAGE);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "recovery-worker sweep: unexpected argument '%s'\n", argv[optind]);
        return err_exit_status(ERR_USAGE);
    }
    if (opt.dry_run_dir != NULL && !opt.dry_run) {
        fprintf(stderr, "recovery-worker sweep: --dry-run-dir needs --dry-run\n");
        return err_exit_status(ERR_USAGE);
    }
    if (opt.dry_run_dir != NULL && !make_dry_run_dir(opt.dry_run_dir))
        return err_exit_status(ERR_USAGE);

    failpoint_init(CMD_FAILPOINTS_ENV);
    cmd_catch_stop_signals();
    struct err e;
    err_clear(&e);
    log_set_context("command", "sweep");
    struct prompt_templates *t = NULL;
    if (cmd_sweep_setup(s, !opt.dry_run, &t, &e) != ERR_OK)
        return cmd_fail("sweep cannot start", &e);
    int rc = cmd_sweep_once(s, t, &opt, NULL, &e);
    int status = rc == ERR_OK ? 0 : cmd_fail("sweep cut short", &e);
    cmd_sweep_teardown(!opt.dry_run, t);
    return status;
}

int
cmd_sweep_setup(const struct settings *s, bool send, struct prompt_templates **t, struct err *e)
{
    *t = prompt_templates_load(s->templates_dir, e);
    if (*t == NULL)
        return e->code;
    if (!send)
        return ERR_OK;
    struct smtp_config cfg;
    send_smtp_config(s, &cfg);
    if (smtp_global_init(&cfg, e) != ERR_OK) {
        prompt_templates_free(*t);
        *t = NULL;
        return e->code;
    }
    return ERR_OK;
}

void
cmd_sweep_teardown(bool send, struct prompt_templates *t)
{
    if (send)
        smtp_global_cleanup();
    prompt_templates_free(t);
}

int
cmd_sweep_once(const struct settings *s, const struct prompt_templates *t,
               const struct sweep_options *opt, struct sweep_summary *out, struct err *e)
{
    char run_id[17];
    sweep_new_run_id(run_id);
    log_set_context("run_id", run_id);
    /* a dry run changes nothing, so it reports nothing either */
    bool report = !opt->dry_run;
    if (report)
        report_sweep_start(s, run_id);
    struct sweep_summary sum;
    memset(&sum, 0, sizeof sum);
    struct db *db = cmd_connect(s, true, e);
    if (db == NULL) {
        if (report)
            report_sweep_end(s, run_id, &sum, e->code, -1, -1.0);
        if (out != NULL)
            *out = sum;
        return e->code;
    }
    log_info("sweep started",
             json_pack("{s:b,s:I}", "dry_run", opt->dry_run, "limit", (json_int_t)opt->limit));
    /* The journal's connection records each message as it goes on the wire and as its reply
     * comes; no message is sent without it. */
    struct db *journal = NULL;
    if (!opt->dry_run) {
        journal = cmd_connect_journal(s, e);
        /* a silent database ends the sweep within one reply deadline, not one per
         * connection */
        db_share_fate(db, journal);
        if (journal == NULL) {
            db_close(db);
            if (report)
                report_sweep_end(s, run_id, &sum, e->code, -1, -1.0);
            if (out != NULL)
                *out = sum;
            return e->code;
        }
    }
    /* Another connection lets PostgreSQL record one batch while it claims the next; without
     * it (e.g. max_connections reached) the sweep runs on one. */
    struct db *db2 = NULL;
    if (!opt->dry_run && opt->order_id == NULL) {
        struct err e2;
        err_clear(&e2);
        db2 = cmd_connect(s, false, &e2);
        if (db2 == NULL)
            log_warn("second database connection unavailable; sweeping on one",
                     json_pack("{s:s}", "error", e2.msg));
        db_share_fate(db, db2);
    }
    int rc = sweep_run(db, journal, db2, s, t, run_id, opt, &sum, e);
    db_close(db2);
    db_close(journal);
    long due = -1;
    double oldest = -1.0;
    if (report && s->pushgateway_url != NULL) {
        struct err se;
        err_clear(&se);
        if (store_due_stats(db, &due, &oldest, &se) != ERR_OK) {
            due = -1;
            oldest = -1.0;
        }
    }
    db_close(db);
    json_t *j = sweep_summary_json(&sum);
    if (opt->dry_run)
        json_object_set_new(j, "dry_run", json_true());
    char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", line != NULL ? line : "{}");
    fflush(stdout);
    free(line);
    if (rc == ERR_OK)
        log_info("sweep completed", j);
    else
        json_decref(j);
    if (report)
        report_sweep_end(s, run_id, &sum, rc, due, oldest);
    if (out != NULL)
        *out = sum;
    return rc;
}
