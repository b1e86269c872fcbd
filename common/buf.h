/* buf: a growable byte buffer with a hard maximum and a sticky failure flag, so a builder
 * appends freely and checks once at the end (DYNBUF-style). Contents are always
 * NUL-terminated. */
#ifndef COMMON_BUF_H
#define COMMON_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
    char *data;  /* owned; NULL until the first append */
    size_t len;  /* bytes used, excluding the terminating NUL */
    size_t cap;  /* bytes allocated */
    size_t max;  /* hard limit on len; an append past it fails the buffer */
    bool failed; /* sticky: set by the first failed append, cleared only by buf_reset */
};

#define BUF_DEFAULT_MAX ((size_t)16 * 1024 * 1024)

/* Prepares an empty buffer limited to max bytes (0 means BUF_DEFAULT_MAX). */
void buf_init(struct buf *b, size_t max);

/* Appends; on overflow or out-of-memory the buffer frees its data and stays failed.
 * Every append returns false once the buffer has failed. */
bool buf_append(struct buf *b, const void *data, size_t len);
bool buf_puts(struct buf *b, const char *s);
bool buf_putc(struct buf *b, char c);
bool buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Empties the buffer and clears the failed flag; keeps the allocation. */
void buf_reset(struct buf *b);

/* The contents ("" when empty). Borrowed: valid until the next append or buf_free. */
const char *buf_str(const struct buf *b);

/* Hands the contents to the caller (new, free with free()) and leaves the buffer empty.
 * Returns NULL if the buffer failed. */
char *buf_steal(struct buf *b);

/* Frees the contents; NULL-safe. */
void buf_free(struct buf *b);

#endif
