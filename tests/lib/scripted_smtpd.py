#!/usr/bin/python3
"""scripted_smtpd - a scripted ESMTP server that records the exact dialogue.

Used by the agent's end-to-end tests as the "provider": it answers ETRN with
replies given on the command line and writes every protocol line to a log,
so a test can assert what the agent really sent.

  scripted_smtpd.py --listen ADDR:PORT --log FILE
      [--etrn-reply 'DOMAIN=CODE TEXT' ...] [--default-etrn-reply 'CODE TEXT']
      [--no-starttls] [--tls-cert CERT --tls-key KEY] [--implicit-tls]
      [--auth USER:PASS] [--auth-mechs 'PLAIN LOGIN'] [--no-auth-advertised]
      [--silent] [--ready-file FILE]
      [--accept-mail [--mail-reply 'CODE TEXT'] [--rcpt-reply 'ADDRESS=CODE TEXT' ...]
       [--default-rcpt-reply 'CODE TEXT'] [--data-reply 'CODE TEXT']
       [--data-stall | --drop-after-dot | --close-after-message]] [--reply-escapes]
      [--no-pipelining] [--size N] [--8bitmime] [--greet-then-close] [--endless-ehlo]

Log FILE (appended, flushed per line; one line per protocol line):
  <unix time, 3 decimals> *: connect from ADDR:PORT
  <time> C: <client line>          (after STARTTLS: the decrypted line)
  <time> S: <server line>
  <time> *: tls established
  <time> *: tls failed: <reason>
  <time> *: discarded after STARTTLS: <plaintext pipelined after it>
  <time> *: disconnect
A client line ending in CRLF is recorded without it; every other control
byte (and a bare LF line end, a bare CR inside a line, NUL, bytes >= 0x7f)
appears escaped as text (\\r, \\n, \\t, \\xNN; a backslash as \\\\), so an
injection attempt is visible. A partial line left at disconnect is recorded
too. ADDR may be an IPv4 address or [IPv6]; PORT 0 picks a free port (the
ready file then holds the real ADDR:PORT).

Behaviour: 220 greeting; EHLO advertises ETRN, PIPELINING, STARTTLS (with a
certificate, without --no-starttls, before TLS) and AUTH PLAIN LOGIN (with
--auth, once TLS is active or when no certificate is given, without
--no-auth-advertised; --auth-mechs narrows the list); HELO; STARTTLS; AUTH
PLAIN / LOGIN (235 on the right USER:PASS, 535 5.7.8 otherwise; a mechanism
not in --auth-mechs 504); ETRN ARG answers the reply configured for
exactly ARG, else --default-etrn-reply (default "250 Queuing started");
NOOP and RSET 250; QUIT 221 and close; anything else 502. ETRN or AUTH
before EHLO/HELO get 503 (as in Postfix); AUTH before TLS when a
certificate is given gets 538; a second AUTH 503; ETRN without an
argument 501. Plaintext pipelined after STARTTLS is discarded (logged). --silent accepts connections and
never sends a byte. --implicit-tls starts TLS at the first byte. Each
connection runs in its own thread. SIGTERM ends the server (exit 0).

With --accept-mail (for the server's smtp transport tests) it also takes mail:
MAIL FROM answers --mail-reply (default "250 2.1.0 Ok"), RCPT TO:<ADDRESS>
answers the --rcpt-reply given for exactly ADDRESS, else --default-rcpt-reply
(default "250 2.1.5 Ok"); DATA (with at least one accepted recipient, else
"554 5.5.1 Error: no valid recipients") answers 354, the content lines are
logged as C: lines as they came (dot-stuffed), and the final "." gets
--data-reply (default "250 2.0.0 Ok: queued as N", N counting per server).
With --reply-escapes, Python escapes in the scripted replies are decoded:
\\xNN gives any byte (ESC, bytes >= 0x80: hostile reply text), \\n starts
a new line, so "450-a\\n450 b" is a two-line reply.
MAIL/RCPT/DATA before EHLO/HELO or out of order get 503; RSET ends the
transaction. Without --accept-mail these commands get 502 as before.

As an ODMR provider (RFC 2645), with --atrn: EHLO advertises ATRN too, and
--auth-mechs may name CRAM-MD5 (RFC 2195: 334 with a base64 challenge,
the answer checked against --auth). "ATRN [domains]" before a successful
AUTH gets "530 5.7.0 Authentication required"; then --atrn-reply (default
"250 OK now reversing the connection", or "453 You have no mail" when
--atrn-messages is 0, and for every ATRN after the first that got 250:
the mail was taken). After a 250 the roles swap on the same connection:
it waits for the site's 220, says EHLO, and delivers --atrn-messages N
messages (--atrn-rcpt ADDRESS, repeatable: message i goes to the i-th
address, round robin; --atrn-size bytes of body, at least 1 KB by default;
a body line starting with "." is dot-stuffed), MAIL/RCPT/DATA pipelined
when the site offers PIPELINING, then QUIT. Logged: S: for what it sends,
C: for what the site answers, and per message
  <time> *: odmr message I accepted|refused: <reply>
then "*: odmr delivered K of N". With --atrn-bdat and a site that offers
CHUNKING, each message goes as two BDAT chunks (RFC 3030), the last one
ending with lines ".", "QUIT" and "DATA" that are content, not commands
(--chunking makes the --accept-mail receiver offer CHUNKING and take BDAT).
--atrn-drop-in-data I closes the
connection in the middle of message I's content; --atrn-stall-after I
stops sending (connection left open) after message I;
--atrn-close-at-turn closes right after the 250.

For the server's smtp client: --no-pipelining leaves PIPELINING out of the
EHLO reply; --size N and --8bitmime add "SIZE N" and "8BITMIME"; a read that
brings two or more complete command lines at once (outside DATA) is logged as
"*: pipelined N commands" before them, so a test sees the grouped writes.
--data-stall takes the content and never answers the final "."; --drop-after-dot
closes the connection instead of answering it; --close-after-message answers
it and then closes (as a server that does not keep idle clients); --greet-then-close sends the
220 greeting and closes; --endless-ehlo answers EHLO with "250-" lines that
never end (bounded: 100000 lines, or until the client closes).
Standard library only.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import itertools
import os
import signal
import socket
import ssl
import sys
import threading
import time

HOSTNAME = "scripted.test"
MAX_LINE = 65536
IDLE_TIMEOUT = 120.0


class Recorder:
    """Appends timestamped lines to the log file, one write and flush each."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.fh = open(path, "a", encoding="ascii", errors="backslashreplace")

    def put(self, tag, text):
        line = "%.3f %s: %s\n" % (time.time(), tag, text)
        with self.lock:
            self.fh.write(line)
            self.fh.flush()


