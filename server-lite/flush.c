/*
 * Flush logs (the fast ETRN index), format and rules.
 *
 * One file per destination: queue_directory/flush/NAME, where NAME is the
 * destination lower-cased after domain_is_hostname() accepted it. A valid
 * hostname holds only [a-z0-9.-], never starts with '.' or '-', and is at most
 * 253 bytes, so the mapping is the identity on lower-case hostnames: two
 * domains never share a file ("a-b.example" and "a.b.example" stay apart), the
 * file name gives the domain back, and no other text (address literals, "..",
 * '/', NUL, UTF-8) ever becomes a path. A file in flush/ whose name is not a
 * lower-case hostname is ignored with a warning.
 *
 * Content: append-only lines, read in order: "QUEUEID\n" adds an ID, "-QUEUEID\n"
 * (a tombstone) drops it. An ID is appended when it is first noted for the
 * destination (a repeat deferral appends nothing); a drop appends a tombstone,
 * so the file says what memory says, also after kill -9. A log whose file holds
 * more than twice its live IDs plus 64 lines, or only tombstones, or garbage,
 * is rewritten with its live IDs by the maintenance pass (written to
 * queue_directory/tmp/, fsync'ed, renamed over the log); the refresh and
 * flush_forget("ALL") rewrite the logs they changed. Lines that are neither
 * are skipped with a warning; duplicates collapse; an unterminated last line
 * is repaired at load. No fsync on append: logs are hints. A stale ID is
 * skipped by a flush (the deliver callback returns 0 and the ID is dropped).
 *
 * In memory: destination -> hash set of IDs, so flush_request() answers in O(1)
 * and the moving happens later from the event loop, in batches of at most
 * FLUSH_BATCH_MAX IDs or FLUSH_BATCH_MS milliseconds. A refresh (10 s after
 * open, then every fast_flush_refresh_time) walks deferred/ in such batches,
 * adds every pending recipient's eligible domain, then drops IDs that are in
 * no message directory any more. Empty logs are purged after
 * fast_flush_purge_time.
 */
#define LOG_SERVICE "flush" /* its log lines: syslog_name/flush[pid] */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "domain.h"
#include "fileio.h"
#include "htable.h"
#include "flush.h"
#include "timefmt.h"
#include "log.h"
#include "loop.h"
#include "queue.h"
#include "server_config.h"

#define FLUSH_BATCH_MAX 256      /* IDs per event-loop turn */
#define FLUSH_BATCH_MS 5         /* time per event-loop turn */
#define FLUSH_FIRST_REFRESH 10   /* seconds after open */
#define FLUSH_MAINT_MAX 10       /* seconds between maintenance passes */
#define FLUSH_LOG_MAX (64L << 20) /* a log larger than this is cut (with a warning) */
#define FLUSH_CLIENT_MAX 128

typedef char flush_id_t[QUEUE_ID_MAX + 1];

/* one queued ID of a site (common/htable value, the ID is the key) */
struct id_entry {
    unsigned gen;              /* refresh generation that last confirmed it */
};

struct id_set {
    struct htable *t;          /* ID -> struct id_entry; NULL while empty */
    size_t used;
};

struct site {
    char name[DOMAIN_MAX + 1];
    struct id_set ids;
    size_t file_lines;         /* lines in the file, live or not */
    int garbage;               /* the file held lines that are not IDs */
    time_t empty_since;        /* 0 while IDs are waiting */
    time_t last_etrn;
    char client[FLUSH_CLIENT_MAX];
    char user[FLUSH_CLIENT_MAX];
    int running;               /* a flush is queued or in progress */
    flush_id_t *run_ids;       /* snapshot taken at the first batch */
    size_t run_count, run_pos, run_started, run_stale, run_failed;
    STAILQ_ENTRY(site) run;    /* on the run queue while running */
    LIST_ENTRY(site) link;     /* every site */
};

enum refresh_phase { REFRESH_IDLE, REFRESH_WALK, REFRESH_SWEEP };

