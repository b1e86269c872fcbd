/* addr: email address syntax, ASCII only whatever the locale (<ctype.h> would let Latin-1
 * letters through). */
#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static bool
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c);
}

/* RFC 5322 §3.2.3 atext. */
static bool
is_atext(unsigned char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

bool
addr_domain_valid(const char *d, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    size_t label = 0;
    bool all_digits = true;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)d[i] : '.';
        if (c == '.') {
            if (label == 0 || label > 63 || d[i - 1] == '-')
                return false;
            if (i == len && all_digits)
                return false; /* "a@1.2.3.4" is not a domain; use "[1.2.3.4]" */
            label = 0;
            all_digits = true;
            continue;
        }
        if (!is_alnum(c) && c != '-')
            return false;
        if (label == 0 && c == '-')
            return false;
        if (!is_digit(c))
            all_digits = false;
        label++;
    }
    return true;
}

bool
addr_literal_valid(const char *d, size_t len)
{
    char buf[64];
    if (len < 3 || len - 2 >= sizeof buf || d[0] != '[' || d[len - 1] != ']')
        return false;
    memcpy(buf, d + 1, len - 2);
    buf[len - 2] = '\0';
    unsigned char addr[sizeof(struct in6_addr)];
    if (strncasecmp(buf, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, buf + 5, addr) == 1;
    return inet_pton(AF_INET, buf, addr) == 1;
}

bool
addr_valid(const char *s, unsigned flags)
{
    if (s == NULL)
        return false;
    size_t len = strlen(s);
    if (len == 0 || len > 254)
        return false;
    const char *at = strchr(s, '@');
    if (at == NULL || strchr(at + 1, '@') != NULL)
        return false;
    size_t local = (size_t)(at - s);
    if (local == 0 || local > 64 || s[0] == '.' || s[local - 1] == '.')
        return false;
    for (size_t i = 0; i < local; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!is_atext(c)) {
            return false;
        }
    }
    const char *d = at + 1;
    size_t dlen = len - local - 1;
    if (dlen > 0 && d[0] == '[')
        return (flags & ADDR_LITERAL) != 0 && addr_literal_valid(d, dlen);
    return addr_domain_valid(d, dlen);
}
