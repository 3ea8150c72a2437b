"""The attacks of hostile.campaign. Each runs in its own thread from its own
loopback source address (127.0.0.X), aimed at the same tenant and name as the
legitimate traffic, and records every answer that is not the one expected.

Expected answers (docs/relay.md, RFC 9110/9112, issue 10):
  malformed chunked body            400 (a caller's error, never the origin's)
  Transfer-Encoding not exactly
  "chunked", or TE + Content-Length 400, and never forwarded
  head over max_header_bytes        431
  body over max_body_bytes          413 (declared or chunked)
  caller stalls mid-body            408 or a plain close, never 502/504
  pipelined valid requests          each answered 200, exact, in order
  hop-by-hop / forwarding headers   removed or replaced before the origin
  garbage                           a 4xx (or 505) or a close, never forwarded
"""
import json
import random
import socket
import threading
import time
from collections import Counter

import httpc
from origin import payload

PREFIX = "/t/acme/web"


class Attack(threading.Thread):
    name = "attack"
    period = 1.0

    def __init__(self, port, src_ip, stop_ev):
        super().__init__(daemon=True)
        self.port, self.src_ip, self.stop_ev = port, src_ip, stop_ev
        self.attempts = 0
        self.outcomes = Counter()
        self.violations = []
        self.lock = threading.Lock()
        self.t0 = time.monotonic()

    def violate(self, text):
        with self.lock:
            self.violations.append(text)

    def note(self, outcome):
        with self.lock:
            self.outcomes[outcome] += 1

    def run(self):
        i = 0
        while not self.stop_ev.is_set():
            try:
                self.once(i)
            except Exception as e:  # the driver's own bug: surface it, do not hide it
                self.violate("driver error: %s: %s" % (type(e).__name__, e))
            i += 1
            self.stop_ev.wait(self.period)

    def exchange(self, data, timeout=5.0, interleave=False):
        self.attempts += 1
        r, note = httpc.exchange(self.port, data, self.src_ip, timeout, interleave)
        self.note(r.status if r else note.split(" (")[0])
        return r, note

    def expect_status(self, what, data, allowed, interleave=False):
        r, note = self.exchange(data, interleave=interleave)
        got = r.status if r else None
        if r is not None and r.body.startswith(b"origin: "):
            self.violate("%s: the origin answered %d (the relay forwarded it): %s" % (
                what, r.status, r.body[:60].decode("latin-1", "replace").strip()))
        elif got not in allowed:
            body = r.body[:120].decode("latin-1", "replace").strip() if r else note
            self.violate("%s: got %s, expected %s (%s)" % (
                what, got, " or ".join(str(a) for a in allowed), body))
        return r

    def report(self, checks, expectation):
        checks.info("%s: %d attempts, answers %s" % (
            self.name, self.attempts, dict(sorted(self.outcomes.items(), key=str))))
        for v in self.violations[:6]:
            checks.info("  " + v)
        if len(self.violations) > 6:
            checks.info("  ... and %d more" % (len(self.violations) - 6))
        checks.check("%s: %s" % (self.name, expectation), not self.violations and self.attempts > 0,
                     "%d of %d attempts answered otherwise" % (len(self.violations), self.attempts))


# ---------------------------------------------------------------- finding 1
class MalformedChunked(Attack):
    """Bursts of concurrent malformed chunked bodies: each must be a 400, and
    being the caller's fault they must never open the tunnel's breaker."""
    name = "malformed chunked bodies"
    key = "malformed"
    period = 1.0
    burst = 12
    bodies = [b"zz\r\n", b"5\r\nhello\r\nzz\r\n", b"5\r\nhelloXX\r\n", b"-5\r\nhello\r\n"]

    def once(self, i):
        socks = []
        for j in range(self.burst):
            body = self.bodies[(i + j) % len(self.bodies)]
            req = ("POST %s/echo HTTP/1.1\r\nHost: hostile.test\r\nTransfer-Encoding: chunked\r\n"
                   "\r\n" % PREFIX).encode() + body
            try:
                s = httpc.Conn(self.port, self.src_ip, 5.0)
                s.send(req)
                socks.append((s, body))
            except (OSError, httpc.Closed) as e:
                self.attempts += 1
                self.violate("could not send: %s" % e)
        for s, body in socks:
            self.attempts += 1
            try:
                r = s.read_response(5.0)
                self.note(r.status)
                if r.status != 400:
                    self.violate("body %r: got %d, expected 400 (%s)" % (
                        body, r.status, r.body[:100].decode("latin-1", "replace").strip()))
            except Exception as e:
                self.note("no answer")
                self.violate("body %r: no answer (%s)" % (body, e))
            finally:
                s.close()


