// bench/relay idle: what an idle tunnel costs the relay. N `tunnel connect`
// processes (default 200, --tunnels N) attach to one relay, each publishing
// one name, and stay idle; the relay's resident set (VmRSS) is read before
// the first and after the last attach, and once more after 5 s of idleness.
// The peer figure is rathole's ~8 MB per client process as its users report
// it; a local peer with many idle tunnels in one server is not in Debian.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "relay_parts.hpp"
#include "support/relay_fixture.hpp"
#include "support/tcp_servers.hpp"

namespace tunnel::bench {

int run_idle_part(int argc, char** argv) {
    using namespace std::chrono_literals;
    const int tunnels = arg_int(argc, argv, "--tunnels", 200);
    test::relay_options ro;
    ro.extra_yaml = fmt::format(
        "limits:\n  max_tunnels_per_tenant: {0}\n  max_names_per_tenant: {0}\n"
        "  attach_refusals_per_ip: 1000000\n  max_connections_per_ip: 1000000\n",
        tunnels + 10);
    auto relay = test::relay_fixture::start(ro);
    if (!relay) {
        fmt::print(stderr, "cannot start the relay: {}\n", relay.error().message);
        return 1;
    }
    auto origin = test::http_origin::start("idle\n");
    if (!origin) return 1;
    auto token = relay->mint("idle", "n*", "2h");
    if (!token) {
        fmt::print(stderr, "tunnel token: {}\n", token.error().message);
        return 1;
    }
    std::this_thread::sleep_for(1s);
    const long before = rss_kib(relay->pid());
    std::vector<test::relay_client> clients;
    clients.reserve(static_cast<std::size_t>(tunnels));
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < tunnels; ++i) {
        auto c = relay->connect(*token, {{fmt::format("n{}", i), (*origin)->port()}});
        if (!c) {
            fmt::print(stderr, "tunnel connect {}: {}\n", i, c.error().message);
            return 1;
        }
        clients.push_back(std::move(*c));
    }
    const double attach_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const long after = rss_kib(relay->pid());
    std::this_thread::sleep_for(5s);
    const long settled = rss_kib(relay->pid());
    fmt::print(
        "relay memory per idle tunnel, {} `tunnel connect` processes (attached in {:.1f} s):\n",
        tunnels, attach_s);
    fmt::print("  relay RSS {} KiB before, {} KiB after the last attach, {} KiB after 5 s idle\n",
               before, after, settled);
    fmt::print(
        "relay RSS per idle tunnel (target <= 32 KiB; rathole ~8 MB per client process): "
        "{:.1f} KiB\n",
        static_cast<double>(settled - before) / tunnels);
    return 0;
}

}  // namespace tunnel::bench
