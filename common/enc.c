/* enc: base64 over OpenSSL's EVP_EncodeBlock and EVP_DecodeBlock, translated to and from the
 * URL-safe alphabet where asked; percent-encoding. */
#include "enc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* Bytes encoded per EVP_EncodeBlock call in enc_base64_put: a multiple of 3, so only the last
 * chunk can carry padding. */
#define PUT_CHUNK 768

/* Rewrites standard base64 in place as URL-safe, dropping the padding; returns the new
 * length. */
static size_t
to_url(char *s, size_t n)
{
    while (n > 0 && s[n - 1] == '=')
        n--;
    s[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+')
            s[i] = '-';
        else if (s[i] == '/')
            s[i] = '_';
    }
    return n;
}

size_t
enc_base64(char *dst, const void *src, size_t n, unsigned flags)
{
    size_t len = 0;
    /* EVP_EncodeBlock counts in int: feed it whole groups of 3 within that range. */
    const unsigned char *p = src;
    while (n > 0) {
        size_t take = n <= (size_t)INT_MAX / 4 * 3 ? n : (size_t)INT_MAX / 4 * 3;
        len += (size_t)EVP_EncodeBlock((unsigned char *)dst + len, p, (int)take);
        p += take;
        n -= take;
    }
    dst[len] = '\0';
    return (flags & ENC_BASE64_URL) != 0 ? to_url(dst, len) : len;
}

bool
enc_base64_put(struct buf *out, const void *src, size_t n, unsigned flags)
{
    char chunk[ENC_BASE64_SIZE(PUT_CHUNK)];
    const unsigned char *p = src;
    bool ok = !out->failed;
    while (n > 0 && ok) {
        size_t take = n < PUT_CHUNK ? n : PUT_CHUNK;
        size_t len = enc_base64(chunk, p, take, flags);
        ok = buf_append(out, chunk, len);
        p += take;
        n -= take;
    }
    return ok;
}

static bool
in_alphabet(unsigned char c, bool url)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    return url ? c == '-' || c == '_' : c == '+' || c == '/';
}

bool
enc_base64_decode(const char *s, size_t n, unsigned flags, unsigned char *out, size_t cap,
                  size_t *out_len)
{
    bool url = (flags & ENC_BASE64_URL) != 0;
    size_t pad = 0;
    if (url) {
        if (n % 4 == 1)
            return false;
        pad = (4 - n % 4) % 4;
    } else {
        if (n % 4 != 0)
            return false;
        while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
            pad++;
    }
    size_t text = url ? n : n - pad; /* characters before any padding */
    for (size_t i = 0; i < text; i++)
        if (!in_alphabet((unsigned char)s[i], url))
            return false;
    size_t padded = n + (url ? pad : 0);
    size_t len = padded / 4 * 3 - pad;
    if (len > cap || padded > (size_t)INT_MAX)
        return false;

    /* EVP_DecodeBlock wants the standard alphabet, padded, and writes whole groups of 3
     * (the padding's zero bytes included); it leaves unused bits unchecked, so the result
     * is encoded again and must give back s. */
    char *std = malloc(padded + 1);
    unsigned char *raw = malloc(padded / 4 * 3 + 1);
    bool ok = std != NULL && raw != NULL;
    if (ok) {
        memcpy(std, s, n);
        for (size_t i = 0; url && i < n; i++) {
            if (std[i] == '-')
                std[i] = '+';
            else if (std[i] == '_')
                std[i] = '/';
        }
        memset(std + n, '=', padded - n);
        ok = EVP_DecodeBlock(raw, (const unsigned char *)std, (int)padded) == (int)(padded / 4 * 3);
    }
    if (ok)
        ok = enc_base64(std, raw, len, flags) == n && memcmp(std, s, n) == 0;
    if (ok) {
        memcpy(out, raw, len);
        *out_len = len;
    }
    free(std);
    free(raw);
    return ok;
}

bool
enc_percent_put(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        bool unreserved = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                          (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
                          *p == '~';
        if (unreserved) {
            buf_putc(out, (char)*p);
        } else {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_append(out, enc, sizeof enc);
        }
    }
    return !out->failed;
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t
enc_percent_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++, len++) {
        char c = s[i];
        int hi = c == '%' && i + 2 < n ? hex_value(s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
        if (lo >= 0) {
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (len < cap)
            out[len] = c;
    }
    return len;
}
