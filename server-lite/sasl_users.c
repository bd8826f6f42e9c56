/*
 * sasl_users.c - AUTH users from a "user:crypt-hash" file, checked with
 * crypt_r (libxcrypt), and "user:{CRAM-MD5}<64 hex>" verifiers for CRAM-MD5.
 * The users are kept sorted for bsearch. An unknown user costs one crypt_r
 * against the first user's hash (or a fixed SHA-512 hash when the file is
 * empty), so timing does not reveal user names; a CRAM-MD5 check costs two
 * MD5 blocks whether the user exists or not.
 *
 * The {CRAM-MD5} verifier is Dovecot's (doveadm pw -s CRAM-MD5): the MD5
 * chaining values A, B, C, D after the outer key block (key XOR opad), then
 * those after the inner block (key XOR ipad), each 32-bit word written least
 * significant byte first, as hex. HMAC-MD5(key, text) resumes the inner
 * context with text, the outer one with the inner digest (RFC 2104).
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* MD5_CTX: the only way to resume a stored MD5 state */

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/md5.h>

#include "alloc.h"
#include "sasl_users.h"

/* any SHA-512 crypt hash: the cost of a check when there is nobody to check */
#define DUMMY_HASH "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG."

#define CRAM_PREFIX "{CRAM-MD5}"

struct sasl_user {
    char *name;
    char *hash;                  /* crypt(3) hash, or NULL */
    unsigned char cram[SASL_CRAM_VERIFIER_LEN]; /* valid when has_cram */
    int has_cram;
    int line;
};

struct sasl_users {
    struct sasl_user *users;
    size_t count;
    size_t ncram;                /* users with a CRAM-MD5 verifier */
    struct crypt_data *cd;
};

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* hex_decode - exactly 2 * len hex digits into out; -1 otherwise */
static int hex_decode(const char *hex, unsigned char *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int hi = hexval((unsigned char) hex[2 * i]), lo;

        if (hi < 0 || (lo = hexval((unsigned char) hex[2 * i + 1])) < 0)
            return -1;
        out[i] = (unsigned char) (hi << 4 | lo);
    }
    return hex[2 * len] == 0 ? 0 : -1;
}

/* put_le32 / get_le32 - Dovecot's byte order for the chaining values */
static void put_le32(unsigned char *p, MD5_LONG v)
{
    p[0] = (unsigned char) (v & 0xff);
    p[1] = (unsigned char) (v >> 8 & 0xff);
    p[2] = (unsigned char) (v >> 16 & 0xff);
    p[3] = (unsigned char) (v >> 24 & 0xff);
}

static MD5_LONG get_le32(const unsigned char *p)
{
    return (MD5_LONG) p[0] | (MD5_LONG) p[1] << 8 | (MD5_LONG) p[2] << 16
           | (MD5_LONG) p[3] << 24;
}

/* sasl_cram_verifier - the {CRAM-MD5} verifier of a password (RFC 2104 key handling) */
void sasl_cram_verifier(const char *password, unsigned char out[SASL_CRAM_VERIFIER_LEN])
{
    unsigned char key[MD5_CBLOCK] = { 0 }, block[MD5_CBLOCK];
    size_t len = strlen(password);
    MD5_CTX ctx;

    if (len > MD5_CBLOCK)
        MD5((const unsigned char *) password, len, key);
    else
        memcpy(key, password, len);
    for (int outer = 1; outer >= 0; outer--) {
        unsigned char *o = out + (outer ? 0 : 16);

        for (size_t i = 0; i < MD5_CBLOCK; i++)
            block[i] = key[i] ^ (outer ? 0x5c : 0x36);
        MD5_Init(&ctx);
        MD5_Update(&ctx, block, sizeof(block));
        put_le32(o, ctx.A);
        put_le32(o + 4, ctx.B);
        put_le32(o + 8, ctx.C);
        put_le32(o + 12, ctx.D);
    }
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(&ctx, sizeof(ctx));
}

/* resume - an MD5 context that has hashed one 64-byte block with the stored state */
static void resume(MD5_CTX *ctx, const unsigned char *state)
{
    MD5_Init(ctx);
    ctx->A = get_le32(state);
    ctx->B = get_le32(state + 4);
    ctx->C = get_le32(state + 8);
    ctx->D = get_le32(state + 12);
    ctx->Nl = MD5_CBLOCK * 8; /* bits so far */
    ctx->Nh = 0;
}