struct flush {
    struct event_base *base;
    const struct server_config *conf;
    struct queue *q;
    char *dir;                 /* queue_directory/flush, for messages */
    int flushfd, tmpfd;
    struct htable *table;      /* name -> struct site */
    LIST_HEAD(, site) sites;   /* every site */
    size_t nsites;
    STAILQ_HEAD(, site) runq;  /* sites with a flush queued or running, oldest first */
    struct event *run_ev, *refresh_ev, *step_ev, *maint_ev;
    flush_deliver_fn deliver;
    void *deliver_ctx;
    enum refresh_phase phase;
    unsigned gen;
    char (*walk_ids)[QUEUE_ID_MAX + 1]; /* refresh: deferred/ as it was at the start */
    size_t walk_n, walk_pos, walk_cap;
    struct site *sweep;
    size_t walk_added, walk_dropped, walk_msgs;
    unsigned long tmp_counter;
    long long refresh_secs;    /* fast_flush_refresh_time the timer was armed with */
};

/* id_find - the entry of id, or NULL */
static struct id_entry *id_find(const struct id_set *set, const char *id)
{
    return set->t ? htable_find(set->t, id) : NULL;
}

/* id_set_add - insert id (1) or refresh its generation (0) */
static int id_set_add(struct id_set *set, const char *id, unsigned gen)
{
    struct id_entry *e = id_find(set, id);

    if (e) {
        e->gen = gen;
        return 0;
    }
    if (set->t == NULL)
        set->t = htable_new(16);
    e = xmalloc(sizeof(*e));
    e->gen = gen;
    htable_insert(set->t, id, e);
    set->used++;
    return 1;
}

/* id_set_del - remove id; 1 if it was there */
static int id_set_del(struct id_set *set, const char *id)
{
    struct id_entry *e = set->t ? htable_remove(set->t, id) : NULL;

    if (e == NULL)
        return 0;
    free(e);
    set->used--;
    return 1;
}

/* id_set_clear - forget every ID */
static void id_set_clear(struct id_set *set)
{
    htable_free(set->t, free);
    set->t = NULL;
    set->used = 0;
}

/* id_list - the IDs of a set, in an array of n the caller frees (htable_walk order) */
struct id_list {
    flush_id_t *ids;
    size_t n;
};

static void id_list_one(void *ctx, const char *key, void *value)
{
    struct id_list *l = ctx;

    (void) value;
    snprintf(l->ids[l->n++], sizeof(flush_id_t), "%s", key);
}

static flush_id_t *id_list(const struct id_set *set, size_t *n)
{
    struct id_list l = { xreallocarray(NULL, set->used ? set->used : 1, sizeof(flush_id_t)), 0 };

    if (set->t)
        htable_walk(set->t, id_list_one, &l);
    *n = l.n;
    return l.ids;
}

/* flush_file_name - the log file name of a domain: the lower-cased hostname */
int flush_file_name(const char *domain, char *out, size_t outlen)
{
    size_t n;

    if (domain == NULL || !domain_is_hostname(domain, NULL) || (n = strlen(domain)) >= outlen)
        return -1;
    memcpy(out, domain, n + 1);
    domain_lowercase(out);
    return 0;
}

/* site_find - the site of a lower-cased name, or NULL */
static struct site *site_find(const struct flush *f, const char *name)
{
    return htable_find(f->table, name);
}

/* site_get - the site of a lower-cased, validated name; made when missing */
static struct site *site_get(struct flush *f, const char *name)
{
    struct site *s = site_find(f, name);

    if (s)
        return s;
    s = xcalloc(1, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->empty_since = clock_wall_sec();
    htable_insert(f->table, s->name, s);
    LIST_INSERT_HEAD(&f->sites, s, link);
    f->nsites++;
    return s;
}

/* site_free - release one site's memory */
static void site_free(struct site *s)
{
    id_set_clear(&s->ids);
    free(s->run_ids);
    free(s);
}

/* site_remove - take a site out of the table and the list and free it */
static void site_remove(struct flush *f, struct site *s)
{
    htable_remove(f->table, s->name);
    LIST_REMOVE(s, link);
    f->nsites--;
    site_free(s);
}

/* log_append - add one line ("ID" or "-ID") to a site's log (a hint: failures only warn) */
static void log_append(struct flush *f, struct site *s, const char *prefix, const char *id)
{
    char line[QUEUE_ID_MAX + 3];
    int n = snprintf(line, sizeof(line), "%s%s\n", prefix, id);
    int fd = openat(f->flushfd, s->name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0) {
        log_warn("flush: open %s/%s: %s", f->dir, s->name, strerror(errno));
        return;
    }
    if (write(fd, line, (size_t) n) != n)
        log_warn("flush: write %s/%s: %s", f->dir, s->name, errno ? strerror(errno) : "short write");
    else
        s->file_lines++;
    if (close(fd) != 0)
        log_warn("flush: close %s/%s: %s", f->dir, s->name, strerror(errno));
}

/* log_rewrite - replace a site's log with its live IDs (tmp/, fsync, rename) */
static int log_rewrite(struct flush *f, struct site *s)
{
    struct buf b = BUF_INIT;
    char tmp[64];
    const char *step;
    size_t n;
    flush_id_t *ids = id_list(&s->ids, &n);
    int rc = 0;

    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "%s\n", ids[i]);
    free(ids);
    snprintf(tmp, sizeof(tmp), "flush.%ld.%lu", (long) getpid(), f->tmp_counter++);
    if (fileio_replace(f->tmpfd, tmp, f->flushfd, s->name, b.data ? b.data : "", b.len, 0600, 0,
                       &step) != 0) {
        log_warn("flush: %s tmp/%s for %s/%s: %s", step, tmp, f->dir, s->name, strerror(errno));
        rc = -1;
    } else {
        s->file_lines = s->ids.used;
        s->garbage = 0;
    }
    buf_free(&b);
    return rc;
}

