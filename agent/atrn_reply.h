/*
 * atrn_reply - the pure parts of ODMR's ATRN (RFC 2645) on the site side.
 *
 * atrn_command() builds "ATRN d1,d2" (no CRLF) into out (reset first) from
 * the configured domains: each a plain hostname (domain_is_hostname; "@" and
 * "#" are ETRN forms, not ATRN syntax), lowercased, none twice (compared
 * without case), and the command with its CRLF within RFC 5321's 512 bytes.
 * Returns 0, or -1 with a static reason in *why and the index of the bad
 * domain in *bad (ndomains when the list as a whole is wrong: empty, too
 * long).
 *
 * atrn_reply_classify() maps the ATRN reply code to a verdict and a short
 * meaning: 250 "reversing the connection" and 453 "no mail waiting" are
 * ETRN_OK; 451 ("an ATRN or flush for the domain is already running") and
 * any other 4xx are ETRN_TEMP; 450 (a domain the user does not own), 530
 * (authentication required), 502 (no ATRN here) and any other 5xx are
 * ETRN_PERM; no reply or a code ATRN never gives is ETRN_TEMP.
 */
#ifndef ETRNKIT_ATRN_REPLY_H
#define ETRNKIT_ATRN_REPLY_H

#include <stddef.h>

#include "buf.h"
#include "etrn_reply.h"

#define ATRN_LINE_MAX 512 /* a command line with its CRLF (RFC 5321 4.5.3.1.4) */

int atrn_command(char *const *domains, size_t ndomains, struct buf *out, size_t *bad,
                 const char **why);
enum etrn_verdict atrn_reply_classify(int code, const char **meaning);

#endif