/* sasl_cram_digest - HMAC-MD5(password, challenge) from the password's verifier */
void sasl_cram_digest(const unsigned char verifier[SASL_CRAM_VERIFIER_LEN], const char *challenge,
                      size_t len, unsigned char digest[16])
{
    unsigned char inner[MD5_DIGEST_LENGTH];
    MD5_CTX ctx;

    resume(&ctx, verifier + 16);
    MD5_Update(&ctx, challenge, len);
    MD5_Final(inner, &ctx);
    resume(&ctx, verifier);
    MD5_Update(&ctx, inner, sizeof(inner));
    MD5_Final(digest, &ctx);
    OPENSSL_cleanse(&ctx, sizeof(ctx));
    OPENSSL_cleanse(inner, sizeof(inner));
}

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
        if (u->users[i].hash)
            OPENSSL_cleanse(u->users[i].hash, strlen(u->users[i].hash));
        free(u->users[i].hash);
    }
    if (u->users)
        OPENSSL_cleanse(u->users, u->count * sizeof(*u->users));
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
    struct stat st;

    if (fp == NULL) {
        snprintf(err, errlen, "smtpd_sasl_users_file %s: %s", path, strerror(errno));
        free(u);
        return NULL;
    }
    if (fstat(fileno(fp), &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        fclose(fp);
        free(u);
        return NULL;
    }
    if (st.st_mode & S_IROTH) {
        /* the verifiers are password equivalents for CRAM-MD5 */
        snprintf(err, errlen, "%s: readable by others (mode %04o): make it 0600 or 0640 "
                 "(it holds password equivalents)", path, (unsigned) (st.st_mode & 07777));
        fclose(fp);
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
        u->users = xreallocarray(u->users, u->count + 1, sizeof(*u->users));
        memset(&u->users[u->count], 0, sizeof(*u->users));
        if (strncmp(colon + 1, CRAM_PREFIX, strlen(CRAM_PREFIX)) == 0) {
            if (hex_decode(colon + 1 + strlen(CRAM_PREFIX), u->users[u->count].cram,
                           SASL_CRAM_VERIFIER_LEN) != 0) {
                snprintf(err, errlen, "%s:%d: user %s: " CRAM_PREFIX " wants 64 hex digits "
                         "(as doveadm pw -s CRAM-MD5 prints them)", path, lineno, line);
                goto fail;
            }
            u->users[u->count].has_cram = 1;
        } else if ((why = hash_check(u->cd, colon + 1)) != NULL) {
            snprintf(err, errlen, "%s:%d: user %s: %s", path, lineno, line, why);
            goto fail;
        } else {
            u->users[u->count].hash = xstrdup(colon + 1);
        }
        u->users[u->count].name = xstrdup(line);
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
    /* a user may have one crypt hash line and one verifier line: merge them */
    for (size_t i = 1; i < u->count; i++) {
        struct sasl_user *prev = &u->users[i - 1], *c = &u->users[i];
        int a = prev->line, b = c->line;

        if (strcmp(prev->name, c->name) != 0)
            continue;
        if ((prev->hash && c->hash) || (prev->has_cram && c->has_cram)) {
            snprintf(err, errlen, "%s:%d: user %s given twice (first on line %d)", path,
                     a > b ? a : b, c->name, a < b ? a : b);
            sasl_users_free(u);
            return NULL;
        }
        if (c->hash)
            prev->hash = c->hash;
        else
            memcpy(prev->cram, c->cram, sizeof(prev->cram));
        prev->has_cram = 1;
        free(c->name);
        OPENSSL_cleanse(c, sizeof(*c));
        memmove(c, c + 1, (u->count - i - 1) * sizeof(*c));
        u->count--;
        i--;
    }
    for (size_t i = 0; i < u->count; i++)
        u->ncram += u->users[i].has_cram != 0;
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
    char *hash;                  /* crypt(3); NULL: a CRAM-MD5 check */
    char *password;              /* or the challenge */
    unsigned char cram[SASL_CRAM_VERIFIER_LEN];
    unsigned char digest[16];    /* what the client answered */
    int known;                   /* the user exists (and has what the mechanism needs) */
    struct crypt_data cd;
};

/* stand_in - a crypt hash to spend the time of a check on when the user has none */
static const char *stand_in(const struct sasl_users *u)
{
    for (size_t i = 0; i < u->count; i++)
        if (u->users[i].hash)
            return u->users[i].hash;
    return DUMMY_HASH;
}

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
    if (found && found->hash == NULL)
        found = NULL; /* a CRAM-MD5 verifier only: no password to check against */
    c->hash = xstrdup(found ? found->hash : stand_in(u));
    c->password = xstrdup(password);
    c->known = found != NULL;
    return c;
}

/* sasl_check_new_cram - (loop thread) a CRAM-MD5 check: challenge, and the 32 hex digits sent */
struct sasl_check *sasl_check_new_cram(const struct sasl_users *u, const char *user,
                                       const char *challenge, const char *digest_hex)
{
    struct sasl_check *c = xcalloc(1, sizeof(*c));
    struct sasl_user key, *found = NULL;

    key.name = (char *) user;
    if (u->count > 0)
        found = bsearch(&key, u->users, u->count, sizeof(*u->users), user_cmp);
    if (found && !found->has_cram)
        found = NULL;
    if (found)
        memcpy(c->cram, found->cram, sizeof(c->cram));
    c->password = xstrdup(challenge);
    c->known = found != NULL && hex_decode(digest_hex, c->digest, sizeof(c->digest)) == 0;
    return c;
}

/* sasl_check_run - (any thread) 1 when the password matches; one crypt_r */
int sasl_check_run(struct sasl_check *c)
{
    if (c->hash == NULL) {
        unsigned char want[16];
        int ok;

        sasl_cram_digest(c->cram, c->password, strlen(c->password), want);
        ok = CRYPTO_memcmp(want, c->digest, sizeof(want)) == 0;
        OPENSSL_cleanse(want, sizeof(want));
        return c->known && ok;
    }
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
    OPENSSL_cleanse(c, sizeof(*c));
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

/* sasl_users_cram - the number of users with a CRAM-MD5 verifier */
size_t sasl_users_cram(const struct sasl_users *u)
{
    return u->ncram;
}

/* sasl_users_count - number of users loaded */
size_t sasl_users_count(const struct sasl_users *u)
{
    return u->count;
}
