/*
 * fuzz_smtpd_etrn - the ETRN argument in smtpd: syntax, "@domain",
 * "#queue" ([etrn_queues]), "[address]" literals, the rate limit (100 per
 * client and second here, for 16 client addresses used in turn),
 * smtpd_etrn_restrictions and the reply the flush hook's answer becomes.
 * Input: byte 0 is flags (bit 0: the client is in mynetworks); every
 * further line becomes "ETRN <line>" after "EHLO client.example". Checks:
 * smtpd_driver.h, including that the flush hook only ever sees a lower-case
 * hostname or an address literal.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtpd_driver.h"
#include "support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    driver_init("smtpd_etrn", "etrn_rate_limit = 100\n",
                "[etrn_queues]\nbranch = example.org @example.net\nempty.q = example.com\n", 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf in = BUF_INIT;
    const char *p, *end;

    if (size < 1 || size > 1 << 14)
        return 0;
    buf_puts(&in, "EHLO client.example\r\n");
    p = (const char *) data + 1;
    end = (const char *) data + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);

        buf_puts(&in, "ETRN ");
        buf_append(&in, p, n);
        buf_puts(&in, "\r\n");
        p += n + 1;
    }
    driver_run(data[0] & 1, NULL, 0, (const uint8_t *) in.data, in.len, 0);
    buf_free(&in);
    return 0;
}
