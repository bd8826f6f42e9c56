/*
 * etrn-queue - operator CLI for etrn-server's queue.
 *
 * This build handles "-p" (list the queue in Postfix mailq format), which
 * reads queue_directory directly and so works with or without a running
 * server. The flush, delete, hold and status commands go through the
 * control socket of etrn-server and are refused here with a usage message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "exitcode.h"
#include "queue.h"
#include "server_config.h"

#define DEFAULT_CONFIG "/etc/etrnkit/server-lite.ini"

/* usage - the command line this build understands */
static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: etrn-queue [-c FILE] -p\n"
                    "  -c FILE   server configuration (default " DEFAULT_CONFIG ")\n"
                    "  -p        list the queue (mailq format)\n");
    exit(EXIT_USAGE);
}

/* list_queue - print the mailq listing of the configured queue */
static int list_queue(const char *queue_directory)
{
    struct queue q;
    struct buf out = BUF_INIT;
    int rc;

    if (queue_open(&q, queue_directory, 0) != QUEUE_OK) {
        fprintf(stderr, "etrn-queue: %s\n", queue_error(&q));
        queue_close(&q);
        return EXIT_IOERR;
    }
    rc = queue_list(&q, &out);
    if (rc != QUEUE_OK) {
        fprintf(stderr, "etrn-queue: %s\n", queue_error(&q));
        queue_close(&q);
        buf_free(&out);
        return EXIT_IOERR;
    }
    queue_close(&q);
    if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
        perror("etrn-queue: write");
        buf_free(&out);
        return EXIT_IOERR;
    }
    buf_free(&out);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    const char *config = DEFAULT_CONFIG;
    struct server_config conf;
    struct cfg_error err;
    int opt, list = 0, rc;

    while ((opt = getopt(argc, argv, "c:p")) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'p':
            list = 1;
            break;
        default:
            usage();
        }
    }
    if (!list || optind != argc)
        usage();
    if (server_config_load(config, &conf, &err) != 0) {
        fprintf(stderr, "etrn-queue: %s\n", err.msg);
        return EXIT_CONFIG;
    }
    rc = list_queue(conf.queue_directory);
    server_config_free(&conf);
    return rc;
}
