#!/usr/bin/python3
"""abuse_load - legitimate SMTP clients, optionally under a mix of attacks.

    abuse_load.py --port P --pid SERVER_PID --seconds S --tokens FILE
                  [--role legit|attack] [--domain D] [--local-domain L
                  --local-users N] [--user U]

Legitimate clients (LEGIT tasks) each loop: connect, wait for
220, EHLO, MAIL, RCPT to D, DATA with a 1 KB body carrying a unique token,
QUIT. Each connection comes from the next of 250 loopback addresses
(127.0.1.1 to 127.0.1.250), as mail from many MTAs would, so no single
legitimate address reaches a per-client limit. Every token answered 250 is
written to FILE, one per line. The 220
latency (connect to greeting) and the 250 latency (final dot to reply) are
recorded. With --role attack, instead (run as a second process next to the
legitimate one, so the attackers' own CPU does not slow the legitimate
clients' event loop), each from its own loopback source address:

  127.0.0.3  20 drippers: half drip a command one byte a second, half open
             DATA and drip the body; reconnect when cut off
  127.0.0.5  20 churners: connect, read the greeting, QUIT, as fast as allowed
  127.0.0.6  an AUTH guesser: STARTTLS, AUTH PLAIN with wrong passwords
  127.0.0.7  4 ETRN flooders: ETRN D in a loop
  127.0.0.8  a local sender: one 1 MB message to N local recipients, again
             every 30 s

Meanwhile (--role legit) the server's open file descriptors and RSS are
sampled every 100 ms. At the end one line of key=value pairs is printed. Every loop stops
at the deadline; every socket operation has a timeout.
"""
import argparse
import asyncio
import os
import random
import ssl
import string
import time

IO_TIMEOUT = 30.0


class Stats:
    def __init__(self):
        self.sent = 0
        self.failed = 0
        self.worst_220 = 0.0
        self.worst_250 = 0.0
        self.tokens = []
        self.counts = {}
        self.peak_fds = 0
        self.peak_rss_kb = 0
        self.legit_conns = 0

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1


async def read_reply(reader):
    """Read one (possibly multi-line) reply; return its last line, or "EOF"."""
    while True:
        line = await asyncio.wait_for(reader.readline(), IO_TIMEOUT)
        if not line:
            return "EOF"
        text = line.decode("latin-1").rstrip("\r\n")
        if len(text) < 4 or text[3] != "-":
            return text


async def command(reader, writer, line):
    writer.write(line.encode("latin-1") + b"\r\n")
    await writer.drain()
    return await read_reply(reader)


async def connect(port, src):
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0)), IO_TIMEOUT)


def close(writer):
    try:
        writer.close()
    except Exception:
        pass


async def legit_client(args, stats, deadline, n):
    body = "X" * 72 + "\r\n"
    body = body * 14
    while time.monotonic() < deadline:
        token = "tok-%d-%d-%s" % (n, stats.sent + stats.failed,
                                 "".join(random.choices(string.ascii_lowercase, k=10)))
        writer = None
        try:
            t0 = time.monotonic()
            stats.legit_conns += 1
            src = "127.0.1.%d" % (stats.legit_conns % 250 + 1)
            reader, writer = await connect(args.port, src)
            greet = await read_reply(reader)
            stats.worst_220 = max(stats.worst_220, time.monotonic() - t0)
            if not greet.startswith("220"):
                stats.failed += 1
                stats.count("legit greeting " + greet[:3])
                await asyncio.sleep(0.05)
                continue
            ok = (await command(reader, writer, "EHLO legit.test")).startswith("250")
            ok = ok and (await command(reader, writer, "MAIL FROM:<legit@client.test>")).startswith("250")
            ok = ok and (await command(reader, writer, "RCPT TO:<rcpt@%s>" % args.domain)).startswith("250")
            ok = ok and (await command(reader, writer, "DATA")).startswith("354")
            if ok:
                writer.write(("Subject: %s\r\nMessage-Id: <%s@client.test>\r\n\r\n%s" %
                              (token, token, body)).encode())
                t1 = time.monotonic()
                reply = await command(reader, writer, ".")
                stats.worst_250 = max(stats.worst_250, time.monotonic() - t1)
                if reply.startswith("250"):
                    stats.sent += 1
                    stats.tokens.append(token)
                else:
                    stats.failed += 1
                    stats.count("legit data " + reply[:3])
            else:
                stats.failed += 1
            await command(reader, writer, "QUIT")
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            stats.failed += 1
            stats.count("legit error " + type(e).__name__)
        finally:
            if writer:
                close(writer)


async def dripper(args, stats, deadline, in_data):
    while time.monotonic() < deadline:
        writer = None
        try:
            reader, writer = await connect(args.port, "127.0.0.3")
            greet = await read_reply(reader)
            if not greet.startswith("220"):
                stats.count("drip refused " + greet[:9])
                close(writer)
                await asyncio.sleep(1)
                continue
            if in_data:
                await command(reader, writer, "EHLO drip.test")
                await command(reader, writer, "MAIL FROM:<drip@drip.test>")
                await command(reader, writer, "RCPT TO:<rcpt@%s>" % args.domain)
                if not (await command(reader, writer, "DATA")).startswith("354"):
                    stats.count("drip no data")
                    continue
            payload = b"Subject: drip\r\n\r\n" + b"y" * 100000 if in_data else b"NOOP" + b" " * 400
            i = 0
            closed = None
            while time.monotonic() < deadline and i < len(payload):
                writer.write(payload[i:i + 1])
                await writer.drain()
                i += 1
                try:
                    line = await asyncio.wait_for(reader.readline(), 1.0)
                    closed = line.decode("latin-1").strip() or "EOF"
                    break
                except asyncio.TimeoutError:
                    pass
            if closed is not None:
                stats.count("drip cut " + closed[:9])
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            stats.count("drip reset")
        finally:
            if writer:
                close(writer)


