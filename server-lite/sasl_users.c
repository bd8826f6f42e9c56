/*
 * sasl_users.c - AUTH users from a "user:crypt-hash" file, checked with
 * crypt_r (libxcrypt). The users are kept sorted for bsearch. An unknown
 * user costs one crypt_r against the first user's hash (or a fixed SHA-512
 * hash when the file is empty), so timing does not reveal user names.
 */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "sasl_users.h"

/* any SHA-512 crypt hash: the cost of a check when there is nobody to check */
#define DUMMY_HASH "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG."

struct sasl_user {
    char *name;
    char *hash;
    int line;
};

struct sasl_users {
    struct sasl_user *users;
    size_t count;
    struct crypt_data *cd;
};

/* user_cmp - order by name for qsort and bsearch */
static int user_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sasl_user *) a)->name, ((const struct sasl_user *) b)->name);
}

/* name_ok - a user name: no control characters, no blanks */
static int name_ok(const char *name)
{
    if (*name == 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *) name; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

/* hash_check - a full hash of a modern crypt(3) method; NULL: ok */
static const char *hash_check(struct crypt_data *cd, const char *hash)
{
    static const char *const modern[] = { "$y$", "$gy$", "$7$", "$2b$", "$2y$", "$6$", "$5$" };
    const char *out;
    size_t i;

    for (i = 0; i < sizeof(modern) / sizeof(modern[0]); i++)
        if (strncmp(hash, modern[i], strlen(modern[i])) == 0)
            break;
    if (i == sizeof(modern) / sizeof(modern[0]))
        return "not a modern crypt(3) hash ($y$, $gy$, $7$, $2b$, $2y$, $6$ or $5$: make one "
               "with \"openssl passwd -6\" or mkpasswd)";
    if (crypt_checksalt(hash) == CRYPT_SALT_INVALID)
        return "not a hash crypt(3) supports";
    /* a full hash comes back the same length; a bare setting ("$6$") does not */
    out = crypt_rn("", hash, cd, (int) sizeof(*cd));
    if (out == NULL || out[0] == '*' || strlen(out) != strlen(hash))
        return "not a hash crypt(3) supports";
    return NULL;
}

/* sasl_users_free - release the table */
void sasl_users_free(struct sasl_users *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < u->count; i++) {
        free(u->users[i].name);
        OPENSSL_cleanse(u->users[i].hash, strlen(u->users[i].hash));
        free(u->users[i].hash);
    }
    free(u->users);
    if (u->cd) {
        OPENSSL_cleanse(u->cd, sizeof(*u->cd));
        free(u->cd);
    }
    free(u);
}

/* sasl_users_load - read and check the whole file */
struct sasl_users *sasl_users_load(const char *path, char *err, size_t errlen)
{
    struct sasl_users *u = xcalloc(1, sizeof(*u));
    FILE *fp = fopen(path, "re");
    char *line = NULL, *colon, *p;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0;
    const char *why;

    if (fp == NULL) {
        snprintf(err, errlen, "smtpd_sasl_users_file %s: %s", path, strerror(errno));
        free(u);
        return NULL;
    }
    u->cd = xcalloc(1, sizeof(*u->cd));
    while ((n = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if ((size_t) n != strlen(line)) {
            snprintf(err, errlen, "%s:%d: NUL byte in line", path, lineno);
            goto fail;
        }
        for (p = line; *p == ' ' || *p == '\t'; p++)
            ;
        if (*p == 0 || *p == '#')
            continue;
        if ((colon = strchr(line, ':')) == NULL) {
            snprintf(err, errlen, "%s:%d: expected \"user:crypt-hash\"", path, lineno);
            goto fail;
        }
        *colon = 0;
        if (!name_ok(line)) {
            snprintf(err, errlen, "%s:%d: empty user name, or blanks or control characters in it",
                     path, lineno);
            goto fail;
        }
        if ((why = hash_check(u->cd, colon + 1)) != NULL) {
            snprintf(err, errlen, "%s:%d: user %s: %s", path, lineno, line, why);
            goto fail;
        }
        u->users = xreallocarray(u->users, u->count + 1, sizeof(*u->users));
        u->users[u->count].name = xstrdup(line);
        u->users[u->count].hash = xstrdup(colon + 1);
        u->users[u->count].line = lineno;
        u->count++;
    }
    if (ferror(fp)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto fail;
    }
    if (line) {
        OPENSSL_cleanse(line, cap);
        free(line);
    }
    if (fclose(fp) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        sasl_users_free(u);
        return NULL;
    }
    if (u->count > 0)
        qsort(u->users, u->count, sizeof(*u->users), user_cmp);
    for (size_t i = 1; i < u->count; i++)
        if (strcmp(u->users[i - 1].name, u->users[i].name) == 0) {
            int a = u->users[i - 1].line, b = u->users[i].line;

            snprintf(err, errlen, "%s:%d: user %s given twice (first on line %d)", path,
                     a > b ? a : b, u->users[i].name, a < b ? a : b);
            sasl_users_free(u);
            return NULL;
        }
    return u;

fail:
    if (line) {
        OPENSSL_cleanse(line, cap);
        free(line);
    }
    fclose(fp);
    sasl_users_free(u);
    return NULL;
}

/* a check that owns copies of what it needs: it outlives a reload of the users */
struct sasl_check {
    char *hash;
    char *password;
    int known;                   /* the user exists */
    struct crypt_data cd;
};

/* sasl_check_new - (loop thread) copy user's hash (or a stand-in) and the password */
struct sasl_check *sasl_check_new(const struct sasl_users *u, const char *user,
                                  const char *password)
{
    struct sasl_check *c = xcalloc(1, sizeof(*c));
    struct sasl_user key, *found = NULL;

    key.name = (char *) user;
    key.hash = NULL;
    if (u->count > 0)
        found = bsearch(&key, u->users, u->count, sizeof(*u->users), user_cmp);
    c->hash = xstrdup(found ? found->hash : u->count > 0 ? u->users[0].hash : DUMMY_HASH);
    c->password = xstrdup(password);
    c->known = found != NULL;
    return c;
}

/* sasl_check_run - (any thread) 1 when the password matches; one crypt_r */
int sasl_check_run(struct sasl_check *c)
{
    const char *out = crypt_rn(c->password, c->hash, &c->cd, (int) sizeof(c->cd));
    int ok = out != NULL && out[0] != '*' && strlen(out) == strlen(c->hash)
             && CRYPTO_memcmp(out, c->hash, strlen(c->hash)) == 0;

    OPENSSL_cleanse(c->cd.output, sizeof(c->cd.output));
    OPENSSL_cleanse(c->password, strlen(c->password));
    return c->known && ok;
}

/* sasl_check_free - wipe the password and free */
void sasl_check_free(struct sasl_check *c)
{
    if (c == NULL)
        return;
    OPENSSL_cleanse(c->password, strlen(c->password));
    free(c->password);
    free(c->hash);
    OPENSSL_cleanse(&c->cd, sizeof(c->cd));
    free(c);
}

/* sasl_users_verify - 1 when password is user's; always one crypt_r */
int sasl_users_verify(struct sasl_users *u, const char *user, const char *password)
{
    struct sasl_check *c = sasl_check_new(u, user, password);
    int ok = sasl_check_run(c);

    sasl_check_free(c);
    return ok;
}

/* sasl_users_count - number of users loaded */
size_t sasl_users_count(const struct sasl_users *u)
{
    return u->count;
}
