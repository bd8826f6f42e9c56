/*
 * recipient - recipient tables and Maildir lookup (contract in recipient.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "domain.h"
#include "htable.h"
#include "recipient.h"

struct recipient_map {
    struct htable *keys; /* folded key -> PRESENT */
};

static char present; /* the value of every key: htable values must not be NULL */
#define PRESENT ((void *) &present)

/* recipient_map_new - an empty map */
struct recipient_map *recipient_map_new(void)
{
    struct recipient_map *map = xcalloc(1, sizeof(*map));

    map->keys = htable_new(64);
    return map;
}

/* recipient_map_free - release a map */
void recipient_map_free(struct recipient_map *map)
{
    if (map == NULL)
        return;
    htable_free(map->keys, NULL);
    free(map);
}

/* recipient_map_count - keys in the map */
size_t recipient_map_count(const struct recipient_map *map)
{
    return map ? htable_count(map->keys) : 0;
}

/* fold - ASCII lower case in place */
static void fold(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char) (*s - 'A' + 'a');
}

/* local_part_syntax - a key's local part: printable ASCII, no '@', at most 64 bytes */
static int local_part_syntax(const char *s, size_t n)
{
    if (n == 0 || n > RECIPIENT_LOCAL_PART_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] >= 127 || s[i] == '@')
            return 0;
    return 1;
}

/* check_key - a folded key's syntax; NULL when good, else why not */
static const char *check_key(const char *key, int allow_bare)
{
    const char *at = strrchr(key, '@'), *why;

    if (at == NULL) {
        if (!allow_bare)
            return "a relay recipient needs a domain: \"user@domain\" or \"@domain\"";
        return local_part_syntax(key, strlen(key)) ? NULL : "not a valid user name";
    }
    if (at != key && !local_part_syntax(key, (size_t) (at - key)))
        return "not a valid address: bad local part";
    if (!domain_is_hostname(at + 1, &why))
        return "not a valid address: bad domain";
    return NULL;
}

/* What map_line needs besides the line. */
struct map_load {
    struct recipient_map *map;
    int allow_bare;
};

/* map_line - one "key  value" line of a recipient table */
static int map_line(void *ctx, int line, char *key, char *value, char *why, size_t whylen)
{
    struct map_load *ml = ctx;
    const char *bad;

    (void) line;
    if (*value == 0) {
        snprintf(why, whylen, "\"%.100s\": expected \"address  value\"", key);
        return -1;
    }
    fold(key);
    if ((bad = check_key(key, ml->allow_bare)) != NULL) {
        snprintf(why, whylen, "\"%.100s\": %s", key, bad);
        return -1;
    }
    htable_insert(ml->map->keys, key, PRESENT); /* a repeated key: the first one stays */
    return 0;
}

/* recipient_map_load - add one file's "key  value" lines to map */
int recipient_map_load(struct recipient_map *map, const char *path, int allow_bare, int *line,
                       char *why, size_t whylen)
{
    struct map_load ml = { map, allow_bare };

    if (cfg_map_read(path, map_line, &ml, line, why, whylen) != 0)
        return -1;
    *line = 0;
    return 0;
}

/* recipient_map_lookup - addr, its domain as "@domain" or (bare) its user is listed */
int recipient_map_lookup(const struct recipient_map *map, const char *addr, int bare)
{
    struct buf key = BUF_INIT;
    const char *at = strrchr(addr, '@');
    int found;

    if (map == NULL)
        return 0;
    buf_puts(&key, addr);
    fold(key.data);
    found = htable_find(map->keys, key.data) != NULL;
    if (!found && at) {
        size_t user = (size_t) (at - addr);

        found = htable_find(map->keys, key.data + user) != NULL;
        if (!found && bare && user > 0) {
            key.data[user] = 0;
            found = htable_find(map->keys, key.data) != NULL;
        }
    }
    buf_free(&key);
    return found;
}

/* recipient_local_part_ok - the user name can be a directory name */
int recipient_local_part_ok(const char *user)
{
    size_t n = strlen(user);

    if (n == 0 || n > RECIPIENT_LOCAL_PART_MAX || user[0] == '.' || strstr(user, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = user[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '.' || c == '_' || c == '+' || c == '=' || c == '-'))
            return 0;
    }
    return 1;
}

/* recipient_dir_open - open (creating when missing and allowed) a directory below dirfd */
int recipient_dir_open(int dirfd, const char *name, int create)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd >= 0 || errno != ENOENT || !create)
        return fd;
    if (mkdirat(dirfd, name, 0700) != 0 && errno != EEXIST)
        return -1;
    return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* recipient_maildir_open - base/domain/user/mailbox as a directory fd */
int recipient_maildir_open(const char *base, const char *mailbox, const char *user,
                           const char *domain, int create, char *failed, size_t failedlen)
{
    struct buf rel = BUF_INIT;
    char *save = NULL;
    int fd, err;

    if (create && mkdir(base, 0700) != 0 && errno != EEXIST) {
        snprintf(failed, failedlen, "%s", base);
        return -1;
    }
    if ((fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(failed, failedlen, "%s", base);
        return -1;
    }
    buf_printf(&rel, "%s/%s/%s", domain, user, mailbox);
    /* DOMAIN and USER folded; the mailbox path is the operator's, as written */
    for (size_t i = 0, n = strlen(domain) + 1 + strlen(user); i < n; i++)
        if (rel.data[i] >= 'A' && rel.data[i] <= 'Z')
            rel.data[i] = (char) (rel.data[i] - 'A' + 'a');
    for (char *part = strtok_r(rel.data, "/", &save); part && fd >= 0;
         part = strtok_r(NULL, "/", &save)) {
        int next = recipient_dir_open(fd, part, create);

        err = errno;
        close(fd);
        if (next < 0) {
            snprintf(failed, failedlen, "%s", part);
            errno = err;
        }
        fd = next;
    }
    err = errno;
    buf_free(&rel);
    errno = err;
    return fd;
}