async def churner(args, stats, deadline):
    while time.monotonic() < deadline:
        writer = None
        try:
            reader, writer = await connect(args.port, "127.0.0.5")
            greet = await read_reply(reader)
            stats.count("churn " + greet[:9])
            if greet.startswith("220"):
                await command(reader, writer, "QUIT")
            else:
                await asyncio.sleep(0.01)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            stats.count("churn error")
            await asyncio.sleep(0.01)
        finally:
            if writer:
                close(writer)


async def auth_guesser(args, stats, deadline):
    import base64
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    guess = 0
    while time.monotonic() < deadline:
        writer = None
        try:
            reader, writer = await connect(args.port, "127.0.0.6")
            if not (await read_reply(reader)).startswith("220"):
                stats.count("auth refused")
                await asyncio.sleep(0.1)
                continue
            await command(reader, writer, "EHLO guess.test")
            if not (await command(reader, writer, "STARTTLS")).startswith("220"):
                stats.count("auth no tls")
                continue
            await writer.start_tls(ctx)
            await command(reader, writer, "EHLO guess.test")
            while time.monotonic() < deadline:
                guess += 1
                cred = base64.b64encode(("\0%s\0wrong%d" % (args.user, guess)).encode()).decode()
                reply = await command(reader, writer, "AUTH PLAIN " + cred)
                stats.count("auth " + reply[:3])
                if reply == "EOF" or reply.startswith("421"):
                    break
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
            stats.count("auth error")
            await asyncio.sleep(0.05)
        finally:
            if writer:
                close(writer)


async def etrn_flooder(args, stats, deadline):
    while time.monotonic() < deadline:
        writer = None
        try:
            reader, writer = await connect(args.port, "127.0.0.7")
            if not (await read_reply(reader)).startswith("220"):
                stats.count("etrn refused")
                await asyncio.sleep(0.1)
                continue
            await command(reader, writer, "EHLO flood.test")
            while time.monotonic() < deadline:
                reply = await command(reader, writer, "ETRN " + args.domain)
                stats.count("etrn " + reply[:3])
                if reply == "EOF" or reply.startswith("421"):
                    break
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            stats.count("etrn error")
            await asyncio.sleep(0.05)
        finally:
            if writer:
                close(writer)


async def local_sender(args, stats, deadline):
    line = ("L" * 998 + "\r\n").encode()
    body = line * 1050                      # about 1 MB
    while time.monotonic() < deadline:
        writer = None
        start = time.monotonic()
        try:
            reader, writer = await connect(args.port, "127.0.0.8")
            await read_reply(reader)
            await command(reader, writer, "EHLO local.sender")
            await command(reader, writer, "MAIL FROM:<big@sender.test>")
            for i in range(1, args.local_users + 1):
                await command(reader, writer, "RCPT TO:<u%d@%s>" % (i, args.local_domain))
            if (await command(reader, writer, "DATA")).startswith("354"):
                writer.write(b"Subject: big\r\n\r\n" + body)
                reply = await command(reader, writer, ".")
                stats.count("local " + reply[:3])
            await command(reader, writer, "QUIT")
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            stats.count("local error")
        finally:
            if writer:
                close(writer)
        await asyncio.sleep(max(0.0, min(30.0 - (time.monotonic() - start), deadline - time.monotonic())))


async def sampler(args, stats, deadline):
    while time.monotonic() < deadline:
        try:
            stats.peak_fds = max(stats.peak_fds, len(os.listdir("/proc/%d/fd" % args.pid)))
            with open("/proc/%d/status" % args.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        stats.peak_rss_kb = max(stats.peak_rss_kb, int(line.split()[1]))
        except OSError:
            pass
        await asyncio.sleep(0.1)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--role", choices=("legit", "attack"), default="legit")
    ap.add_argument("--domain", default="bench.test")
    ap.add_argument("--local-domain", default="local.test")
    ap.add_argument("--local-users", type=int, default=100)
    ap.add_argument("--user", default="alice")
    ap.add_argument("--legit", type=int, default=4)
    args = ap.parse_args()

    stats = Stats()
    start = time.monotonic()
    deadline = start + args.seconds
    if args.role == "legit":
        tasks = [sampler(args, stats, deadline)]
        tasks += [legit_client(args, stats, deadline, n) for n in range(args.legit)]
    else:
        tasks = [dripper(args, stats, deadline, n % 2 == 1) for n in range(20)]
        tasks += [churner(args, stats, deadline) for _ in range(20)]
        tasks += [auth_guesser(args, stats, deadline)]
        tasks += [etrn_flooder(args, stats, deadline) for _ in range(4)]
        tasks += [local_sender(args, stats, deadline)]
    # a task stuck in a read past the deadline is cut off by the outer bound
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), args.seconds + 2 * IO_TIMEOUT)
    except asyncio.TimeoutError:
        stats.count("tasks cut at the outer bound")
    elapsed = time.monotonic() - start
    with open(args.tokens, "w") as f:
        for t in stats.tokens:
            f.write(t + "\n")
    print("sent=%d failed=%d rate=%.1f worst_220_ms=%.0f worst_250_ms=%.0f peak_fds=%d peak_rss_kb=%d"
          % (stats.sent, stats.failed, stats.sent / elapsed, stats.worst_220 * 1000,
             stats.worst_250 * 1000, stats.peak_fds, stats.peak_rss_kb))
    for k in sorted(stats.counts):
        print("  %-40s %d" % (k, stats.counts[k]))


if __name__ == "__main__":
    asyncio.run(main())
