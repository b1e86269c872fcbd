/* cmd: one entry point per command. Each returns a process exit status (SPEC §5). */
#ifndef WORKER_CMD_H
#define WORKER_CMD_H

#include <signal.h>

#include "db.h"
#include "err.h"
#include "settings.h"

/* The variable that arms the failpoints of sweep and run (common/failpoint.h): tests only. */
#define CMD_FAILPOINTS_ENV "RECOVERY_WORKER_FAILPOINTS"

int cmd_migrate(const struct settings *s, int argc, char **argv);
int cmd_sweep(const struct settings *s, int argc, char **argv);
int cmd_status(const struct settings *s, int argc, char **argv);
int cmd_check_config(const struct settings *s, int argc, char **argv);
int cmd_run(const struct settings *s, int argc, char **argv);
int cmd_verify_token(const struct settings *s, int argc, char **argv);
int cmd_event(const struct settings *s, int argc, char **argv);
int cmd_serve(const struct settings *s, int argc, char **argv);

/* Prints the order's orchestration and events as JSON (the storefront API's shape).
 * Returns an exit status: 64 when the order has no orchestration. */
int cmd_print_status(struct db *db, const char *order_id);

struct prompt_templates;
struct sweep_options;
struct sweep_summary;

/* Process-wide preparation of sweeps: templates (checked now, so a bad one is a
 * configuration error at start-up) and, when send, the SMTP library. */
int cmd_sweep_setup(const struct settings *s, bool send, struct prompt_templates **t,
                    struct err *e);
void cmd_sweep_teardown(bool send, struct prompt_templates *t);

/* One sweep under a new run id and connection; prints the summary line on stdout. The
 * summary is copied to out when non-NULL. Returns the sweep's error code. */
int cmd_sweep_once(const struct settings *s, const struct prompt_templates *t,
                   const struct sweep_options *opt, struct sweep_summary *out, struct err *e);

/* Shared by the commands: connect with the configured retries (new; db_close), session in
 * UTC so timestamps print the same everywhere. When require_schema, fails with ERR_CONFIG if
 * migrations are pending. */
struct db *cmd_connect(const struct settings *s, bool require_schema, struct err *e);

/* A connection for the delivery journal (worker/journal.h): no per-transaction settings. */
struct db *cmd_connect_journal(const struct settings *s, struct err *e);

/* Set by SIGTERM/SIGINT once cmd_catch_stop_signals() ran: stop claiming, finish the batch
 * in hand, exit. (As process 1 of a container, a process without such a handler would not
 * even see SIGTERM.) */
extern volatile sig_atomic_t cmd_stop_requested;
void cmd_catch_stop_signals(void);

/* Logs e and returns its exit status. */
int cmd_fail(const char *what, const struct err *e);

/* Whether s looks like a UUID (the only form of id the commands accept). */
bool cmd_is_uuid(const char *s);

#endif
