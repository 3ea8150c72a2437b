"""hostile.bad_token_flood: hundreds of attach attempts a second with bad
tokens for ~10 s from one address (127.0.0.4), while 200 requests/s of
legitimate traffic continue and a legitimate client attaches (issue 10,
finding 7 and "Done when").

Checks: no bad token is ever accepted (101); each attempt is refused with
401 or 429, or closed; zero legitimate failures; a new `tunnel connect` with
a good token attaches and serves during the flood; the audit log (with any
rotated files) grows by far fewer lines than there were attempts (refusals
rate-limited per source address: at most one line per 10 attempts).
"""
import json
import os
import threading
import time
from collections import Counter

import httpc
from legit import Legit

FLOOD_IP = "127.0.0.4"
FLOOD_RATE = 300  # attempts per second
THREADS = 12


def attach_request(token):
    auth = "Authorization: Bearer %s\r\n" % token if token is not None else ""
    return ("GET /v1/tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ssh\r\n%s\r\n" % auth).encode()


def bad_tokens(setup):
    now = int(time.time())
    good = {"sub": "acme", "exp": now + 3600, "allow": ["web"]}
    return [
        ("garbage", "garbage-not-a-jwt"),
        ("alg none", setup.craft(good, alg="none")),
        ("expired", setup.craft(dict(good, exp=now - 3600))),
        ("wrong secret", setup.craft(good, key="a-different-secret-0123456789abcdef")),
        ("bad base64", "!!!.@@@.###"),
        ("9 KB", "e" * 9000),
        ("missing", None),
        ("HS512", setup.craft(good, alg="HS512")),
        ("invalid sub", setup.craft(dict(good, sub="Acme"))),
        ("not yet valid", setup.craft(dict(good, nbf=now + 3600))),
    ]


class Flood:
    def __init__(self, port, tokens, seconds):
        self.port, self.tokens, self.seconds = port, tokens, seconds
        self.answers = Counter()
        self.accepted = []
        self.unexpected = []
        self.lock = threading.Lock()
        self.attempts = 0

    def worker(self, n, t0):
        i = n
        while True:
            due = t0 + i / FLOOD_RATE
            if due - t0 >= self.seconds:
                return
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            what, token = self.tokens[i % len(self.tokens)]
            r, note = httpc.exchange(self.port, attach_request(token), FLOOD_IP, timeout=3.0)
            with self.lock:
                self.attempts += 1
                key = r.status if r else note.split(" (")[0].split(":")[0]
                self.answers[key] += 1
                if r is not None and r.status == 101:
                    self.accepted.append(what)
                elif r is not None and r.status not in (401, 429):
                    self.unexpected.append("%s: %d %s" % (what, r.status, r.body[:80]))
                elif r is None and not note.startswith("closed"):
                    self.unexpected.append("%s: %s" % (what, note))
            i += THREADS

    def run(self):
        t0 = time.monotonic()
        threads = [threading.Thread(target=self.worker, args=(n, t0), daemon=True)
                   for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.seconds + 30)
        self.elapsed = time.monotonic() - t0


def audit_records(setup, exclude_tenant):
    """Audit lines (all audit.jsonl* files) not about `exclude_tenant`."""
    n = 0
    for name in os.listdir(setup.dir):
        if not name.startswith("audit.jsonl"):
            continue
        with open(setup.path(name), "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    n += 1
                    continue
                if rec.get("tenant") != exclude_tenant:
                    n += 1
    return n


def run(setup, checks, seconds=10.0):
    setup.start_origin()
    setup.start_relay()
    setup.connect("acme", "web", setup.origin_port)
    pid, port = setup.relay.pid, setup.public_port
    time.sleep(0.5)
    audit0 = audit_records(setup, "beta")
    audit_bytes0 = setup.file_size("audit.jsonl")
    log0 = setup.file_size("relay.log")
    checks.info("relay pid %d; audit log: %d records before the flood" % (pid, audit0))

    legit = Legit(port, rate=200).start()
    time.sleep(2)
    flood = Flood(port, bad_tokens(setup), seconds)
    ft = threading.Thread(target=flood.run, daemon=True)
    ft.start()
    time.sleep(min(3.0, seconds / 3))
    t_attach = time.monotonic()
    late_ok, late_note = True, ""
    try:
        setup.connect("beta", "late", setup.origin_port)
        attach_s = time.monotonic() - t_attach
        r, note = httpc.exchange(port, b"GET /t/beta/late/hello?id=5&size=11 HTTP/1.1\r\nHost: b"
                                       b"\r\nConnection: close\r\n\r\n", timeout=5.0)
        late_ok = r is not None and r.status == 200
        late_note = "published in %.1f s, request %s" % (attach_s, r.status if r else note)
        checks.info("flood running: %d attempts so far" % flood.attempts)
    except RuntimeError as e:
        late_ok, late_note = False, str(e)[:300]
    ft.join()
    time.sleep(1.0)
    legit.stop()
    audit1 = audit_records(setup, "beta")

    rate = flood.attempts / flood.elapsed
    checks.info("flood from %s: %d attempts in %.1f s (%.0f/s), answers %s" % (
        FLOOD_IP, flood.attempts, flood.elapsed, rate, dict(flood.answers)))
    checks.check("the flood ran at hundreds of attempts a second", rate >= 200,
                 "%.0f/s" % rate)
    checks.check("no bad token was accepted", not flood.accepted,
                 "%d accepted: %s" % (len(flood.accepted), Counter(flood.accepted)))
    for u in flood.unexpected[:6]:
        checks.info("  " + u)
    checks.check("every bad attach was refused with 401 or 429, or closed",
                 not flood.unexpected, "%d otherwise" % len(flood.unexpected))
    legit.report(checks)
    checks.check("a good `tunnel connect` attached and served during the flood", late_ok,
                 late_note)
    grew = audit1 - audit0
    checks.info("audit log: +%d records (+%d bytes) for %d refused attempts; relay log +%d bytes"
                % (grew, setup.file_size("audit.jsonl") - audit_bytes0, flood.attempts,
                   setup.file_size("relay.log") - log0))
    checks.check("the audit log grew by at most one record per 10 refused attempts",
                 grew <= flood.attempts // 10,
                 "%d records for %d attempts (limit %d)" % (grew, flood.attempts,
                                                           flood.attempts // 10))
    t1 = time.monotonic()
    r, note = httpc.exchange(port, b"GET /t/acme/web/hello?id=3&size=9 HTTP/1.1\r\nHost: a\r\n"
                                   b"Connection: close\r\n\r\n", timeout=5.0)
    checks.check("the relay still answers at once", setup.relay.poll() is None and r is not None
                 and r.status == 200, "%s in %.0f ms" % (r.status if r else note,
                                                         (time.monotonic() - t1) * 1000))
