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
 *   status             body: one JSON line {"total":N,...,"etrn":[...]}
 *   flush-site DOMAIN  DOMAIN or @DOMAIN (its subdomains too); OK with the count
 *   flush-all          every deferred message now; OK with the count
 *   flush-id ID        one message now;  delete ID|ALL;  hold ID;  release ID
 *   reopen             open maillog_file again by name (after logrotate)
 * The operations come from the caller as function pointers (NULL: the
 * command answers ERROR "not available"), so this module needs no qmgr.
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
    size_t (*flush_all)(void *ctx);                  /* how many were scheduled */
    int (*flush_id)(void *ctx, const char *id);      /* 1 scheduled, 0 not waiting, <0 error */
    int (*delete_id)(void *ctx, const char *id);     /* "ALL" too; QUEUE_OK or queue status */
    int (*hold)(void *ctx, const char *id);          /* QUEUE_OK, QUEUE_NOTFOUND, ... */
    int (*release)(void *ctx, const char *id);
    void (*status_json)(void *ctx, struct buf *out); /* JSON members, "total" first */
    void (*flush_status_json)(void *ctx, struct buf *out); /* the "etrn" member */
    int (*reopen_log)(void *ctx);   /* 1 reopened, 0 no log file (syslog, stderr), -1 failed */
};

struct control *control_new(struct event_base *base, const char *path, uid_t owner, gid_t group,
                            const struct control_ops *ops, void *ctx, char *err, size_t errlen);
void control_free(struct control *c);

#endif
