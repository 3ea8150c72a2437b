"""hostile.campaign: 60 s of attacks mixed with 200 requests/s of legitimate
traffic to the same tenant and name (issue 10, "Done when", first item).

Checks: zero legitimate failures; each attack answered as attacks.py says;
the tunnel's breaker never leaves `closed`; the origin's log shows nothing
smuggled, no hop-by-hop or caller-supplied forwarding header, no malformed
request, and every slow reader's response aborted by the relay; with the slow
callers still connected the relay carries no request; afterwards the relay
answers at once and its descriptors return to the baseline.
"""
import threading
import time

import attacks
import harness
import httpc
from legit import Legit

SLOW_READERS = 8  # half stalled, half reading 256 B/s
SLOW_SENDERS = 4


class Sampler(threading.Thread):
    """Every 0.5 s: the relay's descriptors and its tunnels' breaker states."""

    def __init__(self, setup, pid):
        super().__init__(daemon=True)
        self.setup, self.pid = setup, pid
        self.stop_ev = threading.Event()
        self.max_fds = 0
        self.breaker_seen = {}
        self.breaker_known = False

    def run(self):
        while not self.stop_ev.wait(0.5):
            self.max_fds = max(self.max_fds, harness.fd_count(self.pid))
            states = self.setup.breaker_states()
            if states:
                self.breaker_known = True
                for s in states:
                    self.breaker_seen[s] = self.breaker_seen.get(s, 0) + 1


ALL_KINDS = [attacks.MalformedChunked, attacks.Smuggle, attacks.HopByHop, attacks.BadFraming,
             attacks.Oversize, attacks.Pipelined, attacks.HangUp, attacks.Stall, attacks.Garbage]
KEYS = [k.key for k in ALL_KINDS] + ["slow"]


def run(setup, checks, duration=60.0, only=None):
    """only: attack keys (KEYS) to run, for working on one finding; all by default."""
    only = set(only or KEYS)
    setup.start_origin()
    setup.start_relay()
    setup.connect("acme", "web", setup.origin_port)
    pid, port = setup.relay.pid, setup.public_port
    checks.info("relay pid %d, public port %d, origin port %d" % (pid, port, setup.origin_port))

    warm = [httpc.exchange(port, b"GET /t/acme/web/hello?id=1&size=5 HTTP/1.1\r\nHost: w\r\n"
                                 b"Connection: close\r\n\r\n")[0] for _ in range(5)]
    if not checks.check("warm-up requests through the tunnel", all(r and r.status == 200
                                                                    for r in warm)):
        return
    time.sleep(0.5)
    baseline_fds = harness.fd_count(pid)
    cpu0 = harness.cpu_seconds(pid)
    log0 = setup.file_size("relay.log")
    checks.info("relay baseline: %d open descriptors" % baseline_fds)

    stop_ev, release_ev = threading.Event(), threading.Event()
    sampler = Sampler(setup, pid)
    sampler.start()
    legit = Legit(port, rate=200).start()
    started = time.monotonic()
    slow = "slow" in only
    readers = [attacks.SlowReader(port, "127.0.0.20", 900 + i, i % 2 == 1, release_ev)
               for i in range(SLOW_READERS if slow else 0)]
    senders = [attacks.SlowSender(port, "127.0.0.21", release_ev)
               for _ in range(SLOW_SENDERS if slow else 0)]
    kinds = [k for k in ALL_KINDS if k.key in only]
    running = [k(port, "127.0.0.%d" % (11 + ALL_KINDS.index(k)), stop_ev) for k in kinds]
    for t in readers + senders + running:
        t.start()

    while time.monotonic() - started < duration:
        time.sleep(min(10.0, duration - (time.monotonic() - started)))
        checks.info("t=%2.0f s: legit %d done, %d failed; relay fds %d" % (
            time.monotonic() - started, legit.done, len(legit.failures), harness.fd_count(pid)))
    stop_ev.set()
    for a in running:
        a.join(15)
    for a in running:
        if isinstance(a, attacks.Stall):
            a.join_workers(30)
    legit.stop()
    sampler.stop_ev.set()
    sampler.join()
    cpu = harness.cpu_seconds(pid) - cpu0
    checks.info("campaign: %.0f s; relay CPU %.1f s (%.0f%% of one core); relay log +%d bytes; "
                "at most %d descriptors" % (time.monotonic() - started, cpu,
                                            100 * cpu / (time.monotonic() - started),
                                            setup.file_size("relay.log") - log0, sampler.max_fds))

    # ---------------------------------------------------------------- results
    legit.report(checks)
    expectations = {
        attacks.MalformedChunked: "every one answered 400",
        attacks.Smuggle: "no 101 without an origin's 101, nothing smuggled came back",
        attacks.HopByHop: "the origin got none of the caller's hop-by-hop or forwarding headers",
        attacks.BadFraming: "every one answered 400",
        attacks.Oversize: "431 for heads, 413 for bodies over the limits",
        attacks.Pipelined: "every response 200, exact, in order",
        attacks.HangUp: "sent (checked through the breaker and legit traffic)",
        attacks.Stall: "timed out as the caller's fault (408 or a close) within 25 s",
        attacks.Garbage: "answered 4xx or closed",
    }
    for a, k in zip(running, kinds):
        a.report(checks, expectations[k])

    if sampler.breaker_known:
        checks.check("the tunnel's circuit breaker never left closed (admin /api/v1/tunnels)",
                     set(sampler.breaker_seen) <= {"closed"},
                     "states seen in 0.5 s samples: %s" % sampler.breaker_seen)
    else:
        checks.info("breaker state not published by /api/v1/tunnels; judged by legit traffic")

    if slow:
        judge_slow(setup, checks, readers, senders, started)
    release_ev.set()
    for t in readers + senders:
        t.close()
        t.join(3)
    smuggle_ip = "127.0.0.%d" % (11 + ALL_KINDS.index(attacks.Smuggle))
    judge_origin(setup, checks, smuggle_ip)

    # ---------------------------------------------------------------- after
    back = harness.wait_for(lambda: harness.fd_count(pid) <= baseline_fds + 8, 20.0, 0.25)
    checks.check("the relay's descriptors return to the baseline within 20 s", bool(back),
                 "%d now, %d before the campaign" % (harness.fd_count(pid), baseline_fds))
    t0 = time.monotonic()
    r, note = httpc.exchange(port, b"GET /t/acme/web/hello?id=7&size=9 HTTP/1.1\r\nHost: a\r\n"
                                   b"Connection: close\r\n\r\n", timeout=5.0)
    checks.check("the relay still answers at once", setup.relay.poll() is None and r is not None
                 and r.status == 200, "%s in %.0f ms" % (r.status if r else note,
                                                         (time.monotonic() - t0) * 1000))


