#!/usr/bin/python3
"""odmr_turn - the provider's half of an ODMR session (bench/odmr, make demo).

Until etrn-server has its own ODMR listener, this stands in for it, using
etrn-server's own delivery: it accepts the agent's connection on --listen,
answers EHLO (AUTH CRAM-MD5, ATRN), checks the CRAM-MD5 login against
--auth USER:PASS, and on "ATRN <domain>" sends "ETRN <domain>" to the
etrn-server on --etrn-port, whose transport for that domain points at
--turn-port. It answers the agent "250 OK now reversing the connection",
accepts etrn-server's delivery connection on --turn-port and passes bytes
between the two connections, unchanged, until either closes (with
--quit-idle S, until the delivery has been idle S seconds: then it says QUIT
to the site as a provider does when it has delivered everything; with --splice,
by exec'ing the C tool fd_splice on the two sockets, so no interpreter sits
on the measured path). So the mail
flows: etrn-server's smtp client -> this splice -> etrn-agent's relay -> the
site's MTA. One agent session per run; prints nothing; exits 0 when a turn
happened, 1 otherwise. Standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import os
import socket
import sys
import threading
import time


def lines(sock):
    buf = b""
    while True:
        nl = buf.find(b"\n")
        if nl >= 0:
            line, buf = buf[:nl + 1], buf[nl + 1:]
            yield line.rstrip(b"\r\n").decode("latin-1")
            continue
        chunk = sock.recv(4096)
        if not chunk:
            return
        buf += chunk


def etrn(port, domain):
    s = socket.create_connection(("127.0.0.1", port), 10)
    it = lines(s)

    def reply():
        while True:
            line = next(it)
            if len(line) < 4 or line[3] != "-":
                return line
    reply()
    s.sendall(b"EHLO turn.bench.test\r\n")
    reply()
    s.sendall(("ETRN %s\r\n" % domain).encode())
    r = reply()
    s.sendall(b"QUIT\r\n")
    s.close()
    return r


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--turn-port", type=int, required=True)
    p.add_argument("--etrn-port", type=int, required=True)
    p.add_argument("--auth", required=True)
    p.add_argument("--splice", help="tests/tools fd_splice: exec it to pass the bytes")
    p.add_argument("--quit-idle", type=float, metavar="SECONDS",
                   help="end the turn with QUIT once the delivery is idle this long")
    p.add_argument("--direct", type=int, metavar="PORT",
                   help="no agent: splice the delivery straight to 127.0.0.1:PORT (the sink), "
                        "to measure what the stand-in itself costs")
    o = p.parse_args()
    user, _, pw = o.auth.partition(":")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", o.listen))
    srv.listen(4)
    turn = socket.socket()
    turn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    turn.bind(("127.0.0.1", o.turn_port))
    turn.listen(4)
    if o.direct:
        r = etrn(o.etrn_port, "site.test")
        if not r.startswith("25"):
            return 1
        turn.settimeout(60)
        peer, _ = turn.accept()
        sink = socket.create_connection(("127.0.0.1", o.direct), 10)
        return splice(o, sink, peer)
    srv.settimeout(120)
    for _ in range(10):   # a port probe connects and closes: wait for the agent
        rc = session(srv, turn, o, user, pw)
        if rc is not None:
            return rc
    return 1


def session(srv, turn, o, user, pw):
    """One connection: None when it closed before any command."""
    conn, _ = srv.accept()
    conn.settimeout(60)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    it = lines(conn)
    try:
        conn.sendall(b"220 turn.bench.test ESMTP odmr_turn\r\n")
    except OSError:
        return None
    authed = False
    spoke = False
    for line in it:
        spoke = True
        verb = line.split(" ")[0].upper()
        if verb == "EHLO":
            conn.sendall(b"250-turn.bench.test\r\n250-AUTH CRAM-MD5\r\n250 ATRN\r\n")
        elif verb == "AUTH" and line.upper() == "AUTH CRAM-MD5":
            ch = "<%d.%d@turn.bench.test>" % (os.getpid(), int(time.time()))
            conn.sendall(b"334 " + base64.b64encode(ch.encode()) + b"\r\n")
            u, _, d = base64.b64decode(next(it)).decode().partition(" ")
            want = hmac.new(pw.encode(), ch.encode(), hashlib.md5).hexdigest()
            authed = u == user and hmac.compare_digest(d, want)
            conn.sendall(b"235 2.7.0 Authentication successful\r\n" if authed
                         else b"535 5.7.8 Error: authentication failed\r\n")
        elif verb == "ATRN" and authed:
            r = etrn(o.etrn_port, line.split(" ", 1)[1])
            if not r.startswith("25"):
                conn.sendall(b"451 Unable to process ATRN request now\r\n")
                continue
            conn.sendall(b"250 OK now reversing the connection\r\n")
            turn.settimeout(60)
            peer, _ = turn.accept()
            return splice(o, conn, peer)
        elif verb == "QUIT":
            conn.sendall(b"221 2.0.0 Bye\r\n")
            return 1
        else:
            conn.sendall(b"502 5.5.2 Error: command not recognized\r\n")
    return 1 if spoke else None


def relay_then_quit(conn, peer, idle):
    """Pass bytes both ways; once the delivery has been silent for `idle`
    seconds with no message in progress, end it as a provider does when its
    queue is empty: QUIT to the site, and drop etrn-server's idle (cached)
    connection."""
    import select
    busy = False          # a command went to the site and its reply is not back
    while True:
        r, _, _ = select.select([conn, peer], [], [], idle)
        if not r:
            if busy:
                continue
            break
        for s in r:
            data = s.recv(65536)
            if not data:
                return 0
            (peer if s is conn else conn).sendall(data)
            busy = s is peer
    peer.close()
    conn.sendall(b"QUIT\r\n")
    conn.settimeout(10)
    try:
        conn.recv(512)
    except OSError:
        pass
    conn.close()
    return 0


def splice(o, conn, peer):
    """Bytes both ways between conn and peer until either closes."""
    for s in (conn, peer):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(None)
    if o.splice:
        # the C splice: no interpreter on the measured path
        os.set_inheritable(conn.fileno(), True)
        os.set_inheritable(peer.fileno(), True)
        os.execv(o.splice, [o.splice, str(conn.fileno()), str(peer.fileno())])
    if o.quit_idle:
        return relay_then_quit(conn, peer, o.quit_idle)
    a = threading.Thread(target=pump, args=(peer, conn))
    b = threading.Thread(target=pump, args=(conn, peer))
    a.start()
    b.start()
    a.join()
    b.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
