// bench/link: failover time of `tunnel up` when the primary transport stalls,
// against autossh (shared/PEERS.md), interleaved rounds, medians.
//
// One sshd on 127.0.0.1, reachable over two paths: through a fault proxy
// (tests/support/fault_proxy: `stall` stops reading both ways, TCP stays up)
// and directly. Each tool has its own proxy instance, so stalling one never
// touches the other.
//  - tunnel: `tunnel up` with one link of two transports (`tcp` with
//    `address:` the proxy, then `tcp` direct), keepalive K, failover after 2
//    failed probes with `rtt_above` R, and `-L` to an echo server.
//  - autossh: `AUTOSSH_GATETIME=0 autossh -M 0 -N -o ServerAliveInterval=K
//    -o ServerAliveCountMax=2 -L ...`, started fresh each round (no restart
//    backoff carried over), whose ssh (AUTOSSH_PATH, a two-line wrapper)
//    goes through the proxy on its first start and directly on every later
//    one: autossh reconnecting over the second path at once, the best it
//    can do (ssh itself has no second HostName).
// A round: wait until the forward answers through the primary, sleep a
// random part of K (so the stall lands anywhere in the keepalive cycle),
// stall the proxy, then open a new connection through the -L port every
// 15 ms (each sends a line and waits up to 3 s for its echo): the failover
// time is from the stall to the first echo. Tunnel and autossh alternate
// which goes first.
// The last lines are the ratios: tunnel p50 / (2 x K) (issue 13 target
// <= 1.0) and tunnel/autossh p50 (lower is better).
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_support.hpp"
#include "support/fault_proxy.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tcp_servers.hpp"

