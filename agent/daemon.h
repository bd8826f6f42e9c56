/*
 * daemon - etrn-agent's daemon mode: watch the link, run rounds, retry.
 *
 * daemon_run() judges the link at once and runs a round when it is up. Then
 * each rtnetlink event restarts a settle timer; the link is judged again
 * (linkwatch_probe) only after `settle` without events (at the latest 10 x
 * settle, 5 s minimum, after a burst began), so a flapping link gives one
 * round once it stays up. Down to up: a round with the link-up steps; while
 * up: a round every `interval` (0: none) and per-host retries on the backoff
 * schedule (backoff.h); down: every retry cancelled. SIGTERM/SIGINT stop
 * (after a round in progress); SIGHUP reopens a log file (logrotate) and
 * reloads config_path, keeping the old config on error. Owns and frees *conf; returns EXIT_OK after a signal,
 * EXIT_OSERR when netlink or the signal pipe cannot be set up.
 */
#ifndef ETRNKIT_DAEMON_H
#define ETRNKIT_DAEMON_H

#include "agent_config.h"

int daemon_run(const char *config_path, struct agent_config *conf);

#endif