# ---------------------------------------------------------------- finding 2
class Smuggle(Attack):
    """A second request hidden behind a request the relay might treat as an
    upgrade. The origin's log is the judge (campaign.py): it must never see
    /smuggled, and /smuggled-routed only as a request the relay parsed."""
    name = "upgrade smuggling"
    key = "smuggle"
    period = 0.5
    variants = {
        "Connection: upgrade without Upgrade":
            "GET %s/raw HTTP/1.1\r\nHost: hostile.test\r\nConnection: upgrade\r\n\r\n",
        "Upgrade requested, origin answers 200":
            "GET %s/raw HTTP/1.1\r\nHost: hostile.test\r\nConnection: Upgrade\r\n"
            "Upgrade: websocket\r\n\r\n",
    }
    smuggled = ["GET /smuggled HTTP/1.1\r\nHost: hostile.test\r\n\r\n",
                "GET %s/smuggled-routed HTTP/1.1\r\nHost: hostile.test\r\n"
                "X-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n" % PREFIX]

    def once(self, i):
        names = list(self.variants)
        what = names[i % len(names)]
        routed = (i // 2) % 2 == 1
        data = (self.variants[what] % PREFIX + self.smuggled[int(routed)]).encode()
        self.attempts += 1
        try:
            c = httpc.Conn(self.port, self.src_ip, 5.0)
        except OSError as e:
            self.violate("connect: %s" % e)
            return
        statuses = []
        try:
            c.send(data)
            for _ in range(2):
                r = c.read_response(4.0)
                statuses.append(r.status)
                if r.status == 101:
                    self.violate("%s: answered 101 although the origin never switched" % what)
                    break
                if not routed and b"origin: no such path" in r.body:
                    self.violate("%s: the smuggled request reached the origin (its 404 came back)"
                                 % what)
                if r.wants_close():
                    break
            self.note(tuple(statuses))
        except (httpc.Closed, TimeoutError, ValueError) as e:
            self.note(tuple(statuses) + (type(e).__name__,))
        finally:
            c.close()


# ---------------------------------------------------------------- finding 3
class HopByHop(Attack):
    """Hop-by-hop and forwarding headers: the origin's echo of what it got
    must not carry the caller's copies (RFC 9110 §7.6.1)."""
    name = "hop-by-hop and forwarding headers"
    key = "hop"
    period = 0.5
    dropped = ["X-Secret-Hop", "X-Other-Hop", "Keep-Alive", "Proxy-Connection", "TE",
               "Proxy-Authorization", "Upgrade"]

    def once(self, i):
        req = ("GET %s/headers HTTP/1.1\r\nHost: hop.test\r\n"
               "Connection: keep-alive, X-Secret-Hop\r\nConnection: X-Other-Hop\r\n"
               "X-Secret-Hop: 1\r\nx-secret-hop: 2\r\nX-Other-Hop: 3\r\n"
               "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
               "Proxy-Authorization: Basic Zm9vOmJhcg==\r\nUpgrade: h2c\r\n"
               "X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6;host=evil.example\r\n"
               "X-Real-IP: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\n"
               "X-Forwarded-Proto: https\r\nX-Kept: yes\r\n\r\n" % PREFIX).encode()
        r = self.expect_status("hop-by-hop request", req, [200])
        if not r or r.status != 200:
            return
        try:
            got = json.loads(r.body)["headers"]
        except (ValueError, KeyError):
            self.violate("the origin's echo is not JSON: %r" % r.body[:100])
            return
        problems = self.judge(got)
        if problems:
            self.violate("; ".join(problems))

    def judge(self, got):
        def values(name):
            return [v for n, v in got if n.lower() == name.lower()]

        ip = self.src_ip
        out = []
        for name in self.dropped:
            if values(name):
                out.append("%s reached the origin" % name)
        for v in values("Connection"):
            extra = [t.strip() for t in v.split(",") if t.strip().lower() not in
                     ("keep-alive", "close")]
            if extra:
                out.append("Connection: %s reached the origin" % v)
        for name, want in (("X-Forwarded-For", ip), ("X-Real-IP", ip),
                           ("X-Forwarded-Proto", "http"), ("X-Forwarded-Host", "hop.test")):
            if values(name) != [want]:
                out.append("%s is %s, expected exactly [%r]" % (name, values(name), want))
        fwd = values("Forwarded")
        if len(fwd) != 1 or ("for=%s" % ip not in fwd[0] and 'for="%s"' % ip not in fwd[0]):
            out.append("Forwarded is %s, expected one value with for=%s" % (fwd, ip))
        for n, v in got:
            if "6.6.6.6" in v or "evil.example" in v:
                out.append("the caller's %s: %s reached the origin" % (n, v))
        if values("X-Kept") != ["yes"]:
            out.append("an end-to-end header (X-Kept) was lost")
        return out


class BadFraming(Attack):
    """Transfer-Encoding other than exactly chunked, or with Content-Length."""
    name = "Transfer-Encoding smuggling"
    key = "framing"
    period = 0.4
    body = "5\r\nhello\r\n0\r\n\r\n"
    variants = [
        ("gzip-chunked", "Transfer-Encoding: gzip, chunked\r\n"),
        ("chunked-identity", "Transfer-Encoding: chunked, identity\r\n"),
        ("xchunked", "Transfer-Encoding: xchunked\r\n"),
        ("quoted", "Transfer-Encoding: \"chunked\"\r\n"),
        ("twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
        ("te-then-cl", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
        ("cl-then-te", "Content-Length: 16\r\nTransfer-Encoding: chunked\r\n"),
    ]

    def once(self, i):
        tag, headers = self.variants[i % len(self.variants)]
        req = ("POST %s/te-attack-%s HTTP/1.1\r\nHost: hostile.test\r\n%s\r\n%s"
               % (PREFIX, tag, headers, self.body)).encode()
        self.expect_status(tag, req, [400])


class Oversize(Attack):
    name = "oversized heads and bodies"
    key = "oversize"
    period = 1.0

    def once(self, i):
        kind = i % 4
        if kind == 0:
            req = ("GET %s/hello HTTP/1.1\r\nHost: hostile.test\r\nX-Big: %s\r\n\r\n"
                   % (PREFIX, "a" * 20000)).encode()
            self.expect_status("one 20 KB header", req, [431])
        elif kind == 1:
            req = ("GET %s/hello HTTP/1.1\r\nHost: hostile.test\r\n%s\r\n" % (PREFIX, "".join(
                "X-H%d: %s\r\n" % (n, "b" * 40) for n in range(400)))).encode()
            self.expect_status("400 headers", req, [431])
        elif kind == 2:
            req = ("POST %s/echo HTTP/1.1\r\nHost: hostile.test\r\nContent-Length: 2000000\r\n"
                   "\r\n" % PREFIX).encode() + b"x" * 65536
            self.expect_status("Content-Length 2 MB", req, [413], interleave=True)
        else:
            chunk = b"10000\r\n" + b"y" * 65536 + b"\r\n"
            req = ("POST %s/echo HTTP/1.1\r\nHost: hostile.test\r\nTransfer-Encoding: chunked\r\n"
                   "\r\n" % PREFIX).encode() + chunk * 20 + b"0\r\n\r\n"
            self.expect_status("chunked body of 1.25 MB", req, [413], interleave=True)


class Pipelined(Attack):
    """Valid requests sent back to back in one write: all answered, in order."""
    name = "pipelined requests"
    key = "pipelined"
    period = 0.5

    def once(self, i):
        a, c = 500000 + 2 * i, 500001 + 2 * i
        body = random.Random(i).randbytes(3000)
        data = ("GET %s/hello?id=%d&size=700 HTTP/1.1\r\nHost: pipe.test\r\n\r\n" % (PREFIX, a) +
                "POST %s/echo HTTP/1.1\r\nHost: pipe.test\r\nContent-Length: %d\r\n\r\n"
                % (PREFIX, len(body))).encode() + body + \
               ("GET %s/hello?id=%d&size=1300 HTTP/1.1\r\nHost: pipe.test\r\n"
                "Connection: close\r\n\r\n" % (PREFIX, c)).encode()
        want = [payload(a, 700), body, payload(c, 1300)]
        self.attempts += 1
        try:
            conn = httpc.Conn(self.port, self.src_ip, 5.0)
        except OSError as e:
            self.violate("connect: %s" % e)
            return
        try:
            conn.send(data)
            for n, w in enumerate(want):
                r = conn.read_response(5.0)
                if r.status != 200 or r.body != w:
                    self.violate("response %d of 3: %d with %d bytes, expected 200 with %d"
                                 % (n + 1, r.status, len(r.body), len(w)))
                    break
            else:
                self.note("ok")
        except Exception as e:
            self.violate("after %d bytes: %s: %s" % (conn.received, type(e).__name__, e))
        finally:
            conn.close()


class HangUp(Attack):
    """Callers that send half a body and hang up."""
    name = "hang-ups mid-body"
    key = "hangup"
    period = 0.25

    def once(self, i):
        self.attempts += 1
        if i % 2:
            req = ("POST %s/echo HTTP/1.1\r\nHost: hostile.test\r\nContent-Length: 100000\r\n\r\n"
                   % PREFIX).encode() + b"h" * 5000
        else:
            req = ("POST %s/echo HTTP/1.1\r\nHost: hostile.test\r\nTransfer-Encoding: chunked\r\n"
                   "\r\n1000\r\n" % PREFIX).encode() + b"h" * 100
        try:
            s = httpc.open_socket(self.port, self.src_ip, 5.0)
            s.sendall(req)
            s.close()
            self.note("hung up")
        except OSError as e:
            self.note("connect/send failed")


class Stall(Attack):
    """Bursts of callers that stop in the middle of a body and keep the
    connection open: the relay must time them out as the caller's fault (408
    or a close), never as the origin's (502/504), within 25 s."""
    name = "stalls mid-body"
    key = "stall"
    period = 15.0
    burst = 8
    last_start = 40.0  # so the last burst ends before the campaign does

    def once(self, i):
        if time.monotonic() - self.t0 > self.last_start:
            return
        threads = [threading.Thread(target=self.one, args=(j,), daemon=True)
                   for j in range(self.burst)]
        for t in threads:
            t.start()
        self.workers = getattr(self, "workers", []) + threads

    def one(self, j):
        with self.lock:
            self.attempts += 1
        req = ("POST %s/echo HTTP/1.1\r\nHost: hostile.test\r\nContent-Length: 100000\r\n\r\n"
               % PREFIX).encode() + b"s" * 5000
        try:
            s = httpc.open_socket(self.port, self.src_ip, 5.0)
            s.sendall(req)
        except OSError as e:
            self.violate("connect/send: %s" % e)
            return
        took, data = httpc.wait_closed(s, 25.0)
        s.close()
        status = httpc.status_of(data)
        self.note(status or ("held 25 s" if took is None else "closed"))
        if took is None:
            self.violate("a stalled caller was still connected after 25 s")
        elif status not in (None, 408):
            self.violate("a stalled caller got %s after %.1f s, expected 408 or a close (%s)"
                         % (status, took, data[:200].split(b"\r\n\r\n")[-1][:100]))

    def join_workers(self, timeout):
        for t in getattr(self, "workers", []):
            t.join(timeout)


class Garbage(Attack):
    """Bytes that are not HTTP, or HTTP no one may forward."""
    name = "garbage"
    key = "garbage"
    period = 0.5

    def variants(self, i):
        rnd = random.Random(i)
        g = PREFIX + "/garbage"
        return [
            ("random bytes", rnd.randbytes(600)),
            ("TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rnd.randbytes(64)),
            ("NUL in target", ("GET %s-nul\0x HTTP/1.1\r\nHost: x\r\n\r\n" % g).encode()),
            ("header without colon", ("GET %s-nocolon HTTP/1.1\r\nHost: x\r\nNot a header\r\n\r\n"
                                      % g).encode()),
            ("space before colon", ("GET %s-space HTTP/1.1\r\nHost : x\r\n\r\n" % g).encode()),
            ("bad Content-Length", ("POST %s-cl HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
                                    % g).encode()),
            ("two Content-Lengths", ("POST %s-2cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                     "Content-Length: 6\r\n\r\nhello!" % g).encode()),
            ("bare CR in a value", ("GET %s-cr HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"
                                    % g).encode()),
            ("HTTP/9.9", ("GET %s-ver HTTP/9.9\r\nHost: x\r\n\r\n" % g).encode()),
            ("2000 empty lines", b"\r\n" * 2000),
        ]

    def once(self, i):
        vs = self.variants(i)
        what, data = vs[i % len(vs)]
        r, note = self.exchange(data, timeout=6.0)
        if r is not None and r.body.startswith(b"origin: "):
            self.violate("%s: the origin answered %d (the relay forwarded it)" % (what, r.status))
        elif r is not None and not (400 <= r.status < 500 or r.status == 505):
            self.violate("%s: got %d, expected a 4xx or a close" % (what, r.status))
        if r is None and note.startswith("timeout"):
            self.violate("%s: neither answered nor closed within 6 s" % what)


# ---------------------------------------------------------------- findings 5
class SlowReader(threading.Thread):
    """Asks for a 64 MiB response with a 4 KiB receive buffer and then reads
    nothing (stalled) or 256 bytes a second (trickle), until released. The
    relay must stop feeding it (write deadline / minimum rate): the origin's
    log then shows big_aborted for its id (checked in campaign.py)."""

    def __init__(self, port, src_ip, ident, trickle, release_ev):
        super().__init__(daemon=True)
        self.port, self.src_ip, self.big_id = port, src_ip, ident
        self.trickle, self.release_ev = trickle, release_ev
        self.closed_after = None
        self.error = None
        self.sock = None

    def run(self):
        start = time.monotonic()
        try:
            self.sock = httpc.open_socket(self.port, self.src_ip, 5.0, rcvbuf=4096)
            self.sock.sendall(("GET %s/big?id=%d&size=%d HTTP/1.1\r\nHost: slow.test\r\n\r\n"
                               % (PREFIX, self.big_id, 64 << 20)).encode())
            self.sock.settimeout(0.2)
        except OSError as e:
            self.error = str(e)
            return
        while not self.release_ev.wait(1.0):
            if not self.trickle:
                continue
            try:
                if not self.sock.recv(256):
                    self.closed_after = time.monotonic() - start
                    break
            except socket.timeout:
                pass
            except OSError:
                self.closed_after = time.monotonic() - start
                break

    def close(self):
        if self.sock:
            self.sock.close()


class SlowSender(threading.Thread):
    """Declares a 1 MB body and sends one byte every 2 s (the body idle timer
    restarts on every byte). Records when the relay cut it off."""

    def __init__(self, port, src_ip, release_ev):
        super().__init__(daemon=True)
        self.port, self.src_ip, self.release_ev = port, src_ip, release_ev
        self.closed_after = None
        self.status = None
        self.sock = None

    def run(self):
        start = time.monotonic()
        try:
            self.sock = httpc.open_socket(self.port, self.src_ip, 5.0)
            self.sock.sendall(("POST %s/echo HTTP/1.1\r\nHost: slow.test\r\n"
                               "Content-Length: 1000000\r\n\r\n" % PREFIX).encode())
        except OSError:
            self.closed_after = 0.0
            return
        while not self.release_ev.wait(2.0):
            took, data = httpc.wait_closed(self.sock, 0.01)
            if took is not None or data:
                self.status = httpc.status_of(data)
                self.closed_after = time.monotonic() - start
                return
            try:
                self.sock.send(b"z")
            except OSError:
                self.closed_after = time.monotonic() - start
                return

    def close(self):
        if self.sock:
            self.sock.close()
