/* cmd: one entry point per command. Each returns a process exit status (SPEC §5). */
#ifndef WORKER_CMD_H
#define WORKER_CMD_H

#include "db.h"
#include "err.h"
#include "settings.h"

int cmd_migrate(const struct settings *s, int argc, char **argv);
int cmd_sweep(const struct settings *s, int argc, char **argv);
int cmd_status(const struct settings *s, int argc, char **argv);
int cmd_check_config(const struct settings *s, int argc, char **argv);

/* Shared by the commands: connect with the configured retries (new; db_close), session in
 * UTC so timestamps print the same everywhere. When require_schema, fails with ERR_CONFIG if
 * migrations are pending. */
struct db *cmd_connect(const struct settings *s, bool require_schema, struct err *e);

/* Logs e and returns its exit status. */
int cmd_fail(const char *what, const struct err *e);

/* Whether s looks like a UUID (the only form of id the commands accept). */
bool cmd_is_uuid(const char *s);

#endif
