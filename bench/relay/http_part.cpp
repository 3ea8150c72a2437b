// bench/relay http: request rates through the relay against `ssh -L`.
//   ours: wrk -> tunnel relay (plain HTTP, path-routed) -> WebSocket -> SSH
//         -> tunnel connect -> nginx;
//   peer: wrk -> ssh -N -L -> sshd -> nginx.
// Both with their default cipher. The relay's rate limits are raised so that
// a load test measures the proxy, and every run must answer 2xx only (a
// figure made of 429s or 502s is refused, not printed).
//   keep-alive:        wrk -t2 -c32, 1 KiB body;
//   Connection: close: the same with a new connection per request;
//   paced:             10 connections, one request each per 10 ms (~1,000
//                      req/s), p99 latency, also straight to nginx.
// The relay's and the client's CPU per request come from /proc (user+sys)
// over the keep-alive runs.
#include <unistd.h>

#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "relay_parts.hpp"
#include "ssh_peer.hpp"
#include "support/net.hpp"
#include "support/relay_fixture.hpp"

namespace tunnel::bench {

namespace {

using namespace std::chrono_literals;

struct series {
    std::vector<double> rps, p99, cpu_relay_us, cpu_client_us;
};

}  // namespace

int run_http_part(int argc, char** argv) {
    const int rounds = arg_int(argc, argv, "--rounds", 3);
    const int seconds = arg_int(argc, argv, "--seconds", 4);
    const std::string workers = arg_text(argc, argv, "--workers", "");
    // --tracing URL: the relay traces every request and exports its spans to
    // the OTLP/HTTP collector at URL (docs/relay.md "Tracing").
    const std::string tracing = arg_text(argc, argv, "--tracing", "");
    auto dir = test::temp_dir::create("tunnel-relay-http-bench");
    if (!dir) return 1;
    children procs(*dir);

    auto nginx = nginx_server::start(*dir, procs, {{"1k", std::string(1024, 'x')}});
    if (!nginx) return 1;

    auto ssh = start_ssh_forward(procs, nginx->port());
    if (!ssh) return 1;
    const std::uint16_t lp = ssh->port;

    test::relay_options ro;
    ro.extra_yaml =
        "limits:\n"
        "  tenant_rps: 1000000\n"
        "  tenant_burst: 1000000\n"
        "  route_rps: 1000000\n"
        "  route_burst: 1000000\n"
        "  max_streams_per_tunnel: 4096\n"
        "  max_connections_per_ip: 100000\n";
    if (!workers.empty()) ro.extra_yaml += fmt::format("workers: {}\n", workers);
    if (!tracing.empty()) ro.extra_yaml += fmt::format("tracing:\n  otlp_endpoint: {}\n", tracing);
    auto relay = test::relay_fixture::start(ro);
    if (!relay) {
        fmt::print(stderr, "cannot start the relay: {}\n", relay.error().message);
        return 1;
    }
    auto token = relay->mint("bench", "web", "2h", {"--rps", "1000000", "--max-streams", "4096"});
    if (!token) {
        fmt::print(stderr, "tunnel token: {}\n", token.error().message);
        return 1;
    }
    auto client = relay->connect(*token, {{"web", nginx->port()}});
    if (!client) {
        fmt::print(stderr, "tunnel connect: {}\n", client.error().message);
        return 1;
    }
    const std::string ours =
        fmt::format("http://127.0.0.1:{}/t/bench/web/1k", relay->public_port());
    const std::string peer = fmt::format("http://127.0.0.1:{}/1k", lp);
    const std::string direct = fmt::format("http://127.0.0.1:{}/1k", nginx->port());
    if (!wait_http_ok(relay->public_port(), "/t/bench/web/1k", 30s) ||
        !wait_http_ok(lp, "/1k", 30s)) {
        fmt::print(stderr, "a path did not come up\nrelay:\n{}\nclient:\n{}\nssh:\n{}\n",
                   relay->log(), client->log(), log_of(dir->file("ssh-L.log")));
        return 1;
    }
    const std::string pace = dir->file("pace.lua");
    if (!test::write_text_file(pace, "function delay()\n  return 10\nend\n")) return 1;

    wrk_options keep;
    keep.duration = std::chrono::seconds(seconds);
    wrk_options close = keep;
    close.headers = {"Connection: close"};
    wrk_options paced = keep;
    paced.threads = 1;
    paced.connections = 10;
    paced.script = pace;

    const int relay_pid = relay->pid();
    const int client_pid = client->process().pid();
    series ours_keep, peer_keep, ours_close, peer_close, ours_paced, peer_paced, direct_paced;
    bool failed = false;
    auto measure = [&](const std::string& what, const std::string& url, const wrk_options& o,
                       series& s, bool cpu) {
        const double r0 = cpu ? cpu_seconds(relay_pid) : 0, c0 = cpu ? cpu_seconds(client_pid) : 0;
        auto w = run_wrk(url, o);
        if (!w) {
            failed = true;
            return;
        }
        if (!w->clean()) {
            fmt::print(stderr,
                       "{}: {} requests, {} not 2xx, {} socket errors: not a valid figure\n{}\n",
                       what, w->requests, w->non_2xx, w->socket_errors, w->output);
            failed = true;
            return;
        }
        s.rps.push_back(w->requests_per_second);
        s.p99.push_back(w->p99_ms);
        if (cpu && w->requests > 0) {
            s.cpu_relay_us.push_back((cpu_seconds(relay_pid) - r0) * 1e6 /
                                     static_cast<double>(w->requests));
            s.cpu_client_us.push_back((cpu_seconds(client_pid) - c0) * 1e6 /
                                      static_cast<double>(w->requests));
        }
        fmt::print(stderr, "  {}: {:.0f} req/s, p99 {:.2f} ms\n", what, w->requests_per_second,
                   w->p99_ms);
    };
    (void)run_wrk(ours, keep);  // warm-up: channels, caches
    (void)run_wrk(peer, keep);
    for (int r = 0; r < rounds && !failed; ++r) {
        fmt::print(stderr, "round {}:\n", r + 1);
        measure("relay keep-alive", ours, keep, ours_keep, true);
        measure("ssh -L keep-alive", peer, keep, peer_keep, false);
        measure("relay Connection: close", ours, close, ours_close, true);
        measure("ssh -L Connection: close", peer, close, peer_close, false);
        measure("nginx paced", direct, paced, direct_paced, false);
        measure("relay paced", ours, paced, ours_paced, false);
        measure("ssh -L paced", peer, paced, peer_paced, false);
    }
    if (failed) {
        fmt::print(stderr, "relay log:\n{}\n", relay->log());
        return 1;
    }
    char host[256] = {};
    (void)gethostname(host, sizeof host - 1);
    double load[3] = {};
    (void)getloadavg(load, 3);
    fmt::print(
        "HTTP through the relay vs ssh -L, 1 KiB nginx page, wrk -t2 -c32 -d{}s, {} interleaved "
        "rounds, medians (load average {:.2f}; relay workers: {}; tracing: {}):\n",
        seconds, rounds, load[0], workers.empty() ? "default" : workers,
        tracing.empty() ? "off" : tracing);
    fmt::print("  keep-alive:        relay {:.0f} req/s, ssh -L {:.0f} req/s\n",
               median(ours_keep.rps), median(peer_keep.rps));
    fmt::print("  Connection: close: relay {:.0f} req/s, ssh -L {:.0f} req/s\n",
               median(ours_close.rps), median(peer_close.rps));
    fmt::print("  paced ~1,000 req/s, p99: nginx {:.2f} ms, relay {:.2f} ms, ssh -L {:.2f} ms\n",
               median(direct_paced.p99), median(ours_paced.p99), median(peer_paced.p99));
    fmt::print(
        "  CPU per request, keep-alive: relay {:.1f} us, tunnel connect {:.1f} us; "
        "Connection: close: relay {:.1f} us, tunnel connect {:.1f} us\n",
        median(ours_keep.cpu_relay_us), median(ours_keep.cpu_client_us),
        median(ours_close.cpu_relay_us), median(ours_close.cpu_client_us));
    fmt::print("ratio relay / ssh -L, keep-alive req/s (target >= 1.0): {:.2f}\n",
               median(ours_keep.rps) / median(peer_keep.rps));
    fmt::print("ratio relay / ssh -L, Connection: close req/s (target >= 1.5): {:.2f}\n",
               median(ours_close.rps) / median(peer_close.rps));
    fmt::print(
        "relay p99 at ~1,000 req/s minus nginx's (target <= 2 ms, total <= 5 ms): {:.2f} ms\n",
        median(ours_paced.p99) - median(direct_paced.p99));
    return 0;
}

}  // namespace tunnel::bench
