/* addr: the one syntax check of an email address (RFC 5321 §4.1.2 Mailbox, restricted to
 * what every module that takes one can carry): an envelope, a header, a setting. */
#ifndef COMMON_ADDR_H
#define COMMON_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/* Flags of addr_valid. */
#define ADDR_LITERAL 1u /* accept an address literal as the domain: a@[192.0.2.1], a@[IPv6:...] */

/* Whether s is a mailbox we are willing to put in an envelope and a header: no controls,
 * spaces or angle brackets, one '@', an ASCII dot-atom local part of 1 to 64 octets, at most
 * 254 octets in all, and a domain as addr_domain_valid (or, with ADDR_LITERAL, an IPv4 or
 * IPv6 address literal). Quoted local parts and non-ASCII (SMTPUTF8) are refused. */
bool addr_valid(const char *s, unsigned flags);

/* Whether d[0..len) is an address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]". */
bool addr_literal_valid(const char *d, size_t len);

/* Whether d[0..len) is a host name: labels of 1 to 63 letters, digits and hyphens, none
 * starting or ending with a hyphen, joined by single dots, at most 253 octets. A single label
 * ("localhost") is accepted; a trailing dot or an all-numeric last label ("1.2.3.4", which
 * is an address, not a name) is not. */
bool addr_domain_valid(const char *d, size_t len);

#endif
