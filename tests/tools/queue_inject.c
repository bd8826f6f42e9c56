/*
 * queue_inject - put a message into an etrn-server queue through the queue API.
 *
 *   queue_inject -q DIR -f SENDER [-c CLIENT] [-m incoming|active|deferred|hold]
 *                [-R IDX:STATE:DSN:REASON]... RCPT... < content
 *
 * Creates DIR's subdirectories if missing, commits the message from standard
 * input, moves it to the -m directory, applies each -R (STATE is P, D or B),
 * and prints "ID ARRIVAL" (arrival in seconds since the epoch).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue.h"
#include "queue_fs.h"

/* die - print and exit */
static _Noreturn void die(const char *what, struct queue *q)
{
    fprintf(stderr, "queue_inject: %s: %s\n", what, q ? queue_error(q) : "");
    exit(1);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *sender = NULL, *client = "localhost[127.0.0.1]";
    enum queue_dir to = QUEUE_INCOMING;
    char *marks[64];
    size_t nmarks = 0;
    struct queue q;
    struct queue_file qf;
    struct queue_msg msg;
    char block[8192];
    size_t n;
    int opt;

    while ((opt = getopt(argc, argv, "q:f:c:m:R:")) != -1) {
        switch (opt) {
        case 'q': dir = optarg; break;
        case 'f': sender = optarg; break;
        case 'c': client = optarg; break;
        case 'm':
            for (to = 0; to < QUEUE_NDIRS && strcmp(optarg, queue_dir_name(to)) != 0; to++)
                ;
            if (to == QUEUE_NDIRS)
                die("unknown directory for -m", NULL);
            break;
        case 'R':
            if (nmarks == 64)
                die("too many -R", NULL);
            marks[nmarks++] = optarg;
            break;
        default:
            fprintf(stderr, "usage: queue_inject -q DIR -f SENDER [-c CLIENT] [-m DIR] "
                            "[-R IDX:STATE:DSN:REASON]... RCPT...\n");
            return 2;
        }
    }
    if (dir == NULL || sender == NULL || optind >= argc)
        die("need -q, -f and at least one recipient", NULL);
    if (queue_fs_open(&q, dir, 1) != QUEUE_OK)
        die("open", &q);
    if (queue_create(&q, sender, client, (const char *const *) argv + optind,
                     (size_t) (argc - optind), &qf) != QUEUE_OK)
        die("create", &q);
    while ((n = fread(block, 1, sizeof(block), stdin)) > 0)
        if (queue_write(&qf, block, n) != QUEUE_OK)
            die("write", &q);
    if (ferror(stdin) || queue_commit(&qf) != QUEUE_OK)
        die("commit", &q);
    if (to != QUEUE_INCOMING && queue_move(&q, qf.id, QUEUE_INCOMING, to) != QUEUE_OK)
        die("move", &q);
    for (size_t i = 0; i < nmarks; i++) {
        char *idx = marks[i], *state = strchr(idx, ':'), *dsn, *reason;

        if (state == NULL || (dsn = strchr(state + 1, ':')) == NULL
            || (reason = strchr(dsn + 1, ':')) == NULL)
            die("-R wants IDX:STATE:DSN:REASON", NULL);
        *state++ = 0;
        *dsn++ = 0;
        *reason++ = 0;
        if (queue_mark_recipient(&q, to, qf.id, (size_t) atoi(idx), (enum queue_rcpt_state) state[0],
                                 dsn, reason) != QUEUE_OK)
            die("mark", &q);
    }
    if (queue_load(&q, to, qf.id, &msg) != QUEUE_OK)
        die("load", &q);
    printf("%s %lld\n", msg.id, (long long) msg.arrival);
    queue_msg_free(&msg);
    queue_close(&q);
    return fflush(stdout) == 0 ? 0 : 1;
}