def escape(raw):
    """Bytes of one line (terminator removed) as printable ASCII text."""
    out = []
    for b in raw:
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif b < 0x20 or b >= 0x7F:
            out.append("\\x%02x" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def parse_hostport(text):
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError("want [ADDR]:PORT")
        return socket.AF_INET6, host, int(port)
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError("want ADDR:PORT")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    return fam, host, int(port)


def fmt_peer(addr):
    if ":" in addr[0]:
        return "[%s]:%d" % (addr[0], addr[1])
    return "%s:%d" % (addr[0], addr[1])


class Closed(Exception):
    """The peer went away (or the connection must end)."""


class Session:
    """One SMTP connection, run in its own thread."""

    def __init__(self, opts, rec, sock, peer):
        self.opts = opts
        self.rec = rec
        self.sock = sock
        self.peer = peer
        self.buf = b""
        self.tls = False
        self.greeted = False
        self.authed = False
        self.mail_from = None
        self.rcpts = []
        self.in_data = False

    # --- I/O ---------------------------------------------------------------

    def send(self, *lines):
        data = b""
        for line in (part for text in lines for part in text.split("\n")):
            raw = line.encode("latin-1")
            self.rec.put("S", escape(raw))
            data += raw + b"\r\n"
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as e:
            raise Closed() from e

    def readline(self):
        """The next client line (bytes, CRLF or LF removed; a bare LF end
        is kept as a trailing LF byte so it is recorded escaped)."""
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                raw, self.buf = self.buf[:nl + 1], self.buf[nl + 1:]
                if raw.endswith(b"\r\n"):
                    line = raw[:-2]
                else:
                    line = raw  # bare LF: keep it visible
                self.rec.put("C", escape(line))
                return line.rstrip(b"\n")
            if len(self.buf) > MAX_LINE:
                self.rec.put("C", escape(self.buf))
                self.buf = b""
                if not self.opts.silent:
                    self.send("500 5.5.2 Line too long")
                raise Closed()
            try:
                chunk = self.sock.recv(4096)
            except (socket.timeout, OSError, ssl.SSLError) as e:
                raise Closed() from e
            if not chunk:
                if self.buf:
                    self.rec.put("C", escape(self.buf))
                    self.buf = b""
                raise Closed()
            self.buf += chunk
            if not self.in_data and self.buf.count(b"\n") >= 2:
                self.rec.put("*", "pipelined %d commands" % self.buf.count(b"\n"))

    def start_tls(self):
        try:
            self.sock = self.opts.ssl_ctx.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.rec.put("*", "tls failed: %s" % escape(str(e).encode("ascii", "replace")))
            raise Closed() from e
        self.tls = True
        self.rec.put("*", "tls established")

    # --- protocol ------------------------------------------------------------

    def auth_offered(self):
        o = self.opts
        return (o.auth is not None and not o.no_auth_advertised
                and (self.tls or o.ssl_ctx is None))

    def starttls_offered(self):
        o = self.opts
        return o.ssl_ctx is not None and not o.no_starttls and not self.tls

    def run(self):
        try:
            if self.opts.implicit_tls:
                self.start_tls()
            if self.opts.silent:
                while True:
                    self.readline()
            self.send("220 %s ESMTP scripted_smtpd" % HOSTNAME)
            if self.opts.greet_then_close:
                raise Closed()
            while True:
                line = self.readline()
                self.command(line)
        except Closed:
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.rec.put("*", "disconnect")

    def command(self, line):
        text = line.decode("latin-1")
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if verb == "EHLO":
            if not arg:
                self.send("501 5.5.4 Syntax: EHLO hostname")
                return
            self.greeted = True
            if self.opts.endless_ehlo:
                for i in range(100000):
                    self.send("250-%s endless line %d %s" % (HOSTNAME, i, "x" * 60))
                raise Closed()
            ext = ["ETRN"]
            if not self.opts.no_pipelining:
                ext.append("PIPELINING")
            if self.opts.atrn:
                ext.append("ATRN")
            if self.opts.chunking:
                ext.append("CHUNKING")
            if self.opts.size is not None:
                ext.append("SIZE %d" % self.opts.size)
            if self.opts.eightbitmime:
                ext.append("8BITMIME")
            if self.starttls_offered():
                ext.append("STARTTLS")
            if self.auth_offered():
                ext.append("AUTH " + " ".join(self.opts.auth_mechs))
            lines = ["250-%s" % HOSTNAME]
            lines += ["250-" + e for e in ext[:-1]]
            lines.append("250 " + ext[-1])
            self.send(*lines)
        elif verb == "HELO":
            if not arg:
                self.send("501 5.5.4 Syntax: HELO hostname")
                return
            self.greeted = True
            self.send("250 %s" % HOSTNAME)
        elif verb == "STARTTLS" and self.starttls_offered():
            if arg:
                self.send("501 5.5.4 Syntax: STARTTLS")
                return
            self.send("220 2.0.0 Ready to start TLS")
            if self.buf:
                # plaintext pipelined after STARTTLS: never acted on
                self.rec.put("*", "discarded after STARTTLS: %s" % escape(self.buf))
                self.buf = b""
            self.start_tls()
            self.greeted = False
            self.authed = False
        elif verb == "AUTH" and self.opts.auth is not None and not self.opts.no_auth_advertised:
            self.auth(arg)
        elif verb == "ETRN":
            if not self.greeted:
                self.send("503 5.5.1 Error: send HELO/EHLO first")
            elif not arg:
                self.send("501 5.5.4 Syntax: ETRN domain")
            else:
                self.send(self.opts.etrn_replies.get(arg, self.opts.default_etrn_reply))
        elif verb == "ATRN" and self.opts.atrn:
            self.atrn(arg)
        elif self.opts.accept_mail and self.opts.chunking and verb == "BDAT":
            self.bdat(arg)
        elif self.opts.accept_mail and verb in ("MAIL", "RCPT", "DATA"):
            self.mail_command(verb, arg)
        elif verb == "NOOP":
            self.send("250 2.0.0 Ok")
        elif verb == "RSET":
            self.mail_from = None
            self.rcpts = []
            self.send("250 2.0.0 Ok")
        elif verb == "QUIT":
            self.send("221 2.0.0 Bye")
            raise Closed()
        else:
            self.send("502 5.5.2 Error: command not recognized")

    def mail_command(self, verb, arg):
        if not self.greeted:
            self.send("503 5.5.1 Error: send HELO/EHLO first")
            return
        if verb == "MAIL":
            if self.mail_from is not None:
                self.send("503 5.5.1 Error: nested MAIL command")
                return
            if not arg.upper().startswith("FROM:"):
                self.send("501 5.5.4 Syntax: MAIL FROM:<address>")
                return
            reply = self.opts.mail_reply
            if reply.startswith("2"):
                self.mail_from = arg[5:].strip()
            self.send(reply)
        elif verb == "RCPT":
            if self.mail_from is None:
                self.send("503 5.5.1 Error: need MAIL command")
                return
            if not arg.upper().startswith("TO:"):
                self.send("501 5.5.4 Syntax: RCPT TO:<address>")
                return
            addr = arg[3:].strip().split(" ")[0]
            if addr.startswith("<") and addr.endswith(">"):
                addr = addr[1:-1]
            reply = self.opts.rcpt_replies.get(addr, self.opts.default_rcpt_reply)
            if reply.startswith("2"):
                self.rcpts.append(addr)
            self.send(reply)
        else:
            if self.mail_from is None:
                self.send("503 5.5.1 Error: need MAIL command")
                return
            if not self.rcpts:
                self.send("554 5.5.1 Error: no valid recipients")
                return
            self.send("354 End data with <CR><LF>.<CR><LF>")
            self.in_data = True
            while self.readline() != b".":
                pass
            self.in_data = False
            if self.opts.data_stall:
                self.rec.put("*", "stalling after the final dot")
                while True:
                    self.readline()
            if self.opts.drop_after_dot:
                self.rec.put("*", "dropping the connection after the final dot")
                raise Closed()
            self.send(self.opts.data_reply or "250 2.0.0 Ok: queued as %d" % next(self.opts.queued))
            self.mail_from = None
            self.rcpts = []
            if self.opts.close_after_message:
                raise Closed()

    def bdat(self, arg):
        """BDAT SIZE [LAST] (RFC 3030): SIZE raw bytes, logged as C: lines."""
        parts = arg.split()
        if self.mail_from is None or not self.rcpts or not parts or not parts[0].isdigit():
            self.send("503 5.5.1 Error: need MAIL and RCPT, then BDAT size")
            return
        size = int(parts[0])
        while len(self.buf) < size:
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, OSError, ssl.SSLError) as e:
                raise Closed() from e
            if not chunk:
                raise Closed()
            self.buf += chunk
        data, self.buf = self.buf[:size], self.buf[size:]
        for line in data.split(b"\r\n"):
            self.rec.put("C", escape(line))
        if len(parts) > 1 and parts[1].upper() == "LAST":
            self.send(self.opts.data_reply or "250 2.0.0 Ok: queued as %d" % next(self.opts.queued))
            self.mail_from = None
            self.rcpts = []
        else:
            self.send("250 2.0.0 Ok: %d octets received" % size)

    def auth(self, arg):
        if not self.greeted:
            self.send("503 5.5.1 Error: send HELO/EHLO first")
            return
        if not self.auth_offered():
            self.send("538 5.7.11 Encryption required for requested authentication mechanism")
            return
        if self.authed:
            self.send("503 5.5.1 Error: already authenticated")
            return
        mech, _, initial = arg.partition(" ")
        mech = mech.upper()
        if mech not in self.opts.auth_mechs:
            self.send("504 5.5.4 Unrecognized authentication type")
            return
        if mech == "PLAIN":
            resp = initial if initial else self.challenge("")
            if resp is None:
                return
            data = self.b64(resp)
            if data is None:
                return
            parts = data.split(b"\0")
            ok = len(parts) == 3 and (parts[1], parts[2]) == self.opts.auth
        elif mech == "CRAM-MD5":
            if initial:
                self.send("501 5.5.4 CRAM-MD5 takes no initial response")
                return
            challenge = "<%d.%d@%s>" % (os.getpid(), int(time.time() * 1000), HOSTNAME)
            resp = self.challenge(base64.b64encode(challenge.encode()).decode())
            if resp is None:
                return
            data = self.b64(resp)
            if data is None:
                return
            user, _, digest = data.partition(b" ")
            want = hmac.new(self.opts.auth[1], challenge.encode(), hashlib.md5).hexdigest()
            ok = user == self.opts.auth[0] and hmac.compare_digest(digest, want.encode())
        elif mech == "LOGIN":
            user = initial if initial else self.challenge("VXNlcm5hbWU6")
            if user is None:
                return
            user = self.b64(user)
            if user is None:
                return
            pw = self.challenge("UGFzc3dvcmQ6")
            if pw is None:
                return
            pw = self.b64(pw)
            if pw is None:
                return
            ok = (user, pw) == self.opts.auth
        else:
            self.send("504 5.5.4 Unrecognized authentication type")
            return
        if ok:
            self.authed = True
            self.send("235 2.7.0 Authentication successful")
        else:
            self.send("535 5.7.8 Error: authentication failed")

    def atrn(self, arg):
        o = self.opts
        if not self.greeted:
            self.send("503 5.5.1 Error: send HELO/EHLO first")
            return
        if o.auth is not None and not self.authed:
            self.send("530 5.7.0 Authentication required")
            return
        reply = o.atrn_reply
        if reply is None:
            with o.atrn_lock:
                waiting = o.atrn_messages > 0 and not o.atrn_drained
                o.atrn_drained = True
            reply = "250 OK now reversing the connection" if waiting else "453 You have no mail"
        elif reply.startswith("250"):
            o.atrn_drained = True
        self.send(reply)
        if reply.startswith("250"):
            self.reverse()
            raise Closed()

    def reply(self):
        """One reply from the site (as the client): (code, last line)."""
        while True:
            line = self.readline().decode("latin-1")
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]) if line[:3].isdigit() else 0, line

    def reverse(self):
        """ATRN 250: the provider becomes the client on this connection."""
        o = self.opts
        self.rec.put("*", "odmr reversed")
        if o.atrn_close_at_turn:
            self.rec.put("*", "odmr closed at the turn")
            return
        code, _ = self.reply()
        if code != 220:
            self.send("QUIT")
            return
        self.send("EHLO %s" % HOSTNAME)
        lines = []
        while True:
            line = self.readline().decode("latin-1")
            lines.append(line[4:].upper())
            if len(line) < 4 or line[3] != "-":
                break
        pipelining = "PIPELINING" in lines
        chunking = "CHUNKING" in lines and o.atrn_bdat
        done = 0
        for i in range(1, o.atrn_messages + 1):
            rcpt = o.atrn_rcpt[(i - 1) % len(o.atrn_rcpt)]
            cmds = ["MAIL FROM:<sender@provider.test>", "RCPT TO:<%s>" % rcpt]
            if not chunking:
                cmds.append("DATA")
            if pipelining:
                self.send(*cmds)
                replies = [self.reply() for _ in cmds]
            else:
                replies = []
                for c in cmds:
                    self.send(c)
                    replies.append(self.reply())
                    if replies[-1][0] >= 400:
                        break
            if chunking and (len(replies) < 2 or replies[1][0] >= 300):
                self.rec.put("*", "odmr message %d refused: %s" % (i, replies[-1][1]))
                self.send("RSET")
                self.reply()
                continue
            if not chunking and (len(replies) < 3 or replies[2][0] != 354):
                self.rec.put("*", "odmr message %d refused: %s" % (i, replies[-1][1]))
                self.send("RSET")
                self.reply()
                continue
            body = ["Message-ID: <odmr-%d@%s>" % (i, HOSTNAME), "Subject: odmr %d" % i,
                    "To: <%s>" % rcpt, ""]
            n = 0
            while sum(len(b) + 2 for b in body) < o.atrn_size:
                n += 1
                body.append(".line %d of message %d, filler text for the size" % (n, i)
                            if n % 10 == 0 else "line %d of message %d, filler text for the size"
                            % (n, i))
            if chunking:
                # raw content: no dot-stuffing; a line "." or "QUIT" is only data
                body += [".", "QUIT", "DATA"]
                raw = "".join(b + "\r\n" for b in body).encode("latin-1")
                half = len(raw) // 2
                self.send("BDAT %d" % half)
                self.sock.sendall(raw[:half])
                code, line = self.reply()
                if code == 250:
                    self.send("BDAT %d LAST" % (len(raw) - half))
                    self.sock.sendall(raw[half:])
                    code, line = self.reply()
                if 200 <= code < 300:
                    done += 1
                    self.rec.put("*", "odmr message %d accepted: %s" % (i, line))
                else:
                    self.rec.put("*", "odmr message %d refused: %s" % (i, line))
                continue
            data = "".join(("." + b if b.startswith(".") else b) + "\r\n" for b in body)
            if o.atrn_drop_in_data == i:
                half = data[:len(data) // 2].encode("latin-1")
                self.sock.sendall(half)
                self.rec.put("*", "odmr dropped during message %d" % i)
                return
            self.sock.sendall(data.encode("latin-1") + b".\r\n")
            code, line = self.reply()
            if 200 <= code < 300:
                done += 1
                self.rec.put("*", "odmr message %d accepted: %s" % (i, line))
            else:
                self.rec.put("*", "odmr message %d refused: %s" % (i, line))
            if o.atrn_stall_after == i:
                self.rec.put("*", "odmr stalled after message %d" % i)
                while True:
                    self.readline()
        self.rec.put("*", "odmr delivered %d of %d" % (done, o.atrn_messages))
        self.send("QUIT")
        self.reply()

    def challenge(self, text):
        self.send("334 " + text if text else "334 ")
        line = self.readline().decode("latin-1")
        if line == "*":
            self.send("501 5.7.0 Authentication aborted")
            return None
        return line

    def b64(self, text):
        if text == "=":
            return b""
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            self.send("501 5.5.2 Cannot decode response")
            return None


def parse_args(argv):
    p = argparse.ArgumentParser(description="scripted ESMTP server for tests")
    p.add_argument("--listen", required=True, help="ADDR:PORT or [ADDR6]:PORT")
    p.add_argument("--log", required=True)
    p.add_argument("--etrn-reply", action="append", default=[],
                   help="DOMAIN=CODE TEXT (exact match on the ETRN argument)")
    p.add_argument("--default-etrn-reply", default="250 Queuing started")
    p.add_argument("--no-starttls", action="store_true")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--auth", help="USER:PASS")
    p.add_argument("--auth-mechs", default="PLAIN LOGIN",
                   help="mechanisms offered and taken, a subset of 'PLAIN LOGIN'")
    p.add_argument("--no-auth-advertised", action="store_true")
    p.add_argument("--silent", action="store_true")
    p.add_argument("--ready-file")
    p.add_argument("--accept-mail", action="store_true",
                   help="take MAIL, RCPT and DATA (else 502)")
    p.add_argument("--mail-reply", default="250 2.1.0 Ok")
    p.add_argument("--rcpt-reply", action="append", default=[],
                   help="ADDRESS=CODE TEXT (exact match on the address in RCPT TO:<...>)")
    p.add_argument("--default-rcpt-reply", default="250 2.1.5 Ok")
    p.add_argument("--data-reply", help="reply to the final '.' (default 250 ... queued as N)")
    p.add_argument("--atrn", action="store_true", help="act as an ODMR provider (ATRN)")
    p.add_argument("--atrn-reply", help="reply to ATRN (default 250, or 453 with no messages)")
    p.add_argument("--atrn-messages", type=int, default=0)
    p.add_argument("--atrn-rcpt", action="append", default=[])
    p.add_argument("--atrn-size", type=int, default=1024)
    p.add_argument("--atrn-drop-in-data", type=int, default=0)
    p.add_argument("--atrn-stall-after", type=int, default=0)
    p.add_argument("--atrn-close-at-turn", action="store_true",
                   help="close right after the 250, delivering nothing")
    p.add_argument("--atrn-bdat", action="store_true",
                   help="deliver with BDAT (two chunks) when the site offers CHUNKING")
    p.add_argument("--chunking", action="store_true",
                   help="with --accept-mail: offer CHUNKING and take BDAT")
    p.add_argument("--reply-escapes", action="store_true",
                   help="decode \\xNN and \\n (a line break) in the scripted replies")
    p.add_argument("--data-stall", action="store_true")
    p.add_argument("--drop-after-dot", action="store_true")
    p.add_argument("--close-after-message", action="store_true")
    p.add_argument("--no-pipelining", action="store_true")
    p.add_argument("--size", type=int)
    p.add_argument("--8bitmime", dest="eightbitmime", action="store_true")
    p.add_argument("--greet-then-close", action="store_true")
    p.add_argument("--endless-ehlo", action="store_true")
    o = p.parse_args(argv)

    def reply_arg(text, what):
        """A scripted reply, checked; with --reply-escapes, \\xNN and \\n decoded."""
        lines = [text]
        if o.reply_escapes:
            try:
                text = text.encode("latin-1").decode("unicode_escape")
            except (UnicodeError, ValueError) as e:
                p.error("%s: bad escape in %r: %s" % (what, text, e))
            lines = text.split("\n")
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            if (len(line) < 3 or not line[:3].isdigit()
                    or (len(line) > 3 and line[3] != (" " if last else "-"))):
                p.error("%s: want 'CODE TEXT' (or 'CODE-TEXT' lines before it), got %r"
                        % (what, line))
            if any(ord(c) > 0xFF or (not o.reply_escapes and (ord(c) < 0x20 or ord(c) > 0x7E))
                   for c in line):
                p.error("%s: control or non-ASCII character in %r" % (what, line))
        return text

    o.etrn_replies = {}
    for item in o.etrn_reply:
        dom, sep, reply = item.partition("=")
        if not sep or not dom:
            p.error("--etrn-reply: want DOMAIN=CODE TEXT, got %r" % item)
        o.etrn_replies[dom] = reply_arg(reply, "--etrn-reply " + dom)
    o.default_etrn_reply = reply_arg(o.default_etrn_reply, "--default-etrn-reply")
    o.rcpt_replies = {}
    for item in o.rcpt_reply:
        addr, sep, reply = item.partition("=")
        if not sep or not addr:
            p.error("--rcpt-reply: want ADDRESS=CODE TEXT, got %r" % item)
        o.rcpt_replies[addr] = reply_arg(reply, "--rcpt-reply " + addr)
    o.mail_reply = reply_arg(o.mail_reply, "--mail-reply")
    o.default_rcpt_reply = reply_arg(o.default_rcpt_reply, "--default-rcpt-reply")
    if o.data_reply is not None:
        o.data_reply = reply_arg(o.data_reply, "--data-reply")
    o.queued = itertools.count(1)
    o.atrn_lock = threading.Lock()
    o.atrn_drained = False
    if bool(o.tls_cert) != bool(o.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if o.implicit_tls and not o.tls_cert:
        p.error("--implicit-tls needs --tls-cert and --tls-key")
    o.ssl_ctx = None
    if o.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(o.tls_cert, o.tls_key)
        o.ssl_ctx = ctx
    if o.auth is not None:
        user, sep, pw = o.auth.partition(":")
        if not sep:
            p.error("--auth: want USER:PASS")
        o.auth = (user.encode("utf-8"), pw.encode("utf-8"))
    o.auth_mechs = o.auth_mechs.upper().split()
    if not o.auth_mechs or any(m not in ("PLAIN", "LOGIN", "CRAM-MD5") for m in o.auth_mechs):
        p.error("--auth-mechs: want PLAIN, LOGIN and/or CRAM-MD5, got %r" % o.auth_mechs)
    if o.atrn_reply is not None:
        o.atrn_reply = reply_arg(o.atrn_reply, "--atrn-reply")
    if o.atrn_messages > 0 and not o.atrn_rcpt:
        p.error("--atrn-messages needs --atrn-rcpt")
    try:
        o.family, o.addr, o.port = parse_hostport(o.listen)
    except ValueError as e:
        p.error("--listen %s: %s" % (o.listen, e))
    return o


def main(argv):
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    rec = Recorder(opts.log)
    srv = socket.socket(opts.family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((opts.addr, opts.port))
    srv.listen(64)
    if opts.ready_file:
        bound = srv.getsockname()
        tmp = opts.ready_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(fmt_peer(bound) + "\n")
        os.rename(tmp, opts.ready_file)
    while True:
        try:
            conn, peer = srv.accept()
        except InterruptedError:
            continue
        conn.settimeout(IDLE_TIMEOUT)
        rec.put("*", "connect from %s" % fmt_peer(peer))
        s = Session(opts, rec, conn, peer)
        threading.Thread(target=s.run, daemon=True).start()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit(0)
