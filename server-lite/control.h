/*
 * control - etrn-server's control socket, used by etrn-queue.
 *
 * control_new() makes the UNIX stream socket at path (queue_directory/public/
 * control): a stale socket is replaced, a live one (another server on this
 * queue) is an error; mode 0660, and chown'ed to owner:group when those are
 * not (uid_t) -1 (started as root). It never removes the socket on exit, so a
 * stopped server leaves "Connection refused", as Postfix does. Only root and
 * the server's own user (SO_PEERCRED, checked at accept) are served; others
 * get DENIED. Everything runs on base, non-blocking; at most
 * CONTROL_CLIENTS_MAX connections, each closed after CONTROL_TIMEOUT seconds.
 *
 * Protocol: the client sends one request line (LF-terminated, at most
 * CONTROL_LINE_MAX bytes) and reads until the server closes. The response is
 * zero or more body lines, then one status line "WORD text", then close.
 * WORD: OK | NOTFOUND (no such message) | NOTELIGIBLE (not in
 * fast_flush_domains) | DENIED (not root or the mail owner) | BADREQ (unknown
 * command, bad ID or domain) | ERROR (failed, may be retried).
 *   status             body: the text etrn-queue status prints (the queue
 *                      totals, the destinations and the ETRN tables)
 *   status json        body: one JSON line {"total":N,...,"etrn":[...]}
 *   flush-site DOMAIN  DOMAIN or @DOMAIN (its subdomains too); OK with the count
 *   flush-all          every deferred message now; OK with the count
 *   flush-id ID        one message now;  delete ID|ALL;  hold ID;  release ID
 *   reopen             open maillog_file again by name (after logrotate)
 * The operations come from the caller as function pointers (NULL: the
 * command answers ERROR "not available"), so this module needs no qmgr.
 * They return as the queue does: QUEUE_OK or a negative enum queue_status
 * (QUEUE_NOTFOUND, QUEUE_BADID, anything else a failure), and hand counts
 * back through out-parameters; flush_site is the smtpd ETRN hook and returns
 * its enum flush_result.
 */
#ifndef ETRNKIT_CONTROL_H
#define ETRNKIT_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include "flush.h"

#define CONTROL_LINE_MAX 512
#define CONTROL_CLIENTS_MAX 16
#define CONTROL_TIMEOUT 30

struct buf;
struct event_base;
struct control;

/* Every function gets the ctx given to control_new(). */
struct control_ops {
    /* the smtpd ETRN hook's contract (smtpd_etrn_fn) */
    enum flush_result (*flush_site)(void *ctx, const char *domain, int with_subdomains,
                                    const char *client, const char *user, size_t *pending);
    int (*flush_all)(void *ctx, size_t *scheduled);   /* QUEUE_OK */
    int (*flush_id)(void *ctx, const char *id);       /* QUEUE_NOTFOUND: not waiting */
    int (*delete_id)(void *ctx, const char *id);      /* "ALL" too */
    int (*hold)(void *ctx, const char *id);
    int (*release)(void *ctx, const char *id);
    int (*reopen_log)(void *ctx, int *reopened);      /* 0: no log file (syslog, stderr) */
    /* the status body: the tables as text, or one JSON object ("total" first) */
    int (*status)(void *ctx, int json, struct buf *out);
};

struct control *control_new(struct event_base *base, const char *path, uid_t owner, gid_t group,
                            const struct control_ops *ops, void *ctx, char *err, size_t errlen);
void control_free(struct control *c);

#endif
