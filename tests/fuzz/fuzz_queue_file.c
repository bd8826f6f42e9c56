/*
 * fuzz_queue_file - the queue file loader (queue.c) on a file in a private
 * queue directory. Input: the whole file, stored as incoming/ID. Checks:
 * queue_load() either refuses it (QUEUE_CORRUPT, nothing leaked) or returns
 * an envelope whose sender, client and recipients hold no control
 * characters (an address with CR LF would reach the wire in RCPT TO and a
 * bounce's header; a reason may, it is masked when shown) and whose content fits
 * the file; queue_list() (etrn-queue -p) reads it without trouble; marking
 * each recipient delivered in place (queue_update) leaves a file that
 * loads again with the same recipients, now all delivered, and the same
 * content offset: the fixed-width update never spills into a neighbour.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "queue.h"
#include "queue_fs.h"
#include "support.h"

#define ID "0123456789ABCDEF"

static struct queue q;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    support_init("queue_file");
    if (queue_fs_open(&q, support_path("queue"), 1) != QUEUE_OK)
        abort();
    return 0;
}

/* printable - no control characters: the format promises none in header values */
static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char) *s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* check_msg - what the qmgr, the smtp client and the bounce code rely on */
static void check_msg(const struct queue_msg *m, off_t file_size)
{
    if (m->nrcpt < 1 || m->sender == NULL || m->client == NULL)
        abort();
    if (!printable(m->sender) || !printable(m->client))
        abort();
    if (m->data_offset < 0 || m->size < 0 || m->data_offset + m->size != file_size)
        abort();
    for (size_t i = 0; i < m->nrcpt; i++) {
        const struct queue_rcpt *r = &m->rcpts[i];

        if (r->address == NULL || r->address[0] == 0 || !printable(r->address))
            abort();
        if (r->state != QUEUE_RCPT_PENDING && r->state != QUEUE_RCPT_DELIVERED
            && r->state != QUEUE_RCPT_BOUNCED)
            abort();
        if (strlen(r->dsn) > QUEUE_DSN_MAX || strlen(r->reason) > QUEUE_REASON_MAX)
            abort();
        if (r->offset <= 0 || r->offset >= m->data_offset)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct queue_msg m, again;
    struct buf out = BUF_INIT;
    char path[600];
    int fd;

    if (size > 1 << 20)
        return 0;
    snprintf(path, sizeof(path), "%s/incoming/" ID, support_path("queue"));
    support_write(path, data, size, 0600);
    if (queue_load(&q, QUEUE_INCOMING, ID, &m) == QUEUE_OK) {
        check_msg(&m, (off_t) size);
        fd = queue_open_content(&q, &m);
        if (fd < 0)
            abort();
        close(fd);
        for (size_t i = 0; i < m.nrcpt; i++)
            if (queue_update(&q, &m, i, QUEUE_RCPT_DELIVERED, "2.0.0", "delivered\tok") != QUEUE_OK)
                abort();
        if (queue_load(&q, QUEUE_INCOMING, ID, &again) != QUEUE_OK)
            abort();
        check_msg(&again, (off_t) size);
        if (again.nrcpt != m.nrcpt || again.data_offset != m.data_offset || again.size != m.size
            || strcmp(again.sender, m.sender) != 0)
            abort();
        for (size_t i = 0; i < m.nrcpt; i++)
            if (again.rcpts[i].state != QUEUE_RCPT_DELIVERED
                || strcmp(again.rcpts[i].address, m.rcpts[i].address) != 0
                || strcmp(again.rcpts[i].dsn, "2.0.0") != 0)
                abort();
        queue_msg_free(&again);
        queue_msg_free(&m);
    }
    support_write(path, data, size, 0600);
    (void) queue_list(&q, &out);
    buf_free(&out);
    if (unlink(path) != 0)
        abort();
    return 0;
}
