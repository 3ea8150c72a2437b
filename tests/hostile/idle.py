"""hostile.idle_and_slowloris: 2,000 idle sockets plus a slowloris, held while
200 requests/s of legitimate traffic continue (issue 10, finding 6 and
"Done when").

The relay runs with a soft RLIMIT_NOFILE of 1024, the Linux default and what
a systemd service gets, so the 2,000 idle sockets are more than it has
descriptors for: a relay without a connection cap runs out of them (EMFILE),
its accept loop spins and new legitimate connections wait. A relay that raises
its own soft limit, or caps connections per source address, passes. The
attackers use their own loopback addresses (127.0.0.2 idle, 127.0.0.3
slowloris); the legitimate load comes from 48 others (127.0.1.N, legit.py).

Checks: zero legitimate failures; the relay never comes within 16 of its
descriptor limit; with limits.max_connections_per_ip configured (FUTURE_LIMITS
in harness.py), it holds no more than that per attacker; every slowloris
connection is closed within header_read_timeout + 4 s; afterwards the relay
answers at once and its descriptors return to the baseline.
"""
import selectors
import socket
import threading
import time

import harness
import httpc
from legit import Legit

IDLE = 2000
SLOWLORIS = 50
RELAY_NOFILE = 1024
HEADER_READ_TIMEOUT = 5.0  # harness.BASE_LIMITS header_read_timeout


class Holder(threading.Thread):
    """Keeps `count` connections from `src_ip` open, reopening (at most
    `reopen_rate` a second) those the relay closes. With `trickle`, each sends
    a request head one byte every `trickle` seconds and never finishes it."""

    def __init__(self, port, src_ip, count, trickle=None, reopen_rate=400):
        super().__init__(daemon=True)
        self.port, self.src_ip, self.count = port, src_ip, count
        self.trickle, self.reopen_rate = trickle, reopen_rate
        self.stop_ev = threading.Event()
        self.sel = selectors.DefaultSelector()
        self.opened = self.closed_by_relay = self.connect_failed = 0
        self.hold_times = []  # seconds from connect to the relay's close
        self.answers = {}
        self.socks = {}
        self.head = b"GET /t/acme/web/hello HTTP/1.1\r\nHost: slow.test\r\nX-Slowloris: " + \
                    b"a" * 4000

    def open_one(self):
        s = socket.socket()
        try:
            s.bind((self.src_ip, 0))
            s.settimeout(1.0)
            s.connect(("127.0.0.1", self.port))
            s.setblocking(False)
        except OSError:
            self.connect_failed += 1
            s.close()
            return False
        self.opened += 1
        state = {"t": time.monotonic(), "sent": 0, "next": time.monotonic()}
        self.socks[s] = state
        self.sel.register(s, selectors.EVENT_READ, state)
        return True

    def drop(self, s, by_relay, data=b""):
        state = self.socks.pop(s)
        self.sel.unregister(s)
        s.close()
        if by_relay:
            self.closed_by_relay += 1
            self.hold_times.append(time.monotonic() - state["t"])
            st = httpc.status_of(data)
            self.answers[st] = self.answers.get(st, 0) + 1

    def run(self):
        budget = 0.0
        last = time.monotonic()
        while not self.stop_ev.is_set():
            now = time.monotonic()
            budget = min(self.count, budget + (now - last) * self.reopen_rate)
            last = now
            missing = self.count - len(self.socks)
            first_fill = self.opened < self.count
            n = missing if first_fill else min(missing, int(budget))
            for _ in range(n):
                if not self.open_one() or self.stop_ev.is_set():
                    break  # the backlog is full: try again on the next round
                budget -= 0 if first_fill else 1
            for key, _ in self.sel.select(timeout=0.2):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                self.drop(s, True, data)
            if self.trickle:
                for s, st in list(self.socks.items()):
                    if now >= st["next"] and st["sent"] < len(self.head):
                        try:
                            s.send(self.head[st["sent"]:st["sent"] + (40 if st["sent"] == 0
                                                                      else 1)])
                            st["sent"] += 40 if st["sent"] == 0 else 1
                        except OSError:
                            self.drop(s, True)
                            continue
                        st["next"] = now + self.trickle
        for s in list(self.socks):
            self.drop(s, False)

    def stop(self):
        self.stop_ev.set()
        self.join(10)


