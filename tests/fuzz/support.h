/*
 * support - what every fuzz harness needs around the code under test.
 * support_init() sends the log to /dev/null (formatting still runs) and
 * makes one private temporary directory per process (under $TMPDIR, else
 * /dev/shm, else /tmp), removed with everything in it at exit;
 * support_dir() returns it. support_path() joins it with a relative name
 * into a static buffer (valid until the next call). support_write() writes
 * a whole file (created or truncated, given mode); support_mkdir() makes a
 * directory under it. support_server_config() writes a server-lite.ini
 * for a queue in support_path("queue") (myhostname fuzz.test, mynetworks
 * 127.0.0.0/8, relay_domains example.org example.net, fast_flush_domains
 * $relay_domains, smtpd_peername_lookup = no: no DNS query ever leaves) plus
 * the caller's extra [main] lines and sections, and
 * loads it into conf. All abort on failure: a harness that cannot set up
 * is broken, not the code it tests.
 */
#ifndef ETRNKIT_FUZZ_SUPPORT_H
#define ETRNKIT_FUZZ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

void support_init(const char *name);
const char *support_dir(void);
const char *support_path(const char *rel);
void support_write(const char *path, const void *data, size_t len, mode_t mode);
void support_mkdir(const char *rel);

struct server_config;
void support_server_config(const char *extra_main, const char *sections,
                           struct server_config *conf);

/* libFuzzer's entry points, declared for -Wmissing-prototypes */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
