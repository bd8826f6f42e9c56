#!/usr/bin/python3
"""odmr_site - a scripted ODMR site (RFC 2645) for the provider's tests.

  odmr_site.py --port PORT --user USER --password PW [--atrn 'DOMAINS']
      [--delay SECS] [--drop-in-data LINES] [--max-secs SECS]

Connects to 127.0.0.1:PORT (the provider's odmr_listen), EHLO, STARTTLS,
EHLO, AUTH PLAIN, "ATRN DOMAINS" (no argument when DOMAINS is empty) and
prints "atrn: <reply>". On 250 it becomes the SMTP server on the same
connection: "220", then answers EHLO (250), MAIL, RCPT, RSET, NOOP (250),
DATA (354), the final "." (250) and QUIT (221, then it closes), each reply
--delay seconds late. --drop-in-data N: in the first message's DATA, after N
content lines, it closes the connection (no reply to the dot ever goes out).
It stops after --max-secs (default 60) in any case.

Prints one line per event: "cmd: <command>" for each command (DATA's content
is not printed), "acked: <rcpt,...>" for each message answered 250 after its
dot, "dropped in data" when --drop-in-data closed, "closed by provider" when
the provider closed first, "quit" after QUIT, and at the end "messages: N"
(messages acknowledged) and "seconds: S" (from the 250 to the end).
"""
import argparse
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from smtp_client import Client, Closed  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--atrn", default="")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--drop-in-data", type=int, default=-1)
    ap.add_argument("--max-secs", type=float, default=60.0)
    o = ap.parse_args()

    c = Client(o.port, timeout=o.max_secs)
    c.reply()
    c.cmd("EHLO site.test")
    c.cmd("STARTTLS")
    c.starttls("localhost")
    c.cmd("EHLO site.test")
    c.auth_plain(o.user, o.password)
    r = c.cmd("ATRN " + o.atrn if o.atrn else "ATRN")
    print("atrn:", r[-1], flush=True)
    if not r[-1].startswith("250"):
        c.cmd("QUIT")
        c.close()
        return 0
    start = time.monotonic()
    deadline = start + o.max_secs
    acked = 0
    rcpts = []

    def answer(text):
        if o.delay > 0:
            time.sleep(o.delay)
        c.send(text.encode() + b"\r\n")

    answer("220 site.test ESMTP")
    try:
        while time.monotonic() < deadline:
            raw = c.rfile.readline()
            if not raw:
                print("closed by provider", flush=True)
                break
            line = raw.decode("latin-1").rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            print("cmd:", line, flush=True)
            if verb == "EHLO":
                answer("250 site.test")
            elif verb in ("MAIL", "RSET", "NOOP"):
                if verb != "NOOP":
                    rcpts = []
                answer("250 2.0.0 Ok")
            elif verb == "RCPT":
                rcpts.append(line.split(":", 1)[1].strip())
                answer("250 2.1.5 Ok")
            elif verb == "DATA":
                answer("354 End data with <CR><LF>.<CR><LF>")
                n = 0
                while True:
                    raw = c.rfile.readline()
                    if not raw:
                        raise Closed([])
                    if raw in (b".\r\n", b".\n"):
                        break
                    n += 1
                    if n == o.drop_in_data:
                        print("dropped in data", flush=True)
                        c.close()
                        print("messages:", acked)
                        return 0
                answer("250 2.0.0 Ok: queued")
                acked += 1
                print("acked:", ",".join(rcpts), flush=True)
            elif verb == "QUIT":
                answer("221 2.0.0 Bye")
                print("quit", flush=True)
                break
            else:
                answer("502 5.5.1 not here")
    except (Closed, OSError):
        print("closed by provider", flush=True)
    print("messages:", acked)
    print("seconds: %.1f" % (time.monotonic() - start))
    c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
