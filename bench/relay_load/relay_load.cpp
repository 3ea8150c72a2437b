// bench/relay_load: one process that attaches N tunnels to a `tunnel relay`
// (libtunnel's relay client, what `tunnel connect` runs, N times in this
// process: tunnel_fleet.hpp), each publishing one name that leads to an
// in-process origin (load_origin.hpp), and then drives `--rate` requests per
// second spread over the names (load_driver.hpp). It reports what the idle
// tunnels cost the relay (VmRSS and open descriptors from /proc, per tunnel)
// and itself, and the load's errors and p50/p99/p999 latency.
//
//   relay_load --tunnels 10000 --rate 0               # idle tunnels only
//   relay_load --tunnels 1000 --rate 1000 --seconds 60 --require-clean   # the soak
//
// Flags: --tunnels N (100), --rate R req/s (0: no load), --seconds S (10),
// --connections K keep-alive connections of the load (64), --concurrency C
// attaches in flight (64), --settle S seconds idle before the memory is read
// (5), --workers W (the relay's `workers:`, when it has them), --relay-wrap
// "CMD ARGS" (run the relay under it, words split on spaces; it must exec the
// relay in the same process: "env MALLOC_ARENA_MAX=1", "valgrind
// --tool=massif --massif-out-file=FILE"),
// --require-clean (exit 1 unless every tunnel attached and every request was
// answered 200 by the right tunnel), --max-relay-kib N and --max-client-kib N
// (exit 1 when an idle tunnel costs the relay, or this process, more RSS).
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "bench_support.hpp"
#include "load_driver.hpp"
#include "load_origin.hpp"
#include "support/relay_fixture.hpp"
#include "tunnel_fleet.hpp"

