/* Unit tests for server-lite/sasl_users: the AUTH users file and crypt(3) checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sasl_users.h"
#include "test.h"

/* "secret" and "hunter2" as made by openssl passwd -6 / -5 with fixed salts */
#define HASH_SECRET "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG."
#define HASH_HUNTER2 "$5$saltsalt$OIdfjX.u4Y3SJ4I2bX8w5BMf1VAUhHABNUirScDzZi3"

/* "tanstaaftanstaaf" (RFC 2195) as doveadm pw -s CRAM-MD5 prints it, without "{CRAM-MD5}" */
#define TIM_VERIFIER "d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b"

static char dir[] = "/tmp/test_sasl_users.XXXXXX";

/* write_file - a users file with the given content; returns its path (static) */
static const char *write_file(const char *name, const char *content)
{
    static char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    if (fp == NULL || fputs(content, fp) == EOF || fclose(fp) != 0 || chmod(path, 0600) != 0) {
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
        { "tim:{CRAM-MD5}" TIM_VERIFIER "\ntim:{CRAM-MD5}" TIM_VERIFIER "\n",
          "2: user tim given twice (first on line 1)" },
        { "tim:{CRAM-MD5}0123\n", "1: user tim: {CRAM-MD5} wants 64 hex digits" },
        { "tim:{CRAM-MD5}" TIM_VERIFIER "0\n", "1: user tim: {CRAM-MD5} wants 64 hex digits" },
        { "tim:{CRAM-MD5}x" TIM_VERIFIER "\n", "1: user tim: {CRAM-MD5} wants 64 hex digits" },
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

/* hex - 2 * len lowercase hex digits */
static void hex(const unsigned char *p, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/* RFC 2195's example: tim, tanstaaftanstaaf, and the digest it shows */
static void test_cram_rfc2195(void)
{
    static const char challenge[] = "<1896.697170952@postoffice.reston.mci.net>";
    unsigned char v[SASL_CRAM_VERIFIER_LEN], d[16];
    char vhex[2 * SASL_CRAM_VERIFIER_LEN + 1], dhex[33], err[512] = "";
    struct sasl_users *u;
    struct sasl_check *c;

    sasl_cram_verifier("tanstaaftanstaaf", v);
    hex(v, sizeof(v), vhex);
    TEST_STREQ(vhex, TIM_VERIFIER);
    sasl_cram_digest(v, challenge, strlen(challenge), d);
    hex(d, sizeof(d), dhex);
    TEST_STREQ(dhex, "b913a602c7eda7a495b4e6e7334d3890");

    /* from the file: a verifier line, and a crypt line for the same user */
    u = sasl_users_load(write_file("cram", "tim:{CRAM-MD5}" TIM_VERIFIER "\n"
                                           "alice:" HASH_SECRET "\n"
                                           "tim:" HASH_HUNTER2 "\n"),
                        err, sizeof(err));
    TEST_CHECK(u != NULL, "load cram file: %s", err);
    if (u == NULL)
        return;
    TEST_INTEQ(sasl_users_count(u), 2);
    TEST_INTEQ(sasl_users_cram(u), 1);
    TEST_INTEQ(sasl_users_verify(u, "tim", "hunter2"), 1);
    /* the verifier is not a password */
    TEST_INTEQ(sasl_users_verify(u, "tim", "{CRAM-MD5}" TIM_VERIFIER), 0);
    c = sasl_check_new_cram(u, "tim", challenge, "b913a602c7eda7a495b4e6e7334d3890");
    TEST_INTEQ(sasl_check_run(c), 1);
    sasl_check_free(c);
    c = sasl_check_new_cram(u, "tim", challenge, "B913A602C7EDA7A495B4E6E7334D3890");
    TEST_INTEQ(sasl_check_run(c), 1);
    sasl_check_free(c);
    /* another challenge, a short digest, a user without a verifier, an unknown user */
    c = sasl_check_new_cram(u, "tim", "<1897.697170952@postoffice.reston.mci.net>",
                            "b913a602c7eda7a495b4e6e7334d3890");
    TEST_INTEQ(sasl_check_run(c), 0);
    sasl_check_free(c);
    c = sasl_check_new_cram(u, "tim", challenge, "b913a602c7eda7a495b4e6e7334d389");
    TEST_INTEQ(sasl_check_run(c), 0);
    sasl_check_free(c);
    c = sasl_check_new_cram(u, "alice", challenge, "b913a602c7eda7a495b4e6e7334d3890");
    TEST_INTEQ(sasl_check_run(c), 0);
    sasl_check_free(c);
    c = sasl_check_new_cram(u, "mallory", challenge, "b913a602c7eda7a495b4e6e7334d3890");
    TEST_INTEQ(sasl_check_run(c), 0);
    sasl_check_free(c);
    sasl_users_free(u);
}

/* the file holds password equivalents: readable by others is refused */
static void test_mode(void)
{
    const char *path = write_file("mode", "alice:" HASH_SECRET "\n");
    char err[512] = "", want[512];
    struct sasl_users *u;

    TEST_INTEQ(chmod(path, 0640), 0);
    u = sasl_users_load(path, err, sizeof(err));
    TEST_CHECK(u != NULL, "mode 0640: %s", err);
    sasl_users_free(u);
    TEST_INTEQ(chmod(path, 0644), 0);
    u = sasl_users_load(path, err, sizeof(err));
    TEST_CHECK(u == NULL, "mode 0644 accepted");
    sasl_users_free(u);
    snprintf(want, sizeof(want), "%s: readable by others (mode 0644): make it 0600 or 0640", path);
    TEST_CHECK(strncmp(err, want, strlen(want)) == 0, "got \"%s\", want \"%s...\"", err, want);
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
    static const char *const names[] = { "good", "empty", "bad", "long", "cram", "mode" };

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_good_file();
    test_empty_file();
    test_errors();
    test_long_line();
    test_cram_rfc2195();
    test_mode();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return test_summary();
}
