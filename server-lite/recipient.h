/*
 * recipient - which recipient addresses exist: recipient tables and Maildirs.
 *
 * A recipient map is the union of texthash files (relay_recipient_maps,
 * local_recipient_maps), held in one hash table (htable.h), so a lookup costs
 * the same with ten entries or a hundred thousand.
 * - recipient_map_new() / recipient_map_free(): an empty map; the caller owns it.
 * - recipient_map_load(map, path, allow_bare, &line, why): adds the lines of
 *   one file, "key  value" (the value is required and otherwise ignored, as
 *   Postfix's), blank lines and '#' comments skipped. A key is
 *   "user@domain", "@domain" (the whole domain) or, with allow_bare, "user"
 *   (that user in every local domain). Keys are folded to lower case, as
 *   Postfix's hash and texthash tables fold them. A repeated key is
 *   accepted (the first one counts). Returns 0, or -1 with why filled and
 *   *line the offending line (0: the file itself cannot be read).
 * - recipient_map_lookup(map, addr, bare): 1 when "user@domain", "@domain"
 *   or (bare) "user" is in the map, case-insensitively; 0 otherwise.
 * - recipient_local_part_ok(user): the local part can become a Maildir
 *   directory name: 1..64 bytes of [A-Za-z0-9._+=-], not starting with '.',
 *   no "..". Local delivery and the RCPT check share this one test.
 * - recipient_maildir_open(base, mailbox, user, domain, create, failed):
 *   opens base/DOMAIN/USER/mailbox (DOMAIN and USER folded to lower case),
 *   one component at a time with O_NOFOLLOW, creating missing directories
 *   (mode 0700) only when create is set. Returns a directory fd the caller
 *   closes, or -1 with errno set and the failing component in failed.
 *   recipient_dir_open(dirfd, name, create) is its one step (never a symlink).
 */
#ifndef ETRNKIT_RECIPIENT_H
#define ETRNKIT_RECIPIENT_H

#include <stddef.h>

#define RECIPIENT_LOCAL_PART_MAX 64

struct recipient_map;

struct recipient_map *recipient_map_new(void);
int recipient_map_load(struct recipient_map *map, const char *path, int allow_bare, int *line,
                       char *why, size_t whylen);
int recipient_map_lookup(const struct recipient_map *map, const char *addr, int bare);
size_t recipient_map_count(const struct recipient_map *map);
void recipient_map_free(struct recipient_map *map);

int recipient_local_part_ok(const char *user);
int recipient_maildir_open(const char *base, const char *mailbox, const char *user,
                           const char *domain, int create, char *failed, size_t failedlen);
int recipient_dir_open(int dirfd, const char *name, int create);

#endif