def judge_slow(setup, checks, readers, senders, started):
    """The slow callers are still connected: the relay must have let go of them."""
    harness.wait_for(lambda: setup.in_flight() == 0, 5.0, 0.25)
    in_flight = setup.in_flight()
    checks.check("with %d slow readers and %d slow senders still connected, the relay carries "
                 "no request" % (SLOW_READERS, SLOW_SENDERS), in_flight == 0,
                 "in flight: %s" % in_flight)
    cut = [s for s in senders if s.closed_after is not None]
    checks.info("slow senders cut off after: %s s; answers %s" % (
        [round(s.closed_after, 1) for s in cut], [s.status for s in cut]))
    checks.check("every slow sender (1 byte / 2 s) was cut off by the relay",
                 len(cut) == SLOW_SENDERS and all(s.status in (None, 408) for s in cut),
                 "%d of %d" % (len(cut), SLOW_SENDERS))
    judge_slow_readers(setup, checks, readers, started)


def judge_slow_readers(setup, checks, readers, started):
    """Before the slow readers let go: the origin's log must already show
    each of their responses aborted (the relay gave up on them)."""
    ids = {r.big_id for r in readers}

    def aborted():
        return {e["id"]: e for e in setup.origin_log()
                if e.get("ev") == "big_aborted" and e.get("id") in ids}

    got = harness.wait_for(lambda: len(aborted()) == len(ids) and aborted(), 3.0, 0.25) or {}
    done = [e["id"] for e in setup.origin_log() if e.get("ev") == "big_done" and e.get("id") in ids]
    wall0 = time.time() - (time.monotonic() - started)
    checks.info("slow readers' responses aborted at the origin %s s into the campaign, after %s "
                "bytes" % (sorted(round(e["t"] - wall0, 1) for e in got.values()),
                           sorted(e["sent"] for e in got.values())))
    checks.check("the relay stopped feeding every slow reader while it was still connected "
                 "(the origin saw its response aborted)", len(got) == len(ids) and not done,
                 "%d of %d aborted, %d completed" % (len(got), len(ids), len(done)))


def judge_origin(setup, checks, smuggle_ip):
    log = setup.origin_log()
    reqs = [e for e in log if e.get("ev") == "req"]

    def target(e):
        return e["line"].split(" ")[1] if e.get("line", "").count(" ") == 2 else ""

    smuggled = [e for e in reqs if target(e).split("?")[0] == "/smuggled"]
    checks.check("the origin never saw the unrouted smuggled request (GET /smuggled)",
                 not smuggled, "%d seen, e.g. %s" % (len(smuggled), smuggled[:1]))
    routed = [e for e in reqs if "/smuggled-routed" in target(e)]
    unparsed = [e for e in routed if target(e) != "/smuggled-routed" or [
        v for n, v in e["headers"] if n.lower() == "x-forwarded-for"] != [smuggle_ip]]
    checks.check("a routed smuggled request reached the origin only as one the relay parsed",
                 not unparsed, "%d of %d still prefixed or without the relay's X-Forwarded-For, e.g. %s"
                 % (len(unparsed), len(routed), unparsed[:1]))
    forbidden = [e for e in reqs if any(w in target(e) for w in ("/te-attack", "/garbage"))]
    checks.check("no refused framing or garbage request reached the origin", not forbidden,
                 "%d, e.g. %s" % (len(forbidden), [e["line"] for e in forbidden[:3]]))
    leaked = [e for e in reqs for n, v in e["headers"]
              if n.lower() in ("x-secret-hop", "x-other-hop", "proxy-authorization")
              or "6.6.6.6" in v or "evil.example" in v]
    checks.check("no hop-by-hop or caller-supplied forwarding header reached the origin, on any "
                 "request", not leaked, "%d requests, e.g. %s" % (len(leaked), leaked[:1]))
    bad = [e for e in log if e.get("ev") == "bad"]
    checks.check("the origin never received a malformed request", not bad,
                 "%d, e.g. %s" % (len(bad), bad[:2]))
    checks.info("origin: %d requests logged" % len(reqs))
