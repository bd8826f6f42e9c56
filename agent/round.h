/*
 * round - one ETRN round: every configured provider, every host, every domain.
 *
 * round_run() does, per provider: wait for local_smtp (once per round), run
 * on_link_up (once per round), resolve the hosts (fixed list or mx:), then one
 * SMTP session per host (etrn_session) with an ETRN per domain. Each host's
 * outcome is appended to the report and recorded in the caller's status
 * table (status.h), which is written to the status file unless keep_status;
 * the log gets each session. A filter, when given, limits the round to the hosts it accepts (the
 * daemon uses it to retry only the hosts that failed).
 *
 * round_exit_status() maps a report to etrn-agent --once's exit status:
 * EXIT_OK when every domain was accepted by every host, EXIT_UNAVAILABLE when
 * anything was refused permanently, else EXIT_TEMPFAIL.
 * The report owns its strings; round_report_free() releases them.
 */
#ifndef ETRNKIT_ROUND_H
#define ETRNKIT_ROUND_H

#include <stddef.h>

#include "agent_config.h"
#include "etrn_reply.h"

struct round_host {
    char *provider;
    char *host;                 /* as resolved: MX name or configured host */
    int port;
    enum etrn_verdict verdict;  /* worst of the session and its domains */
    int drained;                /* every domain answered 251 (nothing waiting) */
    int any_pending;            /* some domain answered 253 (more may follow) */
    char *summary;              /* the session in one line (error, replies); NULL: none */
};

struct round_report {
    struct round_host *hosts;
    size_t count;
    enum etrn_verdict worst;
};

struct round_options {
    int dry_run;                /* print what would be sent where; send nothing */
    int skip_link_up_steps;     /* do not wait for local_smtp nor run on_link_up */
    int keep_status;            /* record results but do not write the status file (the
                                   caller writes it after adding the next attempts) */
    /* retry filter: return nonzero to contact this host; NULL: all hosts */
    int (*filter)(void *ctx, const char *provider, const char *host, int port);
    void *filter_ctx;
};

struct status_table;

void round_run(const struct agent_config *conf, const struct round_options *opt,
               struct status_table *status, struct round_report *report);
int round_exit_status(const struct round_report *report);
void round_report_free(struct round_report *report);

#endif
