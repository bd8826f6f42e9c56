/*
 * fuzz_atrn - the agent's ODMR parts that read what a provider sends or
 * build what goes on the wire: the CRAM-MD5 answer to a 334 challenge
 * (sasl_client.c), the ATRN command from a domain list and the ATRN reply
 * judgement (atrn_reply.c).
 * Input: lines. The first is a challenge as a 334 reply carries it; every
 * line is also a domain list (split on blanks) and a reply (its code).
 * Checks: an answer is NULL or base64 of "user " + 32 lowercase hex digits;
 * a command built is "ATRN " + lowercase LDH names and commas, within 510
 * bytes, never holding CR, LF, NUL or a blank after the verb; a refused list
 * has a reason and an index; every code gets a meaning and one of the three
 * verdicts, 250 and 453 OK, 5xx permanent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "atrn_reply.h"
#include "buf.h"
#include "sasl_client.h"
#include "support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    support_init("atrn");
    return 0;
}

/* check_answer - base64("fuzz " + 32 hex) or NULL */
static void check_answer(const char *challenge)
{
    char *answer = sasl_cram_md5("fuzz", "secret", challenge);
    unsigned char raw[128];
    int n;

    if (answer == NULL)
        return;
    if (strlen(answer) >= sizeof(raw))
        abort();
    n = EVP_DecodeBlock(raw, (const unsigned char *) answer, (int) strlen(answer));
    if (n < 37 || memcmp(raw, "fuzz ", 5) != 0)
        abort();
    for (int i = 5; i < 37; i++)
        if (!((raw[i] >= '0' && raw[i] <= '9') || (raw[i] >= 'a' && raw[i] <= 'f')))
            abort();
    free(answer);
}

/* check_command - the domains of one line as an ATRN list */
static void check_command(char *line)
{
    char *domains[64], *save = NULL;
    size_t n = 0, bad = 999;
    const char *why = NULL;
    struct buf cmd = BUF_INIT;

    for (char *w = strtok_r(line, " \t", &save); w && n < 64; w = strtok_r(NULL, " \t", &save))
        domains[n++] = w;
    if (atrn_command(domains, n, &cmd, &bad, &why) != 0) {
        if (why == NULL || bad > n)
            abort();
    } else {
        const char *c = buf_cstr(&cmd);

        if (strncmp(c, "ATRN ", 5) != 0 || cmd.len + 2 > ATRN_LINE_MAX || strlen(c) != cmd.len)
            abort();
        for (const char *p = c + 5; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'
                  || *p == ','))
                abort();
    }
    buf_free(&cmd);
}

/* check_reply - the verdict of a reply line's code */
static void check_reply(const char *line)
{
    const char *meaning = NULL;
    int code = 0;
    enum etrn_verdict v;

    for (int i = 0; i < 3 && line[i] >= '0' && line[i] <= '9'; i++)
        code = code * 10 + (line[i] - '0');
    v = atrn_reply_classify(code, &meaning);
    if (meaning == NULL || (v != ETRN_OK && v != ETRN_TEMP && v != ETRN_PERM))
        abort();
    if ((code == 250 || code == 453) && v != ETRN_OK)
        abort();
    if (code >= 500 && code < 600 && v != ETRN_PERM)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *line, *save;
    int first = 1;

    memcpy(text, data, size);
    text[size] = 0;
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);

        if (n && line[n - 1] == '\r')
            line[n - 1] = 0;
        if (first)
            check_answer(line);
        first = 0;
        check_reply(line);
        check_command(line);
    }
    free(text);
    return 0;
}
