/* clock: the monotonic clock in milliseconds, for deadlines and durations, and the wall
 * clock in seconds, for timestamps that leave the process (metrics). */
#ifndef COMMON_CLOCK_H
#define COMMON_CLOCK_H

long long clock_mono_ms(void);

/* Seconds since the Unix epoch, with the fraction. */
double clock_wall_s(void);

#endif
