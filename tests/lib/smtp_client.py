"""smtp_client - the one SMTP client of the e2e tests (loopback only).

  smtp_client.py [options] PORT [CMD...]

Connects to 127.0.0.1:PORT (or -H HOST), reads the greeting, optionally
greets, starts TLS and authenticates (none of that printed; a refusal prints
"setup failed: VERB -> REPLY" and exits 1), then sends each CMD with CRLF and
prints the reply to it. CMD takes Python escapes (\\r, \\x00, \\t ...), so a
case can hold bytes the shell cannot. After a DATA answered 354 the CMDs up to
"." are message lines: sent without waiting, and the reply to "." printed.

  -s SRC       bind the client to source address SRC (127.0.0.2, ::1 ...)
  -H HOST      connect to HOST instead of 127.0.0.1
  -e NAME      send "EHLO NAME" first (must be answered 250)
  -t           STARTTLS after EHLO (certificate not verified), then EHLO again
  -a USER:PW   AUTH PLAIN (after -t when given); must be answered 235
  -g           print the greeting too
  -f           print every line of a reply, not only the last
  -c           print the dialogue as a transcript: "C: cmd" and "S: line"
  -r           raw: each CMD is "N:DATA"; DATA is sent as is (escapes
               decoded, no CRLF added) and the next N replies are printed
  -w SECS      socket timeout (default 10)

The server closing the connection prints "EOF" and ends the session; no
reply within the timeout prints "TIMEOUT".

As a module (sys.path.insert(0, "tests/lib")): Client(port, src=None,
host="127.0.0.1", timeout=10) with .reply() -> [lines], .cmd(text) ->
[lines], .send(bytes), .starttls(name), .auth_plain(user, pw), .close().
"""

import base64
import socket
import ssl
import sys


class Closed(Exception):
    """The server closed the connection before a complete reply."""


def unescape(text):
    """Python escapes in a command line, keeping every byte 0-255."""
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


class Client:
    """One SMTP connection; replies are lists of lines without CRLF."""

    def __init__(self, port, src=None, host="127.0.0.1", timeout=10.0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if src:
            self.sock.bind((src, 0))
        self.sock.connect((host, port))
        self.rfile = self.sock.makefile("rb")

    def reply(self):
        lines = []
        while True:
            raw = self.rfile.readline()
            if not raw:
                raise Closed(lines)
            line = raw.decode("latin-1").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return lines

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, text):
        self.send(unescape(text) + b"\r\n")
        return self.reply()

    def starttls(self, name="localhost"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname=name)
        self.rfile = self.sock.makefile("rb")

    def auth_plain(self, user, password):
        tok = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
        return self.cmd("AUTH PLAIN " + tok.decode())

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def parse(argv):
    opts = {"src": None, "host": "127.0.0.1", "ehlo": None, "tls": False,
            "auth": None, "greeting": False, "full": False, "transcript": False,
            "raw": False, "timeout": 10.0}
    flags = {"-t": "tls", "-g": "greeting", "-f": "full", "-c": "transcript", "-r": "raw"}
    valued = {"-s": "src", "-H": "host", "-e": "ehlo", "-a": "auth", "-w": "timeout"}
    while argv and argv[0].startswith("-"):
        a = argv.pop(0)
        if a in flags:
            opts[flags[a]] = True
        elif a in valued and argv:
            opts[valued[a]] = argv.pop(0)
        else:
            sys.exit("smtp_client.py: bad option %s" % a)
    if not argv:
        sys.exit(__doc__)
    opts["timeout"] = float(opts["timeout"])
    return opts, int(argv[0]), argv[1:]


class Printer:
    def __init__(self, opts):
        self.full = opts["full"] or opts["transcript"]
        self.transcript = opts["transcript"]

    def sent(self, text):
        if self.transcript:
            print("C: " + text)

    def got(self, lines):
        for line in (lines if self.full else lines[-1:]):
            print(("S: " if self.transcript else "") + line)


def setup(c, opts):
    """EHLO, STARTTLS, AUTH as asked; exits 1 on a refusal."""
    def must(text, code, show=None):
        r = c.cmd(text)
        if not r[-1].startswith(code):
            print("setup failed: %s -> %s" % (show or text.split(" ")[0], r[-1]))
            sys.exit(1)
    name = opts["ehlo"]
    if name:
        must("EHLO " + name, "250")
    if opts["tls"]:
        must("STARTTLS", "220")
        c.starttls()
        if name:
            must("EHLO " + name, "250")
    if opts["auth"]:
        user, pw = opts["auth"].split(":", 1)
        r = c.auth_plain(user, pw)
        if not r[-1].startswith("235"):
            print("setup failed: AUTH -> %s" % r[-1])
            sys.exit(1)


def run(c, opts, cmds, out):
    greeting = c.reply()
    if opts["greeting"]:
        out.got(greeting)
    setup(c, opts)
    in_data = False
    for a in cmds:
        if in_data:
            out.sent(a)
            c.send(unescape(a) + b"\r\n")
            if a == ".":
                in_data = False
                out.got(c.reply())
        elif opts["raw"]:
            n, data = a.split(":", 1)
            out.sent(data)
            c.send(unescape(data))
            for _ in range(int(n)):
                out.got(c.reply())
        else:
            out.sent(a)
            r = c.cmd(a)
            out.got(r)
            in_data = a.upper() == "DATA" and r[-1].startswith("354")


def main(argv):
    opts, port, cmds = parse(list(argv))
    out = Printer(opts)
    c = Client(port, opts["src"], opts["host"], opts["timeout"])
    try:
        run(c, opts, cmds, out)
    except Closed as e:
        if e.args[0] and out.full:
            out.got(e.args[0])
        print("EOF")
    except (ConnectionResetError, BrokenPipeError):
        print("EOF")
    except socket.timeout:
        print("TIMEOUT")
    c.close()


if __name__ == "__main__":
    main(sys.argv[1:])
