/* Unit tests for common/htable and server-lite/recipient: the hash table at size,
   recipient map files and lookups, local part rules, Maildir lookup without creation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "htable.h"
#include "recipient.h"
#include "test.h"

static char dir[64];

/* count_cb - htable_walk visitor: count entries, check each value matches its key */
static void count_cb(void *ctx, const char *key, void *value)
{
    size_t *n = ctx;

    if (strcmp(key, value) == 0)
        ++*n;
}

/* test_siphash - the SipHash-2-4 reference vectors (key 00..0f, messages 00.., 01 02 ..) */
static void test_siphash(void)
{
    unsigned char key[16], msg[64];

    for (int i = 0; i < 16; i++)
        key[i] = (unsigned char) i;
    for (int i = 0; i < 64; i++)
        msg[i] = (unsigned char) i;
    TEST_CHECK(htable_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL, "siphash of \"\": %016llx",
               (unsigned long long) htable_siphash(key, msg, 0));
    TEST_CHECK(htable_siphash(key, msg, 1) == 0x74f839c593dc67fdULL, "siphash of 00: %016llx",
               (unsigned long long) htable_siphash(key, msg, 1));
    TEST_CHECK(htable_siphash(key, msg, 8) == 0x93f5f5799a932462ULL, "siphash of 00..07: %016llx",
               (unsigned long long) htable_siphash(key, msg, 8));
    TEST_CHECK(htable_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL, "siphash of 00..0e: %016llx",
               (unsigned long long) htable_siphash(key, msg, 15));
}

/* test_htable - insert, find, duplicate, remove, growth past 100000 keys, walk */
static void test_htable(void)
{
    struct htable *t = htable_new(0);
    enum { N = 100000 };
    char key[32];
    size_t bad = 0, walked = 0;

    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "user%d@example.org", i);
        if (htable_insert(t, key, strdup(key)) != 0)
            bad++;
    }
    TEST_INTEQ(bad, 0);
    TEST_INTEQ(htable_count(t), N);
    TEST_INTEQ(htable_insert(t, "user7@example.org", "x"), -1);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "user%d@example.org", i);
        const char *v = htable_find(t, key);
        if (v == NULL || strcmp(v, key) != 0)
            bad++;
    }
    TEST_INTEQ(bad, 0);
    TEST_CHECK(htable_find(t, "User7@example.org") == NULL, "keys are compared exactly");
    TEST_CHECK(htable_find(t, "") == NULL, "empty key absent");
    htable_walk(t, count_cb, &walked);
    TEST_INTEQ(walked, N);
    char *v = htable_remove(t, "user42@example.org");
    TEST_STREQ(v, "user42@example.org");
    free(v);
    TEST_CHECK(htable_find(t, "user42@example.org") == NULL, "removed key gone");
    TEST_CHECK(htable_remove(t, "user42@example.org") == NULL, "second remove finds nothing");
    TEST_INTEQ(htable_count(t), N - 1);
    TEST_INTEQ(htable_insert(t, "", "empty"), 0);
    TEST_STREQ(htable_find(t, ""), "empty");
    htable_remove(t, "");
    htable_free(t, free);
}

/* put - write text to dir/name, return the path (static buffer) */
static const char *put(const char *name, const char *text)
{
    static char path[128];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    if (fp == NULL || fputs(text, fp) == EOF || fclose(fp) != 0) {
        printf("cannot write %s\n", path);
        exit(1);
    }
    return path;
}

