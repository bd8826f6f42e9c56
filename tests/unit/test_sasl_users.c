/* Unit tests for server-lite/sasl_users: the AUTH users file and crypt(3) checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sasl_users.h"
#include "test.h"

/* "secret" and "hunter2" as made by openssl passwd -6 / -5 with fixed salts */
#define HASH_SECRET "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG."
#define HASH_HUNTER2 "$5$saltsalt$OIdfjX.u4Y3SJ4I2bX8w5BMf1VAUhHABNUirScDzZi3"

static char dir[] = "/tmp/test_sasl_users.XXXXXX";

/* write_file - a users file with the given content; returns its path (static) */
static const char *write_file(const char *name, const char *content)
{
    static char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    if (fp == NULL || fputs(content, fp) == EOF || fclose(fp) != 0) {
        perror(path);
        exit(2);
    }
    return path;
}

static void test_good_file(void)
{
    char err[512] = "";
    const char *path = write_file("good", "# users\n\n"
                                          "alice:" HASH_SECRET "\n"
                                          "  # indented comment\n"
                                          "bob@example.org:" HASH_HUNTER2 "\r\n");
    struct sasl_users *u = sasl_users_load(path, err, sizeof(err));

    TEST_CHECK(u != NULL, "load good file: %s", err);
    if (u == NULL)
        return;
    TEST_INTEQ(sasl_users_count(u), 2);
    TEST_INTEQ(sasl_users_verify(u, "alice", "secret"), 1);
    TEST_INTEQ(sasl_users_verify(u, "alice", "Secret"), 0);
    TEST_INTEQ(sasl_users_verify(u, "alice", ""), 0);
    TEST_INTEQ(sasl_users_verify(u, "bob@example.org", "hunter2"), 1);
    TEST_INTEQ(sasl_users_verify(u, "bob@example.org", "secret"), 0);
    /* an unknown user never passes, not even with another user's password */
    TEST_INTEQ(sasl_users_verify(u, "mallory", "secret"), 0);
    TEST_INTEQ(sasl_users_verify(u, "Alice", "secret"), 0);
    TEST_INTEQ(sasl_users_verify(u, "", "secret"), 0);
    sasl_users_free(u);
}

static void test_empty_file(void)
{
    char err[512] = "";
    struct sasl_users *u = sasl_users_load(write_file("empty", "# nobody yet\n"), err,
                                           sizeof(err));

    TEST_CHECK(u != NULL, "load empty file: %s", err);
    if (u == NULL)
        return;
    TEST_INTEQ(sasl_users_count(u), 0);
    TEST_INTEQ(sasl_users_verify(u, "alice", "secret"), 0);
    sasl_users_free(u);
}

static void test_errors(void)
{
    static const struct {
        const char *content;
        const char *want; /* after "PATH:" */
    } cases[] = {
        { "alice:" HASH_SECRET "\nbob\n", "2: expected \"user:crypt-hash\"" },
        { ":" HASH_SECRET "\n", "1: empty user name, or blanks or control characters in it" },
        { "al ice:" HASH_SECRET "\n", "1: empty user name, or blanks or control characters in it" },
        { "alice:secret\n", "1: user alice: not a modern crypt(3) hash" },
        { "alice:\n", "1: user alice: not a modern crypt(3) hash" },
        { "alice:$1$abcdefgh$abcdefghijklmnopqrstuv\n", "1: user alice: not a modern crypt(3) hash" },
        { "alice:abJnggxhB/yWI\n", "1: user alice: not a modern crypt(3) hash" },
        { "alice:$6$\n", "1: user alice: not a hash crypt(3) supports" },
        { "alice:$6$abcdefgh$short\n", "1: user alice: not a hash crypt(3) supports" },
        { "alice:$zz$abc$def\n", "1: user alice: not a modern crypt(3) hash" },
        { "\n# c\nalice:" HASH_SECRET "\nbob:" HASH_SECRET "\nalice:" HASH_HUNTER2 "\n",
          "5: user alice given twice (first on line 3)" },
    };
    char err[512], want[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = write_file("bad", cases[i].content);
        struct sasl_users *u;

        err[0] = 0;
        u = sasl_users_load(path, err, sizeof(err));
        TEST_CHECK(u == NULL, "case %zu: bad file accepted", i);
        sasl_users_free(u);
        snprintf(want, sizeof(want), "%s:%s", path, cases[i].want);
        TEST_CHECK(strncmp(err, want, strlen(want)) == 0, "case %zu: got \"%s\", want \"%s...\"",
                   i, err, want);
    }
    err[0] = 0;
    snprintf(want, sizeof(want), "%s/missing", dir);
    TEST_CHECK(sasl_users_load(want, err, sizeof(err)) == NULL, "missing file accepted");
    TEST_CHECK(strstr(err, want) != NULL && strstr(err, "No such file") != NULL,
               "missing file: got \"%s\"", err);
}

static void test_long_line(void)
{
    /* lines of any length: a 5000-octet user name is read whole */
    size_t n = 5000;
    char *content = malloc(n + sizeof(HASH_SECRET) + 3), err[512] = "";
    struct sasl_users *u;

    memset(content, 'u', n);
    snprintf(content + n, sizeof(HASH_SECRET) + 3, ":%s\n", HASH_SECRET);
    u = sasl_users_load(write_file("long", content), err, sizeof(err));
    TEST_CHECK(u != NULL, "long line: %s", err);
    if (u) {
        content[n] = 0;
        TEST_INTEQ(sasl_users_verify(u, content, "secret"), 1);
        content[n - 1] = 0;
        TEST_INTEQ(sasl_users_verify(u, content, "secret"), 0);
        sasl_users_free(u);
    }
    free(content);
}

int main(void)
{
    char path[256];
    static const char *const names[] = { "good", "empty", "bad", "long" };

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_good_file();
    test_empty_file();
    test_errors();
    test_long_line();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return test_summary();
}
