/*
 * fuzz_etrn_reply - the agent's judgement of an ETRN reply (etrn_reply.c).
 * Input: reply lines as a server sends them ("253-...\r\n253 OK, 3 pending
 * ..."). Each line's code goes to etrn_reply_classify() and its text to
 * etrn_reply_pending(); also domain_etrn_arg(), which the agent applies to
 * every argument before it reaches the wire. Checks: a verdict is one of the
 * three, a meaning is always set, 2xx codes that mean "started" are OK,
 * 459 and every 5xx are permanent, every other 4xx temporary; an argument judged valid holds no
 * byte that could end or split an SMTP command.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "etrn_reply.h"
#include "support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    support_init("etrn_reply");
    return 0;
}

/* check_line - one reply line */
static void check_line(const char *line)
{
    const char *meaning = NULL, *why = NULL;
    int code = 0;
    enum etrn_verdict v;
    enum etrn_arg_kind kind;

    for (int i = 0; i < 3 && line[i] >= '0' && line[i] <= '9'; i++)
        code = code * 10 + (line[i] - '0');
    v = etrn_reply_classify(code, &meaning);
    if (meaning == NULL || (v != ETRN_OK && v != ETRN_TEMP && v != ETRN_PERM))
        abort();
    if (strcmp(etrn_verdict_name(v), "unknown") == 0)
        abort();
    if (code >= 250 && code <= 253 && v != ETRN_OK)
        abort();
    if (code >= 400 && code < 500 && v != (code == 459 ? ETRN_PERM : ETRN_TEMP))
        abort();
    if (code >= 500 && code < 600 && v != ETRN_PERM)
        abort();
    (void) etrn_reply_pending(strlen(line) > 4 ? line + 4 : line);
    kind = domain_etrn_arg(line, &why);
    if (kind == ETRN_ARG_INVALID) {
        if (why == NULL)
            abort();
    } else if (strpbrk(line, "\r\n \t") != NULL || strlen(line) > DOMAIN_MAX + 2) {
        abort();
    }
    for (const unsigned char *p = (const unsigned char *) line; kind != ETRN_ARG_INVALID && *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *line, *save;

    memcpy(text, data, size);
    text[size] = 0;
    (void) etrn_reply_pending(text);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);

        if (n && line[n - 1] == '\r')
            line[n - 1] = 0;
        check_line(line);
    }
    free(text);
    return 0;
}
