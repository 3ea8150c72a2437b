#!/usr/bin/env python3
"""Chaos for the relay cluster (issue 12, docs/cluster.md "Leases across relays").

Starts a real redis-server, three real `tunnel relay` processes in one cluster,
the hostile tests' origin (tests/hostile/origin.py, which logs every request it
gets), and a real `tunnel connect` attached to relay A with B and C as its
--relay failovers, publishing acme/web. Then it sends 1,000 requests
(GET /t/acme/web/hello?id=N) to relays picked at random while a chaos thread
kills a random relay with SIGKILL every few seconds and restarts it on the same
ports a moment later (never the last one standing).

A request whose own connection dies with the relay it went to (connect
refused, reset, closed without an answer), or that gets 502 owner_lost (the
relay holding the tunnel died after the request went into it: the relays
never send such a request again), is sent again to another relay, as any
HTTP client would after a connection failure, but only once the origin's log
shows it never arrived (checked after a pause, so nothing still in flight is
sent twice). It reports:

  lost        requests that were never served (a non-200 answer, or no
              answer after 4 attempts): must be 0
  duplicated  requests the origin got more than once: must be 0

and, for information, kills, restarts, re-sent requests, answers lost with a
killed relay (served by the origin, but the caller's connection died before
the answer), the tunnel's attaches, and latency percentiles.

Run: cluster_chaos.py --tunnel PATH [--requests N] [--rate R] [--keep]
Exit status 0 when lost and duplicated are both 0.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hostile"))

import harness  # noqa: E402
import httpc  # noqa: E402
from origin import payload  # noqa: E402

CLUSTER_SECRET = "chaos-0123456789abcdef0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Relay:
    def __init__(self, setup, node, redis_port):
        self.setup = setup
        self.node = node
        self.public = free_port()
        self.admin = free_port()
        self.internal = free_port()
        self.proc = None
        self.runs = 0
        self.config = setup.path("relay-%s.yaml" % node)
        with open(self.config, "w") as f:
            f.write(
                "listen: 127.0.0.1:%d\nadmin_listen: 127.0.0.1:%d\nhost_key_file: %s\n"
                "jwt:\n  secret_file: %s\n"
                "limits:\n%s"
                "leases: {grace: 60s}\nqueue: {max_wait: 30s}\n"
                "shutdown:\n  drain_timeout: 1s\n"
                "cluster:\n  redis: redis://127.0.0.1:%d\n  node: relay-%s\n"
                "  internal_listen: 127.0.0.1:%d\n  secret_file: %s\n"
                % (self.public, self.admin, setup.path("host_key_" + node), setup.secret_path,
                   harness.yaml_block(harness.BASE_LIMITS), redis_port, node, self.internal,
                   setup.path("cluster.secret")))

    def attach_url(self):
        return "ws://127.0.0.1:%d/v1/tunnel" % self.public

    def start(self):
        self.runs += 1
        name = "relay-%s-%d" % (self.node, self.runs)
        self.proc = self.setup.spawn([self.setup.tunnel, "relay", "--config", self.config], name)

        def ready():
            if any(l.startswith("public: ") for l in self.setup.read(name + ".out").splitlines()):
                return True
            if self.proc.poll() is not None:
                raise RuntimeError("relay %s exited: %s" % (self.node,
                                                            self.setup.read(name + ".log")[-4000:]))
            return False

        if not harness.wait_for(ready, 20):
            raise RuntimeError("relay %s did not start" % self.node)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def log(self):
        return "".join(self.setup.read("relay-%s-%d.log" % (self.node, i))
                       for i in range(1, self.runs + 1))


def get(port, ident, timeout):
    request = ("GET /t/acme/web/hello?id=%d&size=32 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Connection: close\r\n\r\n" % ident).encode()
    return httpc.exchange(port, request, timeout=timeout)


def origin_counts(setup):
    """How many times the origin got each id."""
    counts = {}
    for line in setup.read("origin.jsonl").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("ev") != "req":
            continue
        text = rec.get("line", "")
        marker = "hello?id="
        at = text.find(marker)
        if at < 0:
            continue
        digits = text[at + len(marker):].split("&", 1)[0].split(" ", 1)[0]
        if digits.isdigit():
            counts[int(digits)] = counts.get(int(digits), 0) + 1
    return counts


def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100.0 * len(values)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tunnel", required=True)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=40.0, help="requests per second in all")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print("seed %d (--seed to replay the chaos schedule)" % args.seed, flush=True)

    setup = harness.Setup(args.tunnel, keep=args.keep)
    with open(os.open(setup.path("cluster.secret"), os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(CLUSTER_SECRET)
    failed = True
    try:
        redis_port = free_port()
        setup.spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", setup.dir], "redis")
        def redis_up():
            try:
                socket.create_connection(("127.0.0.1", redis_port), 1).close()
                return True
            except OSError:
                return False

        if not harness.wait_for(redis_up, 10):
            raise RuntimeError("redis-server did not start")
        relays = [Relay(setup, n, redis_port) for n in "abc"]
        for r in relays:
            r.start()
        setup.start_origin()
        token = setup.path("acme.token")
        with open(os.open(token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(setup.mint("acme", "web") + "\n")
        argv = [setup.tunnel, "connect", relays[0].attach_url(), "--token-file", token,
                "--expose", "web=127.0.0.1:%d" % setup.origin_port, "--json"]
        for r in relays[1:]:
            argv += ["--relay", r.attach_url()]
        client = setup.spawn(argv, "connect")
        warm = 10_000_000

        def routed_everywhere():
            nonlocal warm
            for r in relays:
                warm += 1
                resp, _ = get(r.public, warm, 5)
                if not resp or resp.status != 200:
                    return False
            return True

        if not harness.wait_for(routed_everywhere, 30, step=0.2):
            raise RuntimeError("acme/web was not routed by every relay: " +
                               setup.read("connect.log")[-3000:])

        up = set(range(len(relays)))
        lock = threading.Lock()
        done = threading.Event()
        stats = {"kills": 0, "restarts": 0, "resent": 0, "answer_lost": 0, "owner_lost": 0}
        outcome = {}  # id -> final status (200 ok; 0 no answer)
        latencies = []
        failures = []

        def chaos():
            while not done.wait(rng.uniform(2.0, 4.0)):
                with lock:
                    if len(up) < 2:
                        continue
                    victim = rng.choice(sorted(up))
                    up.discard(victim)
                relays[victim].kill()
                stats["kills"] += 1
                print("chaos: killed relay-%s" % relays[victim].node, flush=True)
                if done.wait(rng.uniform(0.5, 2.0)):
                    pass
                relays[victim].start()
                stats["restarts"] += 1
                print("chaos: restarted relay-%s" % relays[victim].node, flush=True)
                with lock:
                    up.add(victim)

        def one(ident):
            tried = set()
            t0 = time.monotonic()
            for attempt in range(4):
                with lock:
                    choices = sorted(up - tried) or sorted(up)
                pick = rng.choice(choices)
                tried.add(pick)
                resp, note = get(relays[pick].public, ident, 40)
                if resp is not None and resp.status == 502 and b"owner_lost" in resp.body:
                    # The relay holding the tunnel died with the request in
                    # it (it had announced it started): the same as the
                    # caller's own connection dying, below.
                    resp, note = None, "502 owner_lost"
                    with lock:
                        stats["owner_lost"] += 1
                if resp is not None:
                    ok = resp.status == 200 and resp.body == payload(ident, 32)
                    with lock:
                        outcome[ident] = 200 if ok else resp.status
                        latencies.append(time.monotonic() - t0)
                        if not ok:
                            failures.append("id %d via relay-%s: %d %s" % (
                                ident, relays[pick].node, resp.status, resp.body[:200]))
                    return
                # The caller's own connection died (its relay was killed):
                # sent again only when the origin never got it.
                time.sleep(2.0)
                if origin_counts(setup).get(ident, 0) > 0:
                    with lock:
                        stats["answer_lost"] += 1
                        outcome[ident] = 200
                    return
                with lock:
                    stats["resent"] += 1
            with lock:
                outcome[ident] = 0
                failures.append("id %d: no answer after 4 attempts (last: %s)" % (ident, note))

        chaos_thread = threading.Thread(target=chaos, daemon=True)
        chaos_thread.start()
        workers = []
        start = time.monotonic()
        for ident in range(args.requests):
            due = start + ident / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t = threading.Thread(target=one, args=(ident,), daemon=True)
            t.start()
            workers.append(t)
        for t in workers:
            t.join(120)
        done.set()
        chaos_thread.join(30)
        time.sleep(1.0)

        counts = origin_counts(setup)
        lost = [i for i in range(args.requests) if outcome.get(i) != 200]
        duplicated = [i for i in range(args.requests) if counts.get(i, 0) > 1]
        attaches = sum(1 for l in setup.read("connect.out").splitlines()
                       if '"event":"attached"' in l)
        print("requests %d in %.1f s; kills %d, restarts %d; tunnel attaches %d" % (
            args.requests, time.monotonic() - start, stats["kills"], stats["restarts"], attaches))
        print("re-sent after the caller's relay died: %d; answers lost with a killed relay "
              "(served once): %d; 502 owner_lost (the owner died with it in its tunnel): %d" % (
                  stats["resent"], stats["answer_lost"], stats["owner_lost"]))
        print("latency p50 %.0f ms, p99 %.0f ms, max %.0f ms" % (
            1000 * percentile(latencies, 50), 1000 * percentile(latencies, 99),
            1000 * max(latencies or [0])))
        for line in failures[:20]:
            print("  " + line)
        print("lost %d, duplicated %d" % (len(lost), len(duplicated)), flush=True)
        if duplicated:
            print("  duplicated ids: %s" % duplicated[:20])
        failed = bool(lost or duplicated or stats["kills"] == 0)
        if stats["kills"] == 0:
            print("no relay was killed: the run proves nothing")
        if failed:
            for r in relays:
                lines = [l for l in r.log().splitlines() if "warn" in l or "error" in l][-15:]
                print("last warnings of relay-%s:\n  %s" % (r.node, "\n  ".join(lines)))
            print("tunnel connect:\n  " + "\n  ".join(setup.read("connect.log").splitlines()[-20:]))
        client.poll()
        return 1 if failed else 0
    finally:
        setup.close(failed)


if __name__ == "__main__":
    sys.exit(main())