def run(setup, checks, hold=30.0):
    setup.start_origin()
    future = {k: v for k, v in harness.FUTURE_LIMITS.items()
              if k in ("max_connections", "max_connections_per_ip")}
    setup.start_relay(future=future, nofile=RELAY_NOFILE)
    setup.connect("acme", "web", setup.origin_port)
    pid, port = setup.relay.pid, setup.public_port
    limit0 = harness.nofile_soft_limit(pid)
    checks.info("relay pid %d: RLIMIT_NOFILE soft %d (started with %d)" % (pid, limit0,
                                                                          RELAY_NOFILE))
    time.sleep(0.5)
    baseline = harness.fd_count(pid)
    checks.info("relay baseline: %d open descriptors" % baseline)
    log0 = setup.file_size("relay.log")

    legit = Legit(port, rate=200).start()
    time.sleep(3)
    cpu0, t0 = harness.cpu_seconds(pid), time.monotonic()
    idle = Holder(port, "127.0.0.2", IDLE)
    loris = Holder(port, "127.0.0.3", SLOWLORIS, trickle=3.0)
    idle.start()
    loris.start()
    max_fds = 0
    report = t0 + 5
    while time.monotonic() - t0 < hold:
        max_fds = max(max_fds, harness.fd_count(pid))
        time.sleep(0.25)
        if time.monotonic() >= report:
            report += 5
            checks.info("t=%2.0f s: idle held %d (opened %d, closed by relay %d); legit %d done, "
                        "%d failed; relay fds %d" % (time.monotonic() - t0, len(idle.socks),
                                                     idle.opened, idle.closed_by_relay, legit.done,
                                                     len(legit.failures), harness.fd_count(pid)))
    cpu = harness.cpu_seconds(pid) - cpu0
    elapsed = time.monotonic() - t0
    idle.stop()
    loris.stop()
    time.sleep(3)
    legit.stop()
    limit = max(limit0, harness.nofile_soft_limit(pid))

    checks.info("hold: %.0f s; relay CPU %.1f s (%.0f%% of one core); relay log +%d bytes"
                % (elapsed, cpu, 100 * cpu / elapsed, setup.file_size("relay.log") - log0))
    checks.info("idle (127.0.0.2): opened %d, closed by the relay %d (answers %s), connect "
                "failures %d" % (idle.opened, idle.closed_by_relay, idle.answers,
                                 idle.connect_failed))
    checks.check("%d idle sockets were held open against the relay" % IDLE,
                 idle.opened >= IDLE, "%d opened" % idle.opened)
    legit.report(checks)
    checks.check("the relay never ran out of descriptors (stayed 16 below its limit)",
                 max_fds <= limit - 16, "at most %d open, soft limit %d" % (max_fds, limit))
    per_ip = setup.future_used.get("max_connections_per_ip")
    if per_ip:
        bound = baseline + per_ip * 2 + 150  # two attacker addresses, legit connections
        checks.check("with max_connections_per_ip %d the relay held at most %d descriptors"
                     % (per_ip, bound), max_fds <= bound, "at most %d" % max_fds)
    else:
        checks.info("limits.max_connections_per_ip not available: per-address cap not checked")

    holds = sorted(loris.hold_times)
    checks.info("slowloris (127.0.0.3): opened %d, closed by the relay %d (answers %s), held "
                "%s s (min/median/max)" % (loris.opened, loris.closed_by_relay, loris.answers,
                                           [round(holds[i], 1) for i in (0, len(holds) // 2, -1)]
                                           if holds else []))
    bound = HEADER_READ_TIMEOUT + 4
    late = [h for h in holds if h > bound]
    checks.check("every slowloris connection was closed within header_read_timeout + 4 s "
                 "(%.0f s)" % bound, loris.closed_by_relay >= SLOWLORIS and not late,
                 "%d closed, %d held longer, longest %.1f s"
                 % (loris.closed_by_relay, len(late), holds[-1] if holds else 0))

    back = harness.wait_for(lambda: harness.fd_count(pid) <= baseline + 8, 20.0, 0.25)
    checks.check("the relay's descriptors return to the baseline within 20 s", bool(back),
                 "%d now, %d before" % (harness.fd_count(pid), baseline))
    t1 = time.monotonic()
    r, note = httpc.exchange(port, b"GET /t/acme/web/hello?id=3&size=9 HTTP/1.1\r\nHost: a\r\n"
                                   b"Connection: close\r\n\r\n", timeout=5.0)
    health = setup.admin_get("/healthz")
    checks.check("the relay still answers at once (public and /healthz)",
                 setup.relay.poll() is None and r is not None and r.status == 200 and
                 health is not None and health.status == 200,
                 "%s in %.0f ms, healthz %s" % (r.status if r else note,
                                                (time.monotonic() - t1) * 1000,
                                                health.status if health else None))
