"""Legitimate traffic through the relay at a fixed rate, every response checked
byte for byte. A request fails when it errors, times out, gets a status other
than the one expected, or a body that differs from what the origin sent; the
time limit counts from when the request was due, so a relay that makes
callers queue fails too.

The mix (request k, by k mod 20):
  0-7   GET  /hello on the worker's keep-alive connection
  8-11  GET  /hello on a new connection (Connection: close)
  12-14 POST /echo, Content-Length body (1 B-64 KiB), keep-alive
  15-16 POST /echo, chunked body, new connection
  17    GET  /stream (5 NDJSON lines, 20 ms apart), new connection
  18    GET  /hello 256 KiB, keep-alive
  19    GET  /upgrade with Upgrade: a 101, then raw bytes echoed (new connection)
A keep-alive connection the relay closed while idle is retried once on a new
connection, as HTTP clients do (RFC 9112 §9.3.1); such retries are counted.
Each worker is a separate client with its own source address, 127.0.1.N: the
legitimate load comes from many callers with a few connections each, so a
per-address cap in the relay never has a reason to refuse it.
"""
import json
import queue
import random
import threading
import time

import httpc
from origin import payload

KINDS = ["ka_get"] * 8 + ["new_get"] * 4 + ["ka_post"] * 3 + ["chunked_post"] * 2 + \
        ["stream", "ka_big", "upgrade"]


class Failure(Exception):
    pass


def body_for(k):
    rnd = random.Random(k)
    return rnd.randbytes(rnd.randint(1, 65536))


def chunked(body, k):
    rnd = random.Random(k * 7 + 1)
    out = bytearray()
    i = 0
    while i < len(body):
        n = rnd.randint(1, 9000)
        out += b"%x\r\n" % len(body[i:i + n]) + body[i:i + n] + b"\r\n"
        i += n
    return bytes(out + b"0\r\n\r\n")


