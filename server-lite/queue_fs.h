/*
 * queue_fs - the queue on disk (queue.h's interface; file format: queue_fs.c).
 *
 * queue_fs_open() opens (with create, makes) path/{incoming,active,deferred,
 * hold,corrupt,tmp,flush,public}; a directory that is a symbolic link or not a
 * directory is refused. queue_fs_open_owned() (as root, before the switch to
 * mail_owner) also makes what is missing, refuses a directory owned by anyone
 * but uid or root and gives each to uid:gid, reading nothing inside. Either
 * fills q; after a failure q holds the error text and queue_close(q) frees it.
 * Durability, all of it inside this backend: a message is written in tmp/ and
 * a commit writes its size, fsyncs it, renames (or, for a spare O_TMPFILE
 * file, links) it into incoming/ and fsyncs incoming/. Attached to an event
 * loop (queue_attach), commits run on nthreads threads that fsync several
 * files at once and fsync incoming/ once per batch (group commit), keep
 * spare unnamed files ready, recycle the files of deleted messages, and a
 * QUEUE_LATER delete fsyncs its directory SYNC_DELAY_MS later, once for all
 * (not attached: at once). queue_update pwrites a recipient record in place;
 * queue_settle fsyncs the file once for the updates since the load. The
 * retry time is the file's mtime. A move among incoming/, active/ and
 * deferred/ is not fsynced (a file keeps its recipient states in any
 * directory and recovery finds it in any of them, so a lost rename repeats a
 * step); a move into or out of hold/ or corrupt/ fsyncs both directories.
 * queue_recover empties tmp/, moves active/ to incoming/ and unreadable files
 * to corrupt/ (logged).
 */
#ifndef ETRNKIT_QUEUE_FS_H
#define ETRNKIT_QUEUE_FS_H

#include <sys/types.h>

#include "queue.h"

int queue_fs_open(struct queue *q, const char *path, int create);
int queue_fs_open_owned(struct queue *q, const char *path, uid_t uid, gid_t gid);

#endif
