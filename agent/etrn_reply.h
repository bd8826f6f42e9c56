/*
 * etrn_reply - judge ETRN replies by RFC 1985.
 *
 * etrn_reply_classify() maps a reply code to a verdict and a short meaning:
 * 250 "queuing started", 251 "no messages waiting", 252 "pending messages
 * started", 253 "pending messages started" are ETRN_OK; 458 and any other
 * 4xx are ETRN_TEMP; 459, 500, 501 and any other 5xx are ETRN_PERM; anything
 * else (no reply, 2xx/3xx that ETRN never gives) is ETRN_TEMP.
 * etrn_reply_pending() extracts N from a 253 text "OK, N pending messages
 * for node X started", or -1. Pure functions.
 */
#ifndef ETRNKIT_ETRN_REPLY_H
#define ETRNKIT_ETRN_REPLY_H

enum etrn_verdict { ETRN_OK = 0, ETRN_TEMP = 1, ETRN_PERM = 2 };

enum etrn_verdict etrn_reply_classify(int code, const char **meaning);
long etrn_reply_pending(const char *text);
const char *etrn_verdict_name(enum etrn_verdict verdict);

#endif
