/*
 * queue_ram - the queue in memory (queue.h's interface), for unit tests.
 *
 * queue_ram_open() fills q with an empty queue. Same semantics as the disk
 * queue, nothing durable: IDs are made of the arrival's microseconds and a
 * counter (so precise arrival times decode as they do on disk), the arrival
 * and the retry time of a committed message are clock_wall() at commit (the
 * clock seam moves them), a reason keeps its first QUEUE_REASON_MAX bytes
 * with bytes outside printable ASCII shown as '?' once stored, content comes
 * back through queue_open_content as an unnamed memory file (memfd) at
 * data_offset 0. queue_commit_async needs queue_attach: the message enters
 * incoming/ and fn runs from the next loop pass (or queue_drain), and no
 * walk sees it before. queue_walk calls fn in the order messages entered
 * the directory, over a copy of the IDs, so fn may move or delete them.
 * queue_settle, queue_sync and QUEUE_LATER have nothing to wait for.
 * queue_close frees every message.
 */
#ifndef ETRNKIT_QUEUE_RAM_H
#define ETRNKIT_QUEUE_RAM_H

#include "queue.h"

int queue_ram_open(struct queue *q);

#endif
