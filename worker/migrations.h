/* migrations: the SQL files of migrations/, compiled in by cmake/embed.cmake. */
#ifndef WORKER_MIGRATIONS_H
#define WORKER_MIGRATIONS_H

#include "migrate.h"

extern const struct migration migrations_embedded[];
extern const unsigned migrations_embedded_count;

#endif
