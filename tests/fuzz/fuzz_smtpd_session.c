/*
 * fuzz_smtpd_session - the SMTP command line parser and session state
 * machine (smtpd.c), bytes in, replies out, no network (smtpd_driver.h).
 * Input: byte 0 is flags (bit 0: the client is in mynetworks; bits 1-7:
 * send in chunks of that many bytes, 0: at once), the rest is everything
 * the client sends after the 220 greeting: commands, pipelined or not,
 * DATA content, anything. Checks: smtpd_driver.h.
 */
#include "smtpd_driver.h"
#include "support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    driver_init("smtpd_session", NULL,
                "[etrn_queues]\nbranch = example.org @example.net\n", 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 17)
        return 0;
    driver_run(data[0] & 1, NULL, 0, data + 1, size - 1, data[0] >> 1);
    return 0;
}