class Legit:
    def __init__(self, port, prefix="/t/acme/web", rate=200, workers=48, deadline=8.0):
        self.port, self.prefix, self.rate = port, prefix, rate
        self.deadline = deadline
        self.local = threading.local()
        self.q = queue.Queue()
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.done = 0
        self.failures = []  # (k, kind, why)
        self.latencies = []
        self.by_kind = {}
        self.ka_retries = 0
        self.issued = 0
        self.threads = [threading.Thread(target=self._worker, args=("127.0.1.%d" % (n + 1),),
                                         daemon=True) for n in range(workers)]
        self.sched = threading.Thread(target=self._schedule, daemon=True)

    # ------------------------------------------------------------------ control
    def start(self):
        self.t0 = time.monotonic()
        for t in self.threads:
            t.start()
        self.sched.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.sched.join()
        for _ in self.threads:
            self.q.put(None)
        for t in self.threads:
            t.join(self.deadline + 5)
        self.elapsed = time.monotonic() - self.t0
        return self

    def _schedule(self):
        k = 0
        while not self.stop_ev.is_set():
            due = self.t0 + k / self.rate
            now = time.monotonic()
            if due > now:
                time.sleep(min(due - now, 0.05))
                continue
            self.q.put((k, due))
            k += 1
            self.issued = k

    # ------------------------------------------------------------------ work
    def _worker(self, src_ip):
        self.local.src_ip = src_ip
        conn = None
        while True:
            item = self.q.get()
            if item is None:
                break
            k, due = item
            kind = KINDS[k % len(KINDS)]
            try:
                conn = self._run(kind, k, due, conn)
                ok = True
            except Exception as e:  # any error is a failed legitimate request
                ok = False
                why = "%s: %s" % (type(e).__name__, e)
                if conn:
                    conn.close()
                conn = None
            took = time.monotonic() - due
            if ok and took > self.deadline:
                ok, why = False, "took %.1f s from when it was due (limit %.0f s)" % (
                    took, self.deadline)
            with self.lock:
                self.done += 1
                self.latencies.append(took)
                s = self.by_kind.setdefault(kind, [0, 0])
                s[0] += 1
                if not ok:
                    s[1] += 1
                    self.failures.append((k, kind, why))
        if conn:
            conn.close()

    def _left(self, due):
        return max(0.2, self.deadline - (time.monotonic() - due))

    def _new(self, due):
        return httpc.Conn(self.port, self.local.src_ip, self._left(due))

    def _ka(self, conn, req, due, check):
        """req on the keep-alive connection; one retry on a new connection when
        a reused connection was closed before any byte of the answer."""
        if conn is None or conn.closed:
            conn = self._new(due)
        reused = conn.uses > 0
        before = conn.received
        try:
            r = conn.request(req, self._left(due))
        except httpc.Closed as e:
            conn.close()
            if not reused or e.received != before:
                raise
            with self.lock:
                self.ka_retries += 1
            conn = self._new(due)
            r = conn.request(req, self._left(due))
        check(r)
        if r.wants_close():
            conn.close()
        return conn

    def _run(self, kind, k, due, conn):
        p = self.prefix
        if kind in ("ka_get", "new_get", "ka_big"):
            size = 262144 if kind == "ka_big" else (k * 37) % 20000 + 1
            want = payload(k, size)
            close = "Connection: close\r\n" if kind == "new_get" else ""
            req = ("GET %s/hello?id=%d&size=%d HTTP/1.1\r\nHost: legit.test\r\n%s"
                   "User-Agent: hostile-legit\r\n\r\n" % (p, k, size, close)).encode()

            def check(r):
                expect(r, 200, want)
            if kind == "new_get":
                c = self._new(due)
                try:
                    check(c.request(req, self._left(due)))
                finally:
                    c.close()
                return conn
            return self._ka(conn, req, due, check)
        if kind == "ka_post":
            body = body_for(k)
            req = ("POST %s/echo HTTP/1.1\r\nHost: legit.test\r\nContent-Type: "
                   "application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                   % (p, len(body))).encode() + body
            return self._ka(conn, req, due, lambda r: expect(r, 200, body))
        if kind == "chunked_post":
            body = body_for(k)
            req = ("POST %s/echo HTTP/1.1\r\nHost: legit.test\r\nTransfer-Encoding: chunked\r\n"
                   "Connection: close\r\n\r\n" % p).encode() + chunked(body, k)
            c = self._new(due)
            try:
                expect(c.request(req, self._left(due)), 200, body)
            finally:
                c.close()
            return conn
        if kind == "stream":
            want = b"".join(json.dumps({"id": k, "i": i}).encode() + b"\n" for i in range(5))
            req = ("GET %s/stream?id=%d&n=5&ms=20 HTTP/1.1\r\nHost: legit.test\r\n"
                   "Connection: close\r\n\r\n" % (p, k)).encode()
            c = self._new(due)
            try:
                expect(c.request(req, self._left(due)), 200, want)
            finally:
                c.close()
            return conn
        if kind == "upgrade":
            req = ("GET %s/upgrade HTTP/1.1\r\nHost: legit.test\r\nConnection: Upgrade\r\n"
                   "Upgrade: echo\r\n\r\n" % p).encode()
            c = self._new(due)
            try:
                r = c.request(req, self._left(due))
                expect(r, 101, None)
                msg = b"ping-%d" % k
                c.send(msg)
                got = bytes(c.buf)
                c.buf.clear()
                while len(got) < len(msg):
                    c._fill(time.monotonic() + self._left(due))
                    got += bytes(c.buf)
                    c.buf.clear()
                if got != msg:
                    raise Failure("upgraded echo %r, expected %r" % (got[:64], msg))
            finally:
                c.close()
            return conn
        raise AssertionError(kind)

    # ------------------------------------------------------------------ report
    def report(self, checks, label="legitimate traffic"):
        lat = sorted(self.latencies)

        def pct(p):
            return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0

        rate = self.done / self.elapsed if self.elapsed else 0
        checks.info("%s: %d requests in %.1f s (%.0f/s), p50 %.1f ms, p99 %.1f ms, max %.0f ms, "
                    "%d keep-alive retries" % (label, self.done, self.elapsed, rate, pct(0.5),
                                               pct(0.99), pct(1.0) if lat else 0, self.ka_retries))
        checks.info("by kind (requests/failures): " + ", ".join(
            "%s %d/%d" % (kk, v[0], v[1]) for kk, v in sorted(self.by_kind.items())))
        for k, kind, why in self.failures[:12]:
            checks.info("failed #%d %s: %s" % (k, kind, why))
        if len(self.failures) > 12:
            checks.info("... and %d more failures" % (len(self.failures) - 12))
        checks.check("%s: every request answered and every answer exact" % label,
                     not self.failures and self.done == self.issued,
                     "%d of %d failed%s" % (len(self.failures), self.issued,
                                            "" if self.done == self.issued else
                                            ", %d never finished" % (self.issued - self.done)))
        checks.check("%s: ran at the intended rate" % label, rate >= 0.9 * self.rate,
                     "%.0f/s of %d/s" % (rate, self.rate))


def expect(r, status, body):
    if r.status != status:
        snippet = r.body[:160].decode("latin-1", "replace").strip()
        raise Failure("status %d, expected %d (%s)" % (r.status, status, snippet))
    if body is not None and r.body != body:
        raise Failure("body of %d bytes differs from the %d expected" % (len(r.body), len(body)))