/* needs_rewrite - the file holds much more than the live IDs, or garbage */
static int needs_rewrite(const struct site *s)
{
    return s->garbage || s->file_lines > 2 * s->ids.used + 64
        || (s->ids.used == 0 && s->file_lines > 0);
}

/* drop_id - forget id for a site and append its tombstone */
static int drop_id(struct flush *f, struct site *s, const char *id)
{
    if (!id_set_del(&s->ids, id))
        return 0;
    log_append(f, s, "-", id);
    if (s->ids.used == 0)
        s->empty_since = clock_wall_sec();
    return 1;
}

/* add_id - remember id for a site and append it to the log when new */
static void add_id(struct flush *f, struct site *s, const char *id)
{
    if (id_set_add(&s->ids, id, f->gen)) {
        log_append(f, s, "", id);
        s->empty_since = 0;
    }
}

/* eligible_name - a lower-cased hostname is in fast_flush_domains */
static int eligible_name(const struct flush *f, const char *name)
{
    return server_domain_match(&f->conf->fast_flush_domains, name);
}

/* flush_eligible - domain may be flushed (a hostname in fast_flush_domains) */
int flush_eligible(const struct flush *f, const char *domain)
{
    char name[DOMAIN_MAX + 1];

    return flush_file_name(domain, name, sizeof(name)) == 0 && eligible_name(f, name);
}

/* below - name is parent itself or one of its subdomains */
static int below(const char *name, const char *parent)
{
    size_t n = strlen(name), p = strlen(parent);

    if (n == p)
        return strcmp(name, parent) == 0;
    return n > p && name[n - p - 1] == '.' && strcmp(name + n - p, parent) == 0;
}

/* subdomains_eligible - parent or some name below it is in fast_flush_domains */
static int subdomains_eligible(const struct flush *f, const char *parent)
{
    const struct cfg_list *l = &f->conf->fast_flush_domains;

    if (eligible_name(f, parent))
        return 1;
    for (size_t i = 0; i < l->count; i++)
        if (below(l->items[i][0] == '.' ? l->items[i] + 1 : l->items[i], parent))
            return 1;
    return 0;
}