namespace tunnel::bench {

namespace {

using namespace std::chrono_literals;

long open_fds(int pid) {
    std::error_code ec;
    long n = 0;
    for (std::filesystem::directory_iterator it(fmt::format("/proc/{}/fd", pid), ec), end;
         !ec && it != end; it.increment(ec))
        ++n;
    return ec ? -1 : n;
}

std::string loadavg() {
    std::ifstream f("/proc/loadavg");
    std::string a, b, c;
    f >> a >> b >> c;
    return fmt::format("{} {} {}", a, b, c);
}

// Raises this process's open-file limit to at least `want` (the hard limit
// too when allowed: root), else as far as the hard limit goes.
rlim_t raise_own_nofile(rlim_t want) {
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < want) {
        rlimit up{want, want};
        if (::setrlimit(RLIMIT_NOFILE, &up) == 0) return want;
    }
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur;
}

struct snapshot {
    long rss_kib = 0, fds = 0;
};

snapshot take(int pid) {
    return {bench::rss_kib(pid), open_fds(pid)};
}

void print_cost(const char* who, const snapshot& before, const snapshot& after, int tunnels) {
    fmt::print("  {:<6} RSS {} -> {} KiB, fds {} -> {}: {:.1f} KiB and {:.2f} fds per tunnel\n",
               who, before.rss_kib, after.rss_kib, before.fds, after.fds,
               static_cast<double>(after.rss_kib - before.rss_kib) / tunnels,
               static_cast<double>(after.fds - before.fds) / tunnels);
}

int run(int argc, char** argv) {
    const int tunnels = std::max(1, arg_int(argc, argv, "--tunnels", 100));
    const int rate = arg_int(argc, argv, "--rate", 0);
    const int seconds = arg_int(argc, argv, "--seconds", 10);
    const int connections = std::max(1, arg_int(argc, argv, "--connections", 64));
    const int concurrency = std::max(1, arg_int(argc, argv, "--concurrency", 64));
    const int settle = arg_int(argc, argv, "--settle", 5);
    const std::string workers = arg_text(argc, argv, "--workers", "");
    const auto relay_wrap = arg_words(argc, argv, "--relay-wrap");
    const bool require_clean = arg_flag(argc, argv, "--require-clean");
    const double max_relay_kib = std::atof(arg_text(argc, argv, "--max-relay-kib", "0").c_str());
    const double max_client_kib = std::atof(arg_text(argc, argv, "--max-client-kib", "0").c_str());
    spdlog::set_level(spdlog::level::warn);

    // Each tunnel here holds a TCP socket, a socketpair and a dup of one end
    // (the WebSocket bridge), plus origin connections under load; the relay
    // holds three per tunnel (its TCP connection and both ends of the
    // socketpair to libssh) and one per public connection.
    const auto own_need = static_cast<rlim_t>(tunnels) * (rate > 0 ? 6 : 4) + 1024;
    const auto own_limit = raise_own_nofile(own_need);
    const auto relay_need = static_cast<rlim_t>(tunnels) * 3 + 1024;
    fmt::print("relay_load: {} tunnels, {} req/s for {} s; open-file limit here {} (wanted {})\n",
               tunnels, rate, rate > 0 ? seconds : 0, own_limit, own_need);

    test::relay_options ro;
    ro.start_timeout = 30s;
    ro.extra_yaml = fmt::format(
        "limits:\n"
        "  max_tunnels_per_tenant: {0}\n"
        "  max_names_per_tenant: {0}\n"
        "  attach_refusals_per_ip: 1000000\n"
        "  max_connections_per_ip: 1000000\n"
        "  tenant_rps: 1000000\n"
        "  tenant_burst: 1000000\n"
        "  route_rps: 1000000\n"
        "  route_burst: 1000000\n",
        tunnels + 16);
    if (!workers.empty()) ro.extra_yaml += fmt::format("workers: {}\n", workers);
    // The relay raises its soft limit to the hard one itself; a hard limit
    // below what N tunnels need is raised for it here (prlimit, as root).
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < relay_need && own_limit >= own_need)  // raising hard limits is allowed
        ro.command_prefix = {"prlimit", fmt::format("--nofile={0}:{0}", relay_need), "--"};
    if (rl.rlim_max < relay_need && own_limit < own_need) {
        fmt::print(stderr,
                   "relay_load: {} tunnels need about {} descriptors in the relay and {} here, "
                   "but the hard open-file limit is {} and cannot be raised (no "
                   "CAP_SYS_RESOURCE): at most about {} tunnels fit; raise it (ulimit -Hn, "
                   "LimitNOFILE) or pass fewer --tunnels\n",
                   tunnels, relay_need, own_need, rl.rlim_max,
                   (rl.rlim_max - 1024) / (rate > 0 ? 6 : 4));
        return 1;
    }
    ro.command_prefix.insert(ro.command_prefix.end(), relay_wrap.begin(), relay_wrap.end());
    auto relay = test::relay_fixture::start(ro);
    if (!relay) {
        fmt::print(stderr, "cannot start the relay: {}\n", relay.error().message);
        return 1;
    }
    auto origin = load_origin::start();
    if (!origin) {
        fmt::print(stderr, "{}\n", origin.error().message);
        return 1;
    }
    auto token = relay->mint("load", "n*", "4h");
    if (!token) {
        fmt::print(stderr, "tunnel token: {}\n", token.error().message);
        return 1;
    }
    auto url = transport::parse_ws_url(relay->attach_url());
    if (!url) return 1;
    auto dir = test::temp_dir::create("tunnel-relay-load");
    if (!dir) return 1;

    std::this_thread::sleep_for(1s);
    const int relay_pid = relay->pid();
    const int self = static_cast<int>(::getpid());
    const auto relay_before = take(relay_pid);
    const auto self_before = take(self);