namespace {

using namespace tunnel;
using bench::arg_int;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

using bench::ms_since;
using bench::quantile;

std::string load_average() {
    std::ifstream f("/proc/loadavg");
    std::string a, b, c;
    f >> a >> b >> c;
    return a + " " + b + " " + c;
}

bool echo_works(uint16_t port) {
    int fd = test::connect_tcp("127.0.0.1", port);
    if (fd < 0) return false;
    auto r = test::exchange(fd, "ping", 1000);
    ::close(fd);
    return r && *r == "ping";
}

bool wait_echo(uint16_t port, std::chrono::milliseconds timeout) {
    const auto deadline = clk::now() + timeout;
    while (clk::now() < deadline) {
        if (echo_works(port)) return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

// From t0, opens a connection to the echo forward every `every`, sends a
// line on each and waits up to 3 s for it to come back; the time from t0
// to the first echo, or nullopt when none came before `limit`.
std::optional<double> first_answer(uint16_t port, clk::time_point t0,
                                   std::chrono::milliseconds every,
                                   std::chrono::milliseconds limit) {
    static const std::string line = "are you there\n";
    struct probe {
        int fd;
        clk::time_point opened;
        std::size_t sent = 0, got = 0;
    };
    std::vector<probe> probes;
    auto next_open = t0;
    std::optional<double> answered;
    while (!answered && clk::now() - t0 < limit) {
        if (clk::now() >= next_open) {
            next_open += every;
            int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(port);
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (fd >= 0 && (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ||
                            errno == EINPROGRESS))
                probes.push_back({fd, clk::now()});
            else if (fd >= 0)
                ::close(fd);
        }
        std::vector<pollfd> pfs;
        for (auto& p : probes)
            pfs.push_back({p.fd, static_cast<short>(p.sent < line.size() ? POLLOUT : POLLIN), 0});
        const auto wait =
            std::chrono::duration_cast<std::chrono::milliseconds>(next_open - clk::now());
        (void)::poll(pfs.data(), pfs.size(),
                     static_cast<int>(std::clamp<long>(wait.count(), 0, 20)));
        std::vector<probe> kept;
        for (std::size_t i = 0; i < probes.size(); ++i) {
            auto& p = probes[i];
            bool done = clk::now() - p.opened > 3s || (pfs[i].revents & (POLLERR | POLLNVAL)) != 0;
            if (!done && p.sent < line.size() && (pfs[i].revents & POLLOUT)) {
                auto n = ::send(p.fd, line.data() + p.sent, line.size() - p.sent, MSG_NOSIGNAL);
                if (n > 0)
                    p.sent += static_cast<std::size_t>(n);
                else if (errno != EAGAIN)
                    done = true;
            } else if (!done && (pfs[i].revents & (POLLIN | POLLHUP))) {
                char buf[64];
                auto n = ::recv(p.fd, buf, sizeof buf, 0);
                if (n > 0) {
                    p.got += static_cast<std::size_t>(n);
                    if (p.got >= line.size() && !answered) answered = ms_since(t0);
                } else if (n == 0 || errno != EAGAIN) {
                    done = true;
                }
            }
            if (done)
                ::close(p.fd);
            else
                kept.push_back(p);
        }
        probes = std::move(kept);
    }
    for (auto& p : probes) ::close(p.fd);
    return answered;
}

// One request on the manager's control socket; its reply, or null.
nlohmann::json control(const std::string& path, const nlohmann::json& req) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return nullptr;
    }
    auto line = req.dump() + "\n";
    (void)::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
    std::string got;
    char buf[4096];
    pollfd pf{fd, POLLIN, 0};
    while (got.find('\n') == std::string::npos && ::poll(&pf, 1, 2000) > 0) {
        auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    auto j = nlohmann::json::parse(got.substr(0, got.find('\n')), nullptr, false);
    return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

// True once link `db` runs over transport 0 and transport 1 is up too
// (start: parallel), so a stall fails over to a warm session.
bool tunnel_ready(const std::string& sock, std::chrono::milliseconds timeout) {
    const auto deadline = clk::now() + timeout;
    while (clk::now() < deadline) {
        auto r = control(sock, {{"cmd", "status"}, {"link", "db"}});
        if (r.is_object() && r.value("ok", false)) {
            const auto& l = r["link"];
            if (l["state"] == "up" && l["transport"].is_object() && l["transport"]["index"] == 0 &&
                l["transports"].size() == 2 && l["transports"][1]["state"] == "up")
                return true;
        }
        std::this_thread::sleep_for(50ms);
    }
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    const int rounds = arg_int(argc, argv, "--rounds", 10);
    const int k_ms = arg_int(argc, argv, "--keepalive-ms", 1000);
    const int rtt_above_ms = arg_int(argc, argv, "--rtt-above-ms", 300);
    const int k_s = std::max(1, k_ms / 1000);  // ssh's ServerAliveInterval is whole seconds
    if (k_ms % 1000 != 0)
        fmt::print(stderr, "--keepalive-ms: ssh takes whole seconds; autossh uses {} s\n", k_s);

    test::sshd_options so;
    so.max_sessions = 64;
    // Stalled sessions are let go of within ~3 s; stalled handshakes do not
    // crowd out new ones.
    so.extra_config = {"ClientAliveInterval 1", "ClientAliveCountMax 2", "MaxStartups 100:30:200"};
    auto sshd = test::sshd_fixture::start(so);
    if (!sshd) {
        fmt::print(stderr, "cannot start sshd: {}\n", sshd.error().message);
        return 1;
    }
    auto home = test::temp_dir::create("tunnel-bench-link");
    if (!home) return 1;
    setenv("HOME", home->path().c_str(), 1);
    unsetenv("SSH_AUTH_SOCK");
    auto echo = test::echo_server::start();
    auto ours_proxy = test::fault_proxy::start(sshd->port());
    auto peer_proxy = test::fault_proxy::start(sshd->port());
    if (!echo || !ours_proxy || !peer_proxy) {
        fmt::print(stderr, "cannot start the echo server or the fault proxies\n");
        return 1;
    }
    auto port = [] {
        auto p = test::unused_port();
        return p ? *p : uint16_t{0};
    };
    const uint16_t ours_lp = port(), peer_lp = port();
    const std::string dir = home->path();
    const std::string sock = dir + "/control.sock";

    // tunnel up: two tcp transports, the proxy first.
    const auto yaml = fmt::format(
        "links:\n"
        "  db:\n"
        "    target: root@127.0.0.1\n"
        "    options: {{Port: {}, IdentityFile: {}, IdentitiesOnly: yes, UserKnownHostsFile: {}, "
        "GlobalKnownHostsFile: /dev/null, StrictHostKeyChecking: yes, ConnectTimeout: 5}}\n"
        "    transports:\n"
        "      - {{type: tcp, name: primary, address: '127.0.0.1:{}'}}\n"
        "      - {{type: tcp, name: direct}}\n"
        "    forwards: ['-L 127.0.0.1:{}:127.0.0.1:{}']\n"
        "    keepalive: {}ms\n"
        "    failover: {{after_failures: 2, rtt_above: {}ms}}\n"
        "    return_after: 2\n"
        "    switch_wait: 10s\n",
        sshd->port(), sshd->client_key_path(), sshd->known_hosts_path(), (*ours_proxy)->port(),
        ours_lp, (*echo)->port(), k_ms, rtt_above_ms);
    if (!test::write_text_file(dir + "/links.yaml", yaml)) return 1;
    test::spawn_options ours_opts;
    ours_opts.stdout_path = ours_opts.stderr_path = dir + "/ours.log";
    auto ours =
        test::spawn({TUNNEL_BINARY, "up", dir + "/links.yaml", "--control", sock}, ours_opts);
    if (!ours || !tunnel_ready(sock, 20s) || !wait_echo(ours_lp, 10s)) {
        fmt::print(stderr, "tunnel up did not come up\n{}\n",
                   test::read_text_file(dir + "/ours.log").value_or(""));
        return 1;
    }

    // autossh's ssh: through the proxy on its first start, direct after.
    const std::string wrapper = dir + "/ssh-two-paths";
    const std::string counter = dir + "/ssh-starts";
    if (!test::write_text_file(
            wrapper, fmt::format("#!/bin/sh\n"
                                 "n=$(cat '{0}' 2>/dev/null || echo 0); echo $((n + 1)) > '{0}'\n"
                                 "if [ \"$n\" = 0 ]; then port={1}; else port={2}; fi\n"
                                 "exec ssh -p \"$port\" \"$@\"\n",
                                 counter, (*peer_proxy)->port(), sshd->port())))
        return 1;
    ::chmod(wrapper.c_str(), 0755);
    const std::vector<std::string> peer_argv = {
        "autossh", "-M", "0", "-N", "-F", "/dev/null", "-i", sshd->client_key_path(), "-o",
        "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + sshd->known_hosts_path(), "-o",
        "GlobalKnownHostsFile=/dev/null", "-o",
        // The same host key on both paths, as tunnel checks it under the target.
        fmt::format("HostKeyAlias=[127.0.0.1]:{}", sshd->port()), "-o", "BatchMode=yes", "-o",
        "ExitOnForwardFailure=yes", "-o", "ConnectTimeout=5", "-o",
        fmt::format("ServerAliveInterval={}", k_s), "-o", "ServerAliveCountMax=2", "-L",
        fmt::format("127.0.0.1:{}:127.0.0.1:{}", peer_lp, (*echo)->port()), "root@127.0.0.1"};
    test::spawn_options peer_opts;
    peer_opts.env.set = {{"AUTOSSH_GATETIME", "0"}, {"AUTOSSH_PATH", wrapper}};
    peer_opts.stdout_path = peer_opts.stderr_path = dir + "/peer.log";

    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> phase(0, k_ms);
    const auto limit = std::chrono::milliseconds(std::max(30'000, 20 * k_ms));

    auto run_ours = [&]() -> std::optional<double> {
        if (!tunnel_ready(sock, 30s) || !wait_echo(ours_lp, 10s)) {
            fmt::print(stderr, "tunnel: not back on the primary\n");
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(phase(rng)));
        (*ours_proxy)->set_mode(test::fault_mode::stall);
        const auto t0 = clk::now();
        auto t = first_answer(ours_lp, t0, 15ms, limit);
        (*ours_proxy)->set_mode(test::fault_mode::pass);
        return t;
    };
    auto run_peer = [&]() -> std::optional<double> {
        (void)::unlink(counter.c_str());
        auto peer = test::spawn(peer_argv, peer_opts);
        const int accepted = (*peer_proxy)->accepted();
        if (!peer || !wait_echo(peer_lp, 15s) || (*peer_proxy)->accepted() == accepted) {
            fmt::print(stderr, "autossh did not come up through the proxy\n{}\n",
                       test::read_text_file(dir + "/peer.log").value_or(""));
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(phase(rng)));
        (*peer_proxy)->set_mode(test::fault_mode::stall);
        const auto t0 = clk::now();
        auto t = first_answer(peer_lp, t0, 15ms, limit);
        peer->terminate();
        (*peer_proxy)->set_mode(test::fault_mode::pass);
        return t;
    };

    const std::string load_before = load_average();
    std::vector<double> ours_ms, peer_ms;
    for (int r = 0; r < rounds; ++r) {
        std::optional<double> o, p;
        if (r % 2 == 0) {
            o = run_ours();
            p = run_peer();
        } else {
            p = run_peer();
            o = run_ours();
        }
        if (!o || !p) {
            fmt::print(stderr, "round {}: no answer within {} s (tunnel {}, autossh {})\n{}\n",
                       r + 1, limit.count() / 1000, o.has_value(), p.has_value(),
                       test::read_text_file(dir + "/ours.log").value_or(""));
            return 1;
        }
        ours_ms.push_back(*o);
        peer_ms.push_back(*p);
        fmt::print(stderr, "round {}: failover tunnel {:.0f} ms, autossh {:.0f} ms (load {})\n",
                   r + 1, *o, *p, load_average());
    }
    const std::string load_after = load_average();
    auto switches = control(sock, {{"cmd", "status"}, {"link", "db"}});
    ours->terminate();

    const double o50 = quantile(ours_ms, 0.5), o90 = quantile(ours_ms, 0.9);
    const double p50 = quantile(peer_ms, 0.5), p90 = quantile(peer_ms, 0.9);
    fmt::print(
        "sshd on 127.0.0.1, each tool's primary path through its own fault proxy (stall: stops "
        "reading both ways), {} rounds interleaved, load average {} before, {} after\n",
        rounds, load_before, load_after);
    fmt::print(
        "tunnel up: keepalive {} ms, failover after 2 failed probes, rtt_above {} ms, start: "
        "parallel, two tcp transports (proxy, direct); switches seen: {}\n",
        k_ms, rtt_above_ms, switches.is_object() ? switches["link"].value("switches", -1) : -1);
    fmt::print(
        "autossh -M 0 (AUTOSSH_GATETIME=0, fresh each round): ServerAliveInterval={} "
        "ServerAliveCountMax=2, its ssh reconnecting directly (second path) after the first "
        "start\n",
        k_s);
    fmt::print(
        "failover time, stall to the first new -L connection answered: tunnel p50 {:.0f} "
        "ms p90 {:.0f} ms; autossh p50 {:.0f} ms p90 {:.0f} ms\n",
        o50, o90, p50, p90);
    fmt::print(
        "fresh `tunnel exec` through the manager vs ssh ControlMaster: not built yet (no "
        "exec through the manager's sessions); no figure\n");
    fmt::print("failover ratio, tunnel p50 / (2 x keepalive) (issue 13 target <= 1.0): {:.2f}\n",
               o50 / (2.0 * k_ms));
    fmt::print("failover time ratio, p50 (tunnel/autossh, lower is better): {:.2f}\n", o50 / p50);
    return 0;
}
