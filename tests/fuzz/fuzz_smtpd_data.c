/*
 * fuzz_smtpd_data - smtpd's DATA reader: dot-stuffing, <CRLF>.<CRLF>, bare
 * CR and bare LF (SMTP smuggling), over-long lines, message_size_limit
 * (20000 here), the header scan for Message-ID, the queue write and commit.
 * Input: byte 0 is the chunk size (0: all at once), the rest is what the
 * client sends after "DATA" got its 354 (a valid EHLO, MAIL, RCPT and DATA
 * go first). Whatever follows the end of the data is read as commands
 * again. Checks: smtpd_driver.h.
 */
#include <string.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 17)
        return 0;
    driver_run(0, prefix, strlen(prefix), data + 1, size - 1, data[0]);
    return 0;
}