    fleet_options fo;
    fo.url = *url;
    fo.token = *token;
    fo.tunnels = tunnels;
    fo.origin_port = origin->get()->port();
    fo.known_hosts_file = dir->file("relay_known_hosts");
    fo.concurrency = concurrency;
    tunnel_fleet fleet(fo);
    const auto started = std::chrono::steady_clock::now();
    auto attached = fleet.attach(std::chrono::milliseconds(60'000 + tunnels * 20));
    const double attach_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (!attached) {
        fmt::print(stderr, "relay_load: {}\n{}\n", attached.error().message, relay->log());
        return 1;
    }
    fmt::print("attached {} tunnels in {:.1f} s ({:.0f} per second, {} at once)\n", tunnels,
               attach_s, tunnels / attach_s, concurrency);
    const auto relay_attached = take(relay_pid);
    std::this_thread::sleep_for(std::chrono::seconds(settle));
    const auto relay_idle = take(relay_pid);
    const auto self_idle = take(self);
    fmt::print("idle tunnels ({} s after the last attach; load {}):\n", settle, loadavg());
    print_cost("relay", relay_before, relay_idle, tunnels);
    fmt::print("  (relay right after the last attach: RSS {} KiB, {} fds)\n",
               relay_attached.rss_kib, relay_attached.fds);
    print_cost("client", self_before, self_idle, tunnels);
    fmt::print("relay RSS per idle tunnel (target <= 32 KiB): {:.1f} KiB\n",
               static_cast<double>(relay_idle.rss_kib - relay_before.rss_kib) / tunnels);

    bool clean = true;
    const double relay_kib =
        static_cast<double>(relay_idle.rss_kib - relay_before.rss_kib) / tunnels;
    const double client_kib =
        static_cast<double>(self_idle.rss_kib - self_before.rss_kib) / tunnels;
    if (max_relay_kib > 0 && relay_kib > max_relay_kib) {
        fmt::print(stderr, "relay_load: an idle tunnel costs the relay {:.1f} KiB, over {:.1f}\n",
                   relay_kib, max_relay_kib);
        clean = false;
    }
    if (max_client_kib > 0 && client_kib > max_client_kib) {
        fmt::print(stderr,
                   "relay_load: an idle tunnel costs this process {:.1f} KiB, over {:.1f}\n",
                   client_kib, max_client_kib);
        clean = false;
    }
    if (rate > 0) {
        load_options lo;
        lo.port = relay->public_port();
        lo.tenant = "load";
        lo.names = tunnels;
        lo.rate = rate;
        lo.duration = std::chrono::seconds(seconds);
        lo.connections = connections;
        // Warm-up: one request per name at the same rate, so each tunnel's
        // first channel open (and its origin connection) is not in the figures.
        load_options warm = lo;
        warm.duration = std::chrono::milliseconds(static_cast<long long>(1000.0 * tunnels / rate));
        const auto w = run_load(warm);
        fmt::print(
            "warm-up: {} requests (one per name), {} errors, p50 {:.2f} ms, p99 {:.2f} ms, "
            "max {:.2f} ms{}\n",
            w.sent, w.errors(), w.p50_ms, w.p99_ms, w.max_ms,
            w.first_error.empty() ? "" : "; first: " + w.first_error);
        const double relay_cpu0 = cpu_seconds(relay_pid);
        const auto r = run_load(lo);
        const double relay_cpu = cpu_seconds(relay_pid) - relay_cpu0;
        const auto relay_loaded = take(relay_pid);
        fmt::print(
            "load: {} requests over {} tunnels in {:.1f} s ({:.0f} req/s), {} connections; load "
            "{}\n",
            r.sent, tunnels, r.seconds, r.seconds > 0 ? r.ok / r.seconds : 0.0, connections,
            loadavg());
        fmt::print("  answered 200 by the right tunnel: {}\n", r.ok);
        fmt::print("  errors: {} (status {}, wrong tunnel {}, socket {}, timeouts {}){}\n",
                   r.errors(), r.status_errors, r.wrong_tunnel, r.socket_errors, r.timeouts,
                   r.first_error.empty() ? "" : "; first: " + r.first_error);
        fmt::print(
            "  latency from when each request was due: p50 {:.2f} ms, p99 {:.2f} ms, "
            "p999 {:.2f} ms, max {:.2f} ms\n",
            r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms);
        fmt::print(
            "  relay CPU {:.1f} us per request; relay RSS {} KiB, {} fds; tunnels "
            "republished during the load: {}\n",
            r.sent > 0 ? relay_cpu * 1e6 / static_cast<double>(r.sent) : 0.0, relay_loaded.rss_kib,
            relay_loaded.fds, fleet.republished());
        clean = clean && w.errors() == 0 && r.errors() == 0 && r.ok == r.sent && r.sent > 0 &&
                fleet.republished() == 0;
        fmt::print("soak errors (must be 0): {}\n", r.errors());
    }
    fleet.stop();
    if ((require_clean || max_relay_kib > 0 || max_client_kib > 0) && !clean) {
        fmt::print(stderr, "relay_load: not clean (see above)\n");
        return 1;
    }
    return 0;
}

}  // namespace

}  // namespace tunnel::bench

int main(int argc, char** argv) {
    return tunnel::bench::run(argc, argv);
}
