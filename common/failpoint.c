/* failpoint: test-only pause/crash points, driven by one environment variable. */
#include "failpoint.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define FP_MAX 8

struct fp {
    char name[48];
    long nth; /* 0 = every time */
    atomic_long hits;
    char action; /* 's'leep, 'k'ill, 'e'xit */
    long arg;
};

static struct fp points[FP_MAX];
static int npoints;

void
failpoint_init(const char *env_name)
{
    const char *spec = env_name != NULL ? getenv(env_name) : NULL;
    if (spec == NULL || *spec == '\0')
        return;
    char copy[512];
    snprintf(copy, sizeof copy, "%s", spec);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL && npoints < FP_MAX;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        struct fp *p = &points[npoints];
        char *hash = strchr(tok, '#');
        if (hash != NULL) {
            *hash = '\0';
            p->nth = strtol(hash + 1, NULL, 10);
        }
        snprintf(p->name, sizeof p->name, "%s", tok);
        const char *act = eq + 1;
        if (strncmp(act, "sleep(", 6) == 0) {
            p->action = 's';
            p->arg = strtol(act + 6, NULL, 10);
        } else if (strcmp(act, "kill") == 0) {
            p->action = 'k';
        } else if (strncmp(act, "exit(", 5) == 0) {
            p->action = 'e';
            p->arg = strtol(act + 5, NULL, 10);
        } else {
            continue;
        }
        atomic_init(&p->hits, 0);
        npoints++;
    }
}

void
failpoint(const char *name)
{
    for (int i = 0; i < npoints; i++) {
        struct fp *p = &points[i];
        if (strcmp(p->name, name) != 0)
            continue;
        long hit = atomic_fetch_add(&p->hits, 1) + 1;
        if (p->nth != 0 && hit != p->nth)
            continue;
        log_warn("failpoint", json_pack("{s:s,s:i}", "failpoint", name, "hit", (int)hit));
        switch (p->action) {
        case 's': {
            struct timespec ts = {p->arg / 1000, (p->arg % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0) {
            }
            break;
        }
        case 'k':
            raise(SIGKILL);
            break;
        case 'e':
            _exit((int)p->arg);
        }
    }
}
