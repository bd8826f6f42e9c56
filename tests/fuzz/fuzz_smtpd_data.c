/*
 * fuzz_smtpd_data - smtpd's DATA reader: dot-stuffing, <CRLF>.<CRLF>, bare
 * CR and bare LF (SMTP smuggling), over-long lines, message_size_limit
 * (20000 here), the header scan for Message-ID, the queue write and commit.
 * Input: byte 0 is the chunk size (0: all at once), the rest is what the
 * client sends after "DATA" got its 354 (a valid EHLO, MAIL, RCPT and DATA
 * go first). Whatever follows the end of the data is read as commands
 * again. Checks: smtpd_driver.h; and when the data up to the first
 * <CRLF>.<CRLF> is a message smtpd must take (every line ends in CRLF, holds
 * no other CR or LF, fits in 1000 octets, and the unstuffed total with line
 * ends stays within message_size_limit), it is queued, and its content is
 * exactly those lines with one leading dot removed from each (a model of
 * RFC 5321 4.5.2 written here, independent of smtpd's reader).
 */
#include <string.h>

#include "buf.h"
#include "smtpd_driver.h"
#include "support.h"

static const char prefix[] = "EHLO client.example\r\nMAIL FROM:<a@example.net> SIZE=100\r\n"
                             "RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    driver_init("smtpd_data", NULL, NULL, 0);
    return 0;
}

#define SIZE_LIMIT 20000 /* message_size_limit of smtpd_driver's configuration */
#define TEXT_MAX 1000    /* SMTPD_TEXT_MAX: a line with its CRLF */

/* model - the content of a well-formed message in p, or -1 when it is not one */
static int model(const char *p, size_t len, struct buf *out)
{
    const char *end = p + len;
    long long size = 0;

    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t) (end - p));
        size_t n;

        if (lf == NULL || lf == p || lf[-1] != '\r')
            return -1;
        n = (size_t) (lf - p) - 1; /* without CRLF */
        if (memchr(p, '\r', n) != NULL || n + 2 > TEXT_MAX)
            return -1;
        if (n == 1 && p[0] == '.')
            return size <= SIZE_LIMIT ? 0 : -1;
        if (n > 0 && p[0] == '.') {
            p++;
            n--;
        }
        buf_append(out, p, n);
        buf_puts(out, "\r\n");
        size += (long long) n + 2;
        p = lf + 1;
    }
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf want = BUF_INIT;

    if (size < 1 || size > 1 << 17)
        return 0;
    if (model((const char *) data + 1, size - 1, &want) == 0)
        driver_expect(want.data ? want.data : "", want.len);
    driver_run(0, prefix, strlen(prefix), data + 1, size - 1, data[0]);
    buf_free(&want);
    return 0;
}
