/*
 * anvil - per-client-address accounting for smtpd, as Postfix's anvil(8)
 * does it, but inside the server process (one event loop: no locking).
 *
 * anvil_new(unit_ms) makes an empty table; rates count events in fixed
 * windows of unit_ms (anvil_rate_time_unit), anvil_set_unit() changes it
 * on reload. For one client address (its text, e.g. "192.0.2.1" or
 * "2001:db8::1", at most ANVIL_ADDR_MAX bytes with the NUL; longer is cut):
 * - anvil_connect() counts a new session and returns how many sessions
 *   that address now has open (this one included); *rate gets the
 *   connections in the current window. Every anvil_connect() needs one
 *   anvil_disconnect(), also for a session refused at once.
 * - anvil_event() counts one AUTH or ETRN command and returns the count in
 *   the current window (this one included).
 * - anvil_fail() counts one AUTH failure and returns the failures so far;
 *   they are forgotten once a whole unit passes without a new failure.
 *   anvil_failures() reads that count without changing it.
 * An address with no open session whose counters all expired is dropped.
 * The table holds at most ANVIL_MAX_CLIENTS addresses without an open
 * session; past that the least recently seen one is forgotten early.
 * Nothing here fails: allocation aborts (xmalloc). anvil_free(NULL) is fine.
 */
#ifndef ETRNKIT_ANVIL_H
#define ETRNKIT_ANVIL_H

#include <stddef.h>

#define ANVIL_MAX_CLIENTS 65536
#define ANVIL_ADDR_MAX 46     /* INET6_ADDRSTRLEN */

enum anvil_event { ANVIL_AUTH, ANVIL_ETRN, ANVIL_NEVENTS };

struct anvil;

struct anvil *anvil_new(long long unit_ms);
void anvil_set_unit(struct anvil *a, long long unit_ms);
unsigned anvil_connect(struct anvil *a, const char *addr, long long now_ms,
                       unsigned *rate);
void anvil_disconnect(struct anvil *a, const char *addr, long long now_ms);
unsigned anvil_event(struct anvil *a, enum anvil_event ev, const char *addr,
                     long long now_ms);
unsigned anvil_fail(struct anvil *a, const char *addr, long long now_ms);
unsigned anvil_failures(struct anvil *a, const char *addr, long long now_ms);
size_t anvil_clients(const struct anvil *a);
void anvil_free(struct anvil *a);

#endif
