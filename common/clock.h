/* clock: the monotonic clock in milliseconds, for deadlines and durations (never for
 * timestamps that leave the process). */
#ifndef COMMON_CLOCK_H
#define COMMON_CLOCK_H

long long clock_mono_ms(void);

#endif
