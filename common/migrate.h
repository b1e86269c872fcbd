/* migrate: applies numbered SQL migrations in order, each once and in its own transaction,
 * under an advisory lock, recording each in a table of its own. */
#ifndef COMMON_MIGRATE_H
#define COMMON_MIGRATE_H

#include "db.h"
#include "err.h"

struct migration {
    const char *name; /* "0001_smplat_base": sorts in application order */
    const char *sql;  /* the whole script */
};

/* Applies every migration of list[0..n) that the table `table` does not record yet (and
 * creates that table). Each migration's transaction first takes
 * pg_advisory_xact_lock(lock_key), so concurrent runs serialise; no session state is
 * used, so it is safe through a transaction-pooling pooler. Sets *applied
 * to the number applied now. A migration that fails is rolled back and stops the run. */
int migrate_apply(struct db *db, const char *table, long long lock_key,
                  const struct migration *list, unsigned n, unsigned *applied, struct err *e);

/* Number of migrations of list[0..n) not yet recorded (0 when the schema is current). */
int migrate_pending(struct db *db, const char *table, const struct migration *list, unsigned n,
                    unsigned *pending, struct err *e);

#endif
