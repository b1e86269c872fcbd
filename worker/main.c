/* recovery-worker: turns the command line into one command, and its outcome into the
 * SPEC's exit status (0, 64 usage, 69 unavailable, 70 internal, 78 configuration). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "http.h"
#include "log.h"
#include "settings.h"

struct command {
    const char *name;
    int (*run)(const struct settings *s, int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"migrate", cmd_migrate, "apply pending database migrations"},
    {"sweep", cmd_sweep, "one sweep over the due orchestrations, then exit"},
    {"run", cmd_run, "sweep every schedule.interval until SIGTERM; SIGUSR1 sweeps now"},
    {"status", cmd_status, "print an order's orchestration and its events as JSON"},
    {"event", cmd_event, "apply one transition (the storefront's state machine), print it"},
    {"check-config", cmd_check_config, "validate the configuration and print it, secrets masked"},
    {"verify-token", cmd_verify_token, "check a resume or unsubscribe link token and print it"},
    {"serve", cmd_serve, "HTTP: one-click unsubscribe, /healthz and /metrics on HTTP_LISTEN"},
};

static void
usage(FILE *out)
{
    fputs("usage: recovery-worker [--config FILE] COMMAND [options]\n"
          "\n"
          "Emails members whose checkout stalled a prompt to resume it, and records each\n"
          "recovery sweep on the checkout orchestration.\n"
          "\n"
          "commands:\n",
          out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "options:\n"
          "  -c, --config FILE  configuration file (default: $RECOVERY_WORKER_CONFIG or\n"
          "                     ./worker.yaml when it exists; environment variables override)\n"
          "  -h, --help         this help; `recovery-worker COMMAND --help` for a command\n"
          "  -V, --version      print the version\n"
          "\n"
          "exit status: 0 done, 64 usage, 69 database or relay unavailable, 70 internal\n"
          "error, 78 configuration error\n",
          out);
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    int c;
    /* "+" stops at the command name, so each command parses its own options. */
    while ((c = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("recovery-worker %s\n", RW_VERSION);
            return 0;
        default:
            usage(stderr);
            return err_exit_status(ERR_USAGE);
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return err_exit_status(ERR_USAGE);
    }
    const char *name = argv[optind];
    const struct command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            cmd = &commands[i];
    if (cmd == NULL) {
        fprintf(stderr, "recovery-worker: unknown command '%s' (see --help)\n", name);
        return err_exit_status(ERR_USAGE);
    }

    /* LOG_LEVEL is honoured before the configuration loads, so its errors log as asked. */
    const char *level = getenv("LOG_LEVEL");
    enum log_level lv;
    if (level != NULL && log_level_parse(level, &lv))
        log_set_level(lv);

    struct settings s;
    struct err e;
    err_clear(&e);
    if (settings_load(config_path, &s, stderr, &e) != ERR_OK) {
        settings_free(&s);
        return err_exit_status(e.code);
    }
    log_set_level(s.log_level);
    http_global_init();
    int status = cmd->run(&s, argc - optind, argv + optind);
    http_global_cleanup();
    settings_free(&s);
    log_clear_context();
    return status;
}
