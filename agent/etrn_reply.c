#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "etrn_reply.h"

/* etrn_reply_classify - RFC 1985 reply code to verdict and meaning */
enum etrn_verdict etrn_reply_classify(int code, const char **meaning)
{
    static const struct {
        int code;
        enum etrn_verdict verdict;
        const char *meaning;
    } known[] = {
        { 250, ETRN_OK, "queuing started" },
        { 251, ETRN_OK, "no messages waiting" },
        { 252, ETRN_OK, "pending messages started" },
        { 253, ETRN_OK, "pending messages started" },
        { 458, ETRN_TEMP, "unable to queue messages (temporary)" },
        { 459, ETRN_PERM, "node not allowed" },
        { 500, ETRN_PERM, "ETRN not recognized" },
        { 501, ETRN_PERM, "syntax error in ETRN argument" },
        { 502, ETRN_PERM, "ETRN not implemented" },
        { 530, ETRN_PERM, "authentication required" },
        { 554, ETRN_PERM, "ETRN refused by policy" },
    };
    const char *dummy;

    if (meaning == NULL)
        meaning = &dummy;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (known[i].code == code) {
            *meaning = known[i].meaning;
            return known[i].verdict;
        }
    }
    if (code >= 400 && code < 500) {
        *meaning = "temporary failure";
        return ETRN_TEMP;
    }
    if (code >= 500 && code < 600) {
        *meaning = "permanent failure";
        return ETRN_PERM;
    }
    *meaning = code == 0 ? "no reply" : "unexpected reply";
    return ETRN_TEMP;
}

/* etrn_reply_pending - N from "OK, N pending messages for node X started" */
long etrn_reply_pending(const char *text)
{
    const char *p;

    if (text == NULL)
        return -1;
    for (p = text; *p; p++) {
        if (isdigit((unsigned char) *p) && (p == text || !isalnum((unsigned char) p[-1]))) {
            char *end;
            long n = strtol(p, &end, 10);

            if (strncmp(end, " pending", 8) == 0)
                return n;
            p = end - 1;
        }
    }
    return -1;
}

/* etrn_verdict_name - "ok", "temporary", "permanent" */
const char *etrn_verdict_name(enum etrn_verdict verdict)
{
    static const char *const names[] = {
        [ETRN_OK] = "ok", [ETRN_TEMP] = "temporary", [ETRN_PERM] = "permanent",
    };

    return (size_t) verdict < sizeof(names) / sizeof(names[0]) ? names[verdict] : "unknown";
}