/* load_log - read one log file into its site */
static void load_log(struct flush *f, const char *name)
{
    int fd = openat(f->flushfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct buf b = BUF_INIT;
    struct stat st;
    struct site *s;
    char chunk[8192];
    ssize_t n;
    size_t bad = 0;
    int torn;

    if (fd < 0) {
        log_warn("flush: open %s/%s: %s", f->dir, name, strerror(errno));
        return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_warn("flush: %s/%s: not a regular file; ignored", f->dir, name);
        close(fd);
        return;
    }
    while ((n = read(fd, chunk, sizeof(chunk))) > 0 && b.len < (size_t) FLUSH_LOG_MAX)
        buf_append(&b, chunk, (size_t) n);
    if (n < 0)
        log_warn("flush: read %s/%s: %s", f->dir, name, strerror(errno));
    else if (n > 0)
        log_warn("flush: %s/%s: larger than %ld bytes; the rest is ignored until the next refresh",
                 f->dir, name, FLUSH_LOG_MAX);
    close(fd);
    torn = b.len && b.data[b.len - 1] != '\n';
    s = site_get(f, name);
    for (char *line = b.data, *end; line && line < b.data + b.len; line = end + 1) {
        end = memchr(line, '\n', (size_t) (b.data + b.len - line));
        if (end == NULL)
            end = b.data + b.len;
        *end = 0;
        s->file_lines++;
        if (queue_id_valid(line))
            id_set_add(&s->ids, line, 0);
        else if (line[0] == '-' && queue_id_valid(line + 1))
            id_set_del(&s->ids, line + 1);
        else
            bad++;
    }
    s->empty_since = s->ids.used ? 0 : st.st_mtime;
    if (bad) {
        log_warn("flush: %s/%s: %zu line(s) that are not queue IDs skipped", f->dir, name, bad);
        s->garbage = 1;
    }
    /* a torn last line would swallow the next appended ID: rewrite now */
    if (torn && log_rewrite(f, s) != 0)
        log_warn("flush: %s/%s: last line unterminated and the log cannot be rewritten", f->dir, name);
    buf_free(&b);
}

/* load_logs - read every log in flush/ */
static int load_logs(struct flush *f, char *err, size_t errlen)
{
    int fd = openat(f->flushfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct dirent *de;
    DIR *d;

    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        snprintf(err, errlen, "open %s: %s", f->dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        char name[DOMAIN_MAX + 1];

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (flush_file_name(de->d_name, name, sizeof(name)) != 0 || strcmp(name, de->d_name) != 0) {
            log_warn("flush: %s/%s: not a flush log name; ignored", f->dir, de->d_name);
            continue;
        }
        load_log(f, name);
    }
    closedir(d);
    return 0;
}

/* start_run - queue a site's flush unless one is already queued or running */
static void start_run(struct flush *f, struct site *s)
{
    static const struct timeval now = { 0, 0 };

    if (s->running) {
        log_info("flush %s: already running; request coalesced", s->name);
        return;
    }
    s->running = 1;
    s->run_ids = NULL;
    s->run_count = s->run_pos = s->run_started = s->run_stale = s->run_failed = 0;
    STAILQ_INSERT_TAIL(&f->runq, s, run);
    if (!evtimer_pending(f->run_ev, NULL))
        evtimer_add(f->run_ev, &now);
}

/* snapshot - copy a site's IDs for its run (taken after the ETRN reply) */
static void snapshot(struct site *s)
{
    s->run_ids = id_list(&s->ids, &s->run_count);
}

/* finish_run - a site's flush is done: log it and take it off the run queue */
static void finish_run(struct flush *f, struct site *s)
{
    log_info("flush %s: %zu message(s) scheduled, %zu stale, %zu failed", s->name,
             s->run_started, s->run_stale, s->run_failed);
    free(s->run_ids);
    s->run_ids = NULL;
    s->running = 0;
    STAILQ_REMOVE_HEAD(&f->runq, run);
}

/* batch - one event-loop turn of work: step until it says there is no more (-1) or
   FLUSH_BATCH_MAX units or FLUSH_BATCH_MS are spent; then ev runs again after what else
   is ready */
static void batch(struct flush *f, struct event *ev, int (*step)(struct flush *f))
{
    static const struct timeval now = { 0, 0 };
    long long start = clock_now_ms();
    size_t done = 0;

    while (done < FLUSH_BATCH_MAX && clock_now_ms() - start < FLUSH_BATCH_MS) {
        int n = step(f);

        if (n < 0)
            return;
        done += (size_t) n;
    }
    evtimer_add(ev, &now);
}

/* run_step - the next ID of the first queued flush: 1 (one ID), 0, or -1 (none queued) */
static int run_step(struct flush *f)
{
    struct site *s = STAILQ_FIRST(&f->runq);
    const char *id;
    int rc;

    if (s == NULL)
        return -1;
    if (s->run_ids == NULL)
        snapshot(s);
    if (s->run_pos >= s->run_count) {
        finish_run(f, s);
        return 0;
    }
    id = s->run_ids[s->run_pos++];
    if (id_find(&s->ids, id) == NULL) {
        s->run_stale++;             /* dropped since the snapshot */
        return 1;
    }
    rc = f->deliver ? f->deliver(f->deliver_ctx, id, s->name) : -1;
    if (rc > 0)
        s->run_started++;
    else if (rc == 0) {
        s->run_stale++;
        drop_id(f, s, id);
    } else
        s->run_failed++;
    return 1;
}

/* run_cb - one batch of flush work, then yield to the loop */
static void run_cb(evutil_socket_t fd, short what, void *arg)
{
    struct flush *f = arg;

    (void) fd;
    (void) what;
    batch(f, f->run_ev, run_step);
}

/* flush_waiting - how many IDs a domain's log holds */
size_t flush_waiting(const struct flush *f, const char *domain)
{
    char name[DOMAIN_MAX + 1];
    const struct site *s;

    if (flush_file_name(domain, name, sizeof(name)) != 0 || (s = site_find(f, name)) == NULL)
        return 0;
    return s->ids.used;
}

/* flush_running - a flush of domain is queued or in progress */
int flush_running(const struct flush *f, const char *domain)
{
    char name[DOMAIN_MAX + 1];
    const struct site *s;

    if (flush_file_name(domain, name, sizeof(name)) != 0 || (s = site_find(f, name)) == NULL)
        return 0;
    return s->running;
}

/* note_etrn - remember who asked for a site's flush, for status */
static void note_etrn(struct site *s, const char *client, const char *user)
{
    s->last_etrn = clock_wall_sec();
    snprintf(s->client, sizeof(s->client), "%s", client ? client : "");
    snprintf(s->user, sizeof(s->user), "%s", user ? user : "");
}

/* flush_request - count a domain's waiting messages now, move them afterwards */
enum flush_result flush_request(struct flush *f, const char *domain, int with_subdomains,
                                const char *client, const char *user, size_t *pending)
{
    char name[DOMAIN_MAX + 1];
    size_t n = 0;

    *pending = 0;
    if (flush_file_name(domain, name, sizeof(name)) != 0)
        return FLUSH_NOT_ELIGIBLE;
    if (!(with_subdomains ? subdomains_eligible(f, name) : eligible_name(f, name)))
        return FLUSH_NOT_ELIGIBLE;
    if (f->deliver == NULL) {
        log_warn("flush %s: no queue manager to deliver to", name);
        return FLUSH_ERROR;
    }
    if (eligible_name(f, name))
        note_etrn(site_get(f, name), client, user);
    for (struct site *s = with_subdomains ? LIST_FIRST(&f->sites) : site_find(f, name); s;
         s = with_subdomains ? LIST_NEXT(s, link) : NULL) {
        if (with_subdomains && (!below(s->name, name) || !eligible_name(f, s->name)))
            continue;
        if (with_subdomains)
            note_etrn(s, client, user);
        if (s->ids.used == 0)
            continue;
        n += s->ids.used;
        start_run(f, s);
    }
    *pending = n;
    return n ? FLUSH_STARTED : FLUSH_NOTHING;
}

/* flush_note - the qmgr's hook: a recipient for domain was deferred (1) or finished (0) */
void flush_note(void *flush, const char *domain, const char *id, int added)
{
    struct flush *f = flush;
    char name[DOMAIN_MAX + 1];
    struct site *s;

    if (domain == NULL) {
        flush_forget(f, id);
        return;
    }
    if (!queue_id_valid(id) || flush_file_name(domain, name, sizeof(name)) != 0)
        return;
    if (!added) {
        if ((s = site_find(f, name)) != NULL)
            drop_id(f, s, id);
        return;
    }
    if (eligible_name(f, name))
        add_id(f, site_get(f, name), id);
}

/* flush_forget - drop id from every log ("ALL": every ID); cost: one lookup per log */
void flush_forget(struct flush *f, const char *id)
{
    int all = strcmp(id, "ALL") == 0;
    struct site *s;

    if (!all && !queue_id_valid(id))
        return;
    LIST_FOREACH(s, &f->sites, link) {
        if (!all) {
            drop_id(f, s, id);
            continue;
        }
        if (s->ids.used == 0)
            continue;
        id_set_clear(&s->ids);
        s->empty_since = clock_wall_sec();
        log_rewrite(f, s);
    }
}

/* in_queue - id is still a message in some queue directory */
static int in_queue(const struct flush *f, const char *id)
{
    static const enum queue_dir dirs[] = { QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_HOLD };

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (queue_stat(f->q, dirs[i], id, NULL) == QUEUE_OK)
            return 1;
    return 0;
}

/* walk_message - refresh: note the eligible pending domains of one deferred message */
static void walk_message(struct flush *f, const char *id)
{
    struct queue_msg msg;

    if (queue_load(f->q, QUEUE_DEFERRED, id, &msg) != QUEUE_OK)
        return;                       /* moved or finished meanwhile */
    f->walk_msgs++;
    for (size_t i = 0; i < msg.nrcpt; i++) {
        const char *at = strrchr(msg.rcpts[i].address, '@');
        char name[DOMAIN_MAX + 1];
        struct site *s;

        if (msg.rcpts[i].state != QUEUE_RCPT_PENDING || at == NULL
            || flush_file_name(at + 1, name, sizeof(name)) != 0 || !eligible_name(f, name))
            continue;
        s = site_get(f, name);
        if (id_find(&s->ids, id) == NULL)
            f->walk_added++;
        add_id(f, s, id);
    }
    queue_msg_free(&msg);
}

/* sweep_site - refresh: drop IDs of one site that no walk or note confirmed and are gone */
static void sweep_site(struct flush *f, struct site *s)
{
    int eligible = eligible_name(f, s->name);
    size_t dropped = f->walk_dropped;

    size_t n;
    flush_id_t *ids = id_list(&s->ids, &n); /* a copy: no removal while walking the table */

    for (size_t i = 0; i < n; i++) {
        struct id_entry *e = id_find(&s->ids, ids[i]);

        if (eligible && e->gen == f->gen)
            continue;
        if (eligible && in_queue(f, ids[i])) {
            e->gen = f->gen;
            continue;
        }
        id_set_del(&s->ids, ids[i]);
        f->walk_dropped++;
    }
    free(ids);
    if (s->ids.used == 0 && s->empty_since == 0)
        s->empty_since = clock_wall_sec();
    if (f->walk_dropped != dropped)
        log_rewrite(f, s);
}

/* schedule_refresh - arm the next refresh after secs */
static void schedule_refresh(struct flush *f, long long secs)
{
    struct timeval tv = { (time_t) secs, 0 };

    f->refresh_secs = f->conf->fast_flush_refresh_time;
    evtimer_add(f->refresh_ev, &tv);
}

/* refresh_step - the next ID of the deferred/ walk, or the next log to sweep: the units of
   work done, or -1 when the refresh is over (or none runs) */
static int refresh_step(struct flush *f)
{
    size_t n;

    switch (f->phase) {
    case REFRESH_IDLE:
        return -1;
    case REFRESH_WALK:
        if (f->walk_pos == f->walk_n) {
            free(f->walk_ids);
            f->walk_ids = NULL;
            f->walk_n = f->walk_pos = f->walk_cap = 0;
            f->phase = REFRESH_SWEEP;
            f->sweep = LIST_FIRST(&f->sites);
            return 0;
        }
        walk_message(f, f->walk_ids[f->walk_pos++]);
        return 1;
    case REFRESH_SWEEP:
        break;
    }
    if (f->sweep == NULL) {
        f->phase = REFRESH_IDLE;
        log_info("flush: refresh done: %zu deferred message(s) read, %zu ID(s) added, "
                 "%zu stale ID(s) dropped, %zu log(s)", f->walk_msgs, f->walk_added,
                 f->walk_dropped, f->nsites);
        schedule_refresh(f, f->conf->fast_flush_refresh_time);
        return -1;
    }
    sweep_site(f, f->sweep);
    n = f->sweep->ids.used + 1;
    f->sweep = LIST_NEXT(f->sweep, link);
    return n > FLUSH_BATCH_MAX ? FLUSH_BATCH_MAX : (int) n; /* the batch is spent */
}

/* step_cb - one batch of refresh work */
static void step_cb(evutil_socket_t fd, short what, void *arg)
{
    struct flush *f = arg;

    (void) fd;
    (void) what;
    batch(f, f->step_ev, refresh_step);
}

/* walk_id - queue_walk callback: note one deferred ID for the refresh */
static int walk_id(void *ctx, enum queue_dir dir, const char *id)
{
    struct flush *f = ctx;

    (void) dir;
    if (f->walk_n == f->walk_cap) {
        f->walk_cap = f->walk_cap ? 2 * f->walk_cap : 256;
        f->walk_ids = xreallocarray(f->walk_ids, f->walk_cap, sizeof(*f->walk_ids));
    }
    snprintf(f->walk_ids[f->walk_n++], sizeof(f->walk_ids[0]), "%s", id);
    return 0;
}

/* flush_refresh - start rebuilding the logs from deferred/ (no-op while one runs) */
void flush_refresh(struct flush *f)
{
    static const struct timeval now = { 0, 0 };

    if (f->phase != REFRESH_IDLE)
        return;
    evtimer_del(f->refresh_ev);
    f->walk_n = f->walk_pos = 0;
    if (queue_walk(f->q, QUEUE_DEFERRED, walk_id, f) != QUEUE_OK) {
        log_warn("flush: refresh: %s", queue_error(f->q));
        schedule_refresh(f, f->conf->fast_flush_refresh_time);
        return;
    }
    f->gen++;
    f->walk_added = f->walk_dropped = f->walk_msgs = 0;
    f->phase = REFRESH_WALK;
    evtimer_add(f->step_ev, &now);
}

/* refresh_cb - the refresh timer */
static void refresh_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    flush_refresh(arg);
}

/* flush_maintain - rewrite grown logs, purge logs empty for fast_flush_purge_time */
void flush_maintain(struct flush *f, time_t now)
{
    long long start = clock_now_ms();
    struct site *next;

    for (struct site *s = LIST_FIRST(&f->sites); s; s = next) {
        next = LIST_NEXT(s, link);
        if (f->phase == REFRESH_IDLE && !s->running && s->ids.used == 0 && s->empty_since
            && (long long) (now - s->empty_since) >= f->conf->fast_flush_purge_time) {
            if (unlinkat(f->flushfd, s->name, 0) != 0 && errno != ENOENT) {
                log_warn("flush: remove %s/%s: %s", f->dir, s->name, strerror(errno));
                continue;
            }
            if (s->file_lines || s->garbage)
                log_info("flush: purged empty log %s", s->name);
            site_remove(f, s);
            continue;
        }
        if (needs_rewrite(s) && clock_now_ms() - start < 10 * FLUSH_BATCH_MS)
            log_rewrite(f, s);
    }
}

/* maint_period - seconds between maintenance passes */
static long long maint_period(const struct flush *f)
{
    long long p = f->conf->fast_flush_purge_time / 2;

    return p < 1 ? 1 : p > FLUSH_MAINT_MAX ? FLUSH_MAINT_MAX : p;
}

/* maint_cb - the maintenance timer */
static void maint_cb(evutil_socket_t fd, short what, void *arg)
{
    struct flush *f = arg;
    struct timeval tv = { (time_t) maint_period(f), 0 };

    (void) fd;
    (void) what;
    flush_maintain(f, clock_wall_sec());
    evtimer_add(f->maint_ev, &tv);
}

/* flush_open - open queue_directory/flush, load the logs, arm the timers */
struct flush *flush_open(struct event_base *base, const struct server_config *conf,
                         struct queue *q, char *err, size_t errlen)
{
    struct flush *f = xcalloc(1, sizeof(*f));
    struct buf path = BUF_INIT;
    struct timeval tv = { FLUSH_FIRST_REFRESH, 0 };

    f->base = base;
    f->conf = conf;
    f->table = htable_new(64);
    LIST_INIT(&f->sites);
    STAILQ_INIT(&f->runq);
    f->q = q;
    f->gen = 1;
    f->tmpfd = -1;
    buf_printf(&path, "%s/flush", conf->queue_directory);
    f->dir = buf_steal(&path);
    f->flushfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->flushfd < 0) {
        snprintf(err, errlen, "open %s: %s", f->dir, strerror(errno));
        flush_free(f);
        return NULL;
    }
    buf_printf(&path, "%s/tmp", conf->queue_directory);
    f->tmpfd = open(buf_cstr(&path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->tmpfd < 0) {
        snprintf(err, errlen, "open %s: %s", buf_cstr(&path), strerror(errno));
        buf_free(&path);
        flush_free(f);
        return NULL;
    }
    buf_free(&path);
    if (load_logs(f, err, errlen) != 0) {
        flush_free(f);
        return NULL;
    }
    f->run_ev = evtimer_new(base, run_cb, f);
    f->refresh_ev = evtimer_new(base, refresh_cb, f);
    f->step_ev = evtimer_new(base, step_cb, f);
    f->maint_ev = evtimer_new(base, maint_cb, f);
    if (!f->run_ev || !f->refresh_ev || !f->step_ev || !f->maint_ev) {
        snprintf(err, errlen, "flush: cannot create timers");
        flush_free(f);
        return NULL;
    }
    f->refresh_secs = conf->fast_flush_refresh_time;
    evtimer_add(f->refresh_ev, &tv);
    tv.tv_sec = (time_t) maint_period(f);
    evtimer_add(f->maint_ev, &tv);
    return f;
}

/* flush_set_config - take a reloaded configuration */
void flush_set_config(struct flush *f, const struct server_config *conf)
{
    struct timeval tv;

    f->conf = conf;
    if (f->phase == REFRESH_IDLE && conf->fast_flush_refresh_time != f->refresh_secs)
        schedule_refresh(f, conf->fast_flush_refresh_time);
    tv.tv_sec = (time_t) maint_period(f);
    tv.tv_usec = 0;
    evtimer_add(f->maint_ev, &tv);
}

/* flush_set_deliver - where flushed IDs go (the qmgr) */
void flush_set_deliver(struct flush *f, flush_deliver_fn fn, void *ctx)
{
    f->deliver = fn;
    f->deliver_ctx = ctx;
}

/* cmp_site - order sites by name */
static int cmp_site(const void *a, const void *b)
{
    return strcmp((*(struct site *const *) a)->name, (*(struct site *const *) b)->name);
}

/* flush_status_json - the "etrn" member of etrn-queue status, sorted by domain */
void flush_status_json(const struct flush *f, struct buf *out)
{
    struct site **v = xreallocarray(NULL, f->nsites ? f->nsites : 1, sizeof(*v));
    struct site *s;
    size_t n = 0;

    LIST_FOREACH(s, &f->sites, link)
        v[n++] = s;
    qsort(v, n, sizeof(*v), cmp_site);
    buf_puts(out, "\"etrn\":[");
    for (size_t i = 0; i < n; i++) {
        buf_puts(out, i ? ",{\"domain\":" : "{\"domain\":");
        buf_json_string(out, v[i]->name);
        buf_printf(out, ",\"waiting\":%zu,\"flushing\":%s,\"last_etrn\":%lld,\"client\":",
                   v[i]->ids.used, v[i]->running ? "true" : "false", (long long) v[i]->last_etrn);
        buf_json_string(out, v[i]->client);
        buf_puts(out, ",\"user\":");
        buf_json_string(out, v[i]->user);
        buf_putc(out, '}');
    }
    buf_putc(out, ']');
    free(v);
}

/* flush_status_text - the ETRN table of etrn-queue status: one line per domain, sorted */
void flush_status_text(const struct flush *f, struct buf *out)
{
    struct site **v = xreallocarray(NULL, f->nsites ? f->nsites : 1, sizeof(*v));
    struct site *each;
    size_t n = 0;
    int width = 11;

    LIST_FOREACH(each, &f->sites, link) {
        int len = (int) strlen(each->name);

        v[n++] = each;
        width = len > width ? len : width;
    }
    qsort(v, n, sizeof(*v), cmp_site);
    buf_printf(out, "%-*s %7s  %-8s  %-19s  %s\n", width, "ETRN DOMAIN", "WAITING", "FLUSHING",
               "LAST ETRN", "FROM");
    for (size_t i = 0; i < n; i++) {
        const struct site *s = v[i];
        char at[TIMEFMT_LOCAL_MAX];

        timefmt_local((long long) s->last_etrn, at, sizeof(at));
        buf_printf(out, "%-*s %7zu  %-8s  %-19s  %s%s%s%s\n", width, s->name, s->ids.used,
                   s->running ? "yes" : "no", at, s->client[0] ? s->client : "-",
                   s->user[0] ? " (" : "", s->user, s->user[0] ? ")" : "");
    }
    free(v);
}

/* flush_free - stop the timers and release everything (logs stay on disk) */
void flush_free(struct flush *f)
{
    struct site *next;

    if (f == NULL)
        return;
    struct event **const timers[] = { &f->run_ev, &f->refresh_ev, &f->step_ev, &f->maint_ev };

    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
        loop_event_free(timers[i]);
    free(f->walk_ids);
    for (struct site *s = LIST_FIRST(&f->sites); s; s = next) {
        next = LIST_NEXT(s, link);
        site_free(s);
    }
    htable_free(f->table, NULL);
    if (f->flushfd >= 0)
        close(f->flushfd);
    if (f->tmpfd >= 0)
        close(f->tmpfd);
    free(f->dir);
    free(f);
}
