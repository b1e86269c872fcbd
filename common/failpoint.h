/* failpoint: named points where a test can make the process pause or die, to prove crash
 * and race guarantees deterministically. Configured only through an environment variable
 * the program names, holding "name=action[,name=action...]", where action is sleep(MS),
 * kill (SIGKILL to itself) or exit(CODE). Unset, a failpoint costs one branch. */
#ifndef COMMON_FAILPOINT_H
#define COMMON_FAILPOINT_H

/* Reads the environment variable env_name once; call before starting threads. */
void failpoint_init(const char *env_name);

/* Runs the action configured for name, if any. Each point fires every time it is reached;
 * "name#N=action" fires only on the N-th time (1-based). */
void failpoint(const char *name);

#endif