/* test_map - a map from two files: exact addresses, @domain, bare users, case */
static void test_map(void)
{
    struct recipient_map *m = recipient_map_new();
    char why[256];
    int line = -1;

    TEST_INTEQ(recipient_map_load(m, put("a", "# relay users\nAnn@Example.ORG  OK\n\n"
                                             "bob@example.org\tx y z\n@Whole.Example  OK\n"
                                             "bob@example.org again\n"),
                                  0, &line, why, sizeof(why)), 0);
    TEST_INTEQ(line, 0);
    TEST_INTEQ(recipient_map_load(m, put("b", "carl  local\n"), 1, &line, why, sizeof(why)), 0);
    TEST_INTEQ(recipient_map_count(m), 4);
    static const struct {
        const char *addr;
        int bare, want;
    } cases[] = {
        { "ann@example.org", 0, 1 }, { "ANN@EXAMPLE.ORG", 0, 1 }, { "bob@Example.org", 0, 1 },
        { "eve@example.org", 0, 0 }, { "anyone@whole.example", 0, 1 },
        { "x@sub.whole.example", 0, 0 }, { "carl@example.org", 0, 0 },
        { "carl@example.org", 1, 1 }, { "Carl@local.test", 1, 1 }, { "ann@example.net", 0, 0 },
        { "ann", 0, 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        TEST_CHECK(recipient_map_lookup(m, cases[i].addr, cases[i].bare) == cases[i].want,
                   "lookup %s (bare %d): got %d, want %d", cases[i].addr, cases[i].bare,
                   !cases[i].want, cases[i].want);
    TEST_INTEQ(recipient_map_lookup(NULL, "ann@example.org", 0), 0);

    static const struct {
        const char *text;
        int allow_bare, line;
        const char *why;
    } bad[] = {
        { "ok@a.org x\nnovalue@a.org\n", 0, 2, "\"novalue@a.org\": expected \"address  value\"" },
        { "u@exa_mple.org x\n", 0, 1, "\"u@exa_mple.org\": not a valid address: bad domain" },
        { "u@ x\n", 0, 1, "\"u@\": not a valid address: bad domain" },
        { "bare x\n", 0, 1, "\"bare\": a relay recipient needs a domain: \"user@domain\" or "
                            "\"@domain\"" },
        { "a@b.org x\n  more\n", 0, 2, "continuation lines are not supported" },
        { "\x01u@a.org x\n", 0, 1, "\"\x01u@a.org\": not a valid address: bad local part" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = 0;
        TEST_INTEQ(recipient_map_load(m, put("bad", bad[i].text), bad[i].allow_bare, &line, why,
                                      sizeof(why)), -1);
        TEST_INTEQ(line, bad[i].line);
        TEST_STREQ(why, bad[i].why);
    }
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/missing", dir);
    TEST_INTEQ(recipient_map_load(m, missing, 0, &line, why, sizeof(why)), -1);
    TEST_INTEQ(line, 0);
    TEST_CHECK(strstr(why, "cannot open") && strstr(why, "No such file"), "missing file: %s", why);
    recipient_map_free(m);
}

/* test_map_large - 50000 addresses load and are all found */
static void test_map_large(void)
{
    char path[128], why[256];
    struct recipient_map *m = recipient_map_new();
    FILE *fp;
    int line, missed = 0;

    snprintf(path, sizeof(path), "%s/large", dir);
    fp = fopen(path, "w");
    for (int i = 0; i < 50000; i++)
        fprintf(fp, "user%d@customer%d.example OK\n", i, i % 100);
    fclose(fp);
    TEST_INTEQ(recipient_map_load(m, path, 0, &line, why, sizeof(why)), 0);
    TEST_INTEQ(recipient_map_count(m), 50000);
    for (int i = 0; i < 50000; i += 7) {
        char addr[64];

        snprintf(addr, sizeof(addr), "USER%d@customer%d.example", i, i % 100);
        missed += !recipient_map_lookup(m, addr, 0);
    }
    TEST_INTEQ(missed, 0);
    TEST_INTEQ(recipient_map_lookup(m, "user1@customer2.example", 0), 0);
    recipient_map_free(m);
}

/* test_local_part - the names local delivery can make a directory of */
static void test_local_part(void)
{
    static const struct {
        const char *user;
        int want;
    } cases[] = {
        { "ann", 1 }, { "Ann.Lee", 1 }, { "a+tag", 1 }, { "x_y=z-1", 1 },
        { "", 0 }, { ".ann", 0 }, { "a..b", 0 }, { "a/b", 0 }, { "..", 0 }, { "a b", 0 },
        { "a$b", 0 }, { "a'b", 0 }, { "\xc3\xa9", 0 },
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1 },
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        TEST_CHECK(recipient_local_part_ok(cases[i].user) == cases[i].want,
                   "local part \"%s\": want %d", cases[i].user, cases[i].want);
}

/* test_maildir - found without creating; created only when asked; symlinks refused */
static void test_maildir(void)
{
    char base[128], path[256], failed[64];
    struct stat st;
    int fd;

    snprintf(base, sizeof(base), "%s/mail", dir);
    fd = recipient_maildir_open(base, "Maildir/", "ann", "local.test", 0, failed, sizeof(failed));
    TEST_CHECK(fd < 0 && errno == ENOENT, "missing base: not found");
    TEST_CHECK(stat(base, &st) != 0, "nothing created without create");
    fd = recipient_maildir_open(base, "Maildir/", "Ann", "Local.Test", 1, failed, sizeof(failed));
    TEST_CHECK(fd >= 0, "created on request");
    if (fd >= 0)
        close(fd);
    snprintf(path, sizeof(path), "%s/local.test/ann/Maildir", base);
    TEST_CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "DOMAIN/USER folded to lower case");
    fd = recipient_maildir_open(base, "Maildir/", "ANN", "local.test", 0, failed, sizeof(failed));
    TEST_CHECK(fd >= 0, "existing Maildir found, case-insensitively");
    if (fd >= 0)
        close(fd);
    fd = recipient_maildir_open(base, "Maildir/", "bob", "local.test", 0, failed, sizeof(failed));
    TEST_CHECK(fd < 0 && errno == ENOENT, "bob: not found");
    TEST_STREQ(failed, "bob");
    snprintf(path, sizeof(path), "%s/local.test/bob", base);
    TEST_CHECK(stat(path, &st) != 0, "bob: no directory made");
    snprintf(path, sizeof(path), "%s/local.test/eve", base);
    if (symlink("ann", path) == 0) {
        fd = recipient_maildir_open(base, "Maildir/", "eve", "local.test", 1, failed,
                                    sizeof(failed));
        TEST_CHECK(fd < 0 && (errno == ELOOP || errno == ENOTDIR), "a symlinked user directory is refused");
    }
}

int main(void)
{
    char cmd[128];

    snprintf(dir, sizeof(dir), "/tmp/etrnkit-rcpt.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    test_siphash();
    test_htable();
    test_map();
    test_map_large();
    test_local_part();
    test_maildir();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("cannot remove %s\n", dir);
    return test_summary();
}
