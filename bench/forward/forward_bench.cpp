// bench/forward: `tunnel forward -L` vs `ssh -N -L` and vs `autossh -M 0`
// against one local sshd, same cipher (aes128-gcm@openssh.com on both sides
// and on the server), interleaved rounds, medians (shared/PEERS.md).
//  (1) 512 MiB through one forwarded connection
//  (2) 8 parallel connections, 64 MiB each, through one session
//  (3) time to carry data again after sshd is restarted on the same port,
//      both tools with ServerAliveInterval=5 ServerAliveCountMax=3
// The last lines are the ratios ours/peer (throughput: higher is better;
// recovery: lower is better).
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tcp_servers.hpp"

namespace {

using namespace tunnel;
using bench::arg_int;
using bench::median;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
const char* const cipher = "aes128-gcm@openssh.com";

// Reads until EOF, then answers with one byte so the sender knows every
// byte arrived (the clock stops on that byte, not on the last send).
class sink_server {
  public:
    sink_server() {
        const auto l = test::listen_loopback();
        fd_ = l.fd;
        port_ = l.port;
        thread_ = std::thread([this] {
            while (!stop_) {
                pollfd pf{fd_, POLLIN, 0};
                if (::poll(&pf, 1, 50) <= 0) continue;
                int c = ::accept(fd_, nullptr, nullptr);
                if (c < 0) continue;
                std::thread([c] {
                    std::vector<char> buf(1 << 20);
                    while (::recv(c, buf.data(), buf.size(), 0) > 0) {
                    }
                    char ack = 'k';
                    (void)::send(c, &ack, 1, MSG_NOSIGNAL);
                    ::close(c);
                }).detach();
            }
        });
    }
    ~sink_server() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    uint16_t port() const { return port_; }

  private:
    int fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// Pushes `bytes` through 127.0.0.1:port on `streams` connections at once;
// returns MiB/s, or -1 on failure.
double push(uint16_t port, std::size_t bytes, int streams) {
    static const std::string block(1 << 20, 'x');
    std::atomic<bool> ok{true};
    const auto start = clk::now();
    std::vector<std::thread> threads;
    for (int s = 0; s < streams; ++s) {
        threads.emplace_back([&] {
            int fd = test::connect_tcp("127.0.0.1", port);
            if (fd < 0) {
                ok = false;
                return;
            }
            std::size_t left = bytes / static_cast<std::size_t>(streams);
            while (left > 0) {
                auto n = ::send(fd, block.data(), std::min(left, block.size()), MSG_NOSIGNAL);
                if (n <= 0) {
                    ok = false;
                    break;
                }
                left -= static_cast<std::size_t>(n);
            }
            ::shutdown(fd, SHUT_WR);
            char ack = 0;
            if (::recv(fd, &ack, 1, 0) != 1 || ack != 'k') ok = false;
            ::close(fd);
        });
    }
    for (auto& t : threads) t.join();
    const double secs = std::chrono::duration<double>(clk::now() - start).count();
    return ok ? static_cast<double>(bytes) / (1 << 20) / secs : -1;
}

bool echo_works(uint16_t port) {
    int fd = test::connect_tcp("127.0.0.1", port);
    if (fd < 0) return false;
    auto r = test::exchange(fd, "ping", 500);
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

}  // namespace

int main(int argc, char** argv) {
    const int rounds = arg_int(argc, argv, "--rounds", 3);
    const std::size_t big = static_cast<std::size_t>(arg_int(argc, argv, "--mib", 512)) << 20;

    test::sshd_options so;
    so.max_sessions = 64;
    so.extra_config = {"LogLevel INFO", fmt::format("Ciphers {}", cipher)};
    auto sshd = test::sshd_fixture::start(so);
    if (!sshd) {
        fmt::print(stderr, "cannot start sshd: {}\n", sshd.error().message);
        return 1;
    }
    auto home = test::temp_dir::create("tunnel-bench-home");
    setenv("HOME", home->path().c_str(), 1);
    unsetenv("SSH_AUTH_SOCK");
    sink_server sink;
    auto echo = test::echo_server::start();
    if (!echo) return 1;

    const std::string port = std::to_string(sshd->port());
    const std::vector<std::string> common = {"-F", "/dev/null",
                                             "-p", port,
                                             "-i", sshd->client_key_path(),
                                             "-o", "UserKnownHostsFile=" + sshd->known_hosts_path(),
                                             "-o", "GlobalKnownHostsFile=/dev/null",
                                             "-o", "BatchMode=yes",
                                             "-o", std::string("Ciphers=") + cipher,
                                             "-o", "ServerAliveInterval=5",
                                             "-o", "ServerAliveCountMax=3"};
    auto ports = [] {
        auto p = test::unused_port();
        return p ? *p : uint16_t{0};
    };
    const uint16_t ours_bulk = ports(), ours_echo = ports(), ssh_bulk = ports(), ssh_echo = ports();
    auto with = [&](std::vector<std::string> head, uint16_t bulk, uint16_t echo_port) {
        head.insert(head.end(), common.begin(), common.end());
        for (auto [lp, tp] :
             {std::pair{bulk, sink.port()}, std::pair{echo_port, (*echo)->port()}}) {
            head.push_back("-L");
            head.push_back(fmt::format("127.0.0.1:{}:127.0.0.1:{}", lp, tp));
        }
        head.push_back("root@127.0.0.1");
        return head;
    };
    const std::string log_dir = home->path();
    test::spawn_options ours_opts;
    ours_opts.stdout_path = ours_opts.stderr_path = log_dir + "/ours.log";
    const bool show_log = arg_int(argc, argv, "--show-log", 0) != 0;
    std::vector<std::string> ours_head{TUNNEL_BINARY};
    if (show_log) ours_head.push_back("-v");
    ours_head.push_back("forward");
    auto ours = test::spawn(with(ours_head, ours_bulk, ours_echo), ours_opts);
    test::spawn_options peer_opts;
    peer_opts.env.set = {{"AUTOSSH_GATETIME", "0"}};
    peer_opts.stdout_path = peer_opts.stderr_path = log_dir + "/peer.log";
    auto peer = test::spawn(
        with({"autossh", "-M", "0", "-N", "-o", "ExitOnForwardFailure=yes"}, ssh_bulk, ssh_echo),
        peer_opts);
    if (!ours || !peer || !wait_echo(ours_echo, 10s) || !wait_echo(ssh_echo, 10s)) {
        fmt::print(stderr, "forwards did not come up\n{}\n{}\n",
                   test::read_text_file(log_dir + "/ours.log").value_or(""),
                   test::read_text_file(log_dir + "/peer.log").value_or(""));
        return 1;
    }
    // autossh runs `ssh -N -L ...`: the throughput peer is plain ssh -L.

    std::vector<double> one_ours, one_ssh, par_ours, par_ssh, rec_ours, rec_ssh, restart_ms;
    (void)push(ours_bulk, 64 << 20, 1);  // warm up both
    (void)push(ssh_bulk, 64 << 20, 1);
    for (int r = 0; r < rounds; ++r) {
        one_ours.push_back(push(ours_bulk, big, 1));
        one_ssh.push_back(push(ssh_bulk, big, 1));
        par_ours.push_back(push(ours_bulk, big, 8));
        par_ssh.push_back(push(ssh_bulk, big, 8));
        fmt::print(stderr,
                   "round {}: 1 stream {:.0f} vs {:.0f} MiB/s; 8 streams {:.0f} vs {:.0f} MiB/s\n",
                   r + 1, one_ours.back(), one_ssh.back(), par_ours.back(), par_ssh.back());
    }
    for (int r = 0; r < rounds; ++r) {
        const auto t0 = clk::now();
        if (!sshd->restart()) {
            fmt::print(stderr, "sshd did not restart\n");
            return 1;
        }
        const double up_ms = std::chrono::duration<double, std::milli>(clk::now() - t0).count();
        // One prober per tool, so a probe that waits on one listener never
        // delays noticing the other (our listener accepts during the outage
        // and holds the probe; ssh's is gone and refuses at once).
        std::optional<double> o, s;
        const auto deadline = t0 + 120s;
        auto probe = [&](uint16_t p, std::optional<double>& when) {
            while (clk::now() < deadline) {
                if (echo_works(p)) {
                    when = std::chrono::duration<double, std::milli>(clk::now() - t0).count();
                    return;
                }
                std::this_thread::sleep_for(10ms);
            }
        };
        std::thread po([&] { probe(ours_echo, o); });
        std::thread ps([&] { probe(ssh_echo, s); });
        po.join();
        ps.join();
        if (!o || !s) {
            fmt::print(stderr, "no recovery within 120 s (tunnel {}, autossh {})\n", o.has_value(),
                       s.has_value());
            return 1;
        }
        rec_ours.push_back(*o);
        rec_ssh.push_back(*s);
        restart_ms.push_back(up_ms);
        fmt::print(stderr,
                   "restart {}: sshd back after {:.0f} ms; recovered in {:.0f} ms vs {:.0f} ms\n",
                   r + 1, up_ms, *o, *s);
        std::this_thread::sleep_for(3s);  // both settled before the next restart
    }
    ours->terminate();
    peer->terminate();
    if (show_log)
        fmt::print(stderr, "--- tunnel log ---\n{}",
                   test::read_text_file(log_dir + "/ours.log").value_or(""));

    const double o1 = median(one_ours), s1 = median(one_ssh), o8 = median(par_ours),
                 s8 = median(par_ssh);
    const double orc = median(rec_ours), src = median(rec_ssh);
    fmt::print(
        "cipher: {} on both sides (sshd Ciphers and client -o Ciphers=), sshd on 127.0.0.1, {} "
        "rounds\n",
        cipher, rounds);
    fmt::print(
        "(1) one stream, {} MiB: tunnel forward -L median {:.0f} MiB/s, ssh -L median {:.0f} "
        "MiB/s\n",
        big >> 20, o1, s1);
    fmt::print(
        "(2) 8 streams, {} MiB total: tunnel forward median {:.0f} MiB/s, ssh -L median {:.0f} "
        "MiB/s\n",
        big >> 20, o8, s8);
    fmt::print(
        "(3) recovery after sshd restart (ServerAliveInterval=5, CountMax=3), from the kill to "
        "data flowing "
        "again: tunnel median {:.0f} ms, AUTOSSH_GATETIME=0 autossh -M 0 median {:.0f} ms "
        "(sshd itself was back after a median {:.0f} ms)\n",
        orc, src, median(restart_ms));
    fmt::print("throughput ratio, one stream (tunnel/ssh -L, higher is better): {:.2f}\n", o1 / s1);
    fmt::print("throughput ratio, 8 streams (tunnel/ssh -L, higher is better): {:.2f}\n", o8 / s8);
    // autossh lengthens its pause with each restart it has seen; the first
    // restart shows the two tools fresh.
    fmt::print("recovery time ratio, first restart (tunnel/autossh, lower is better): {:.2f}\n",
               rec_ours.front() / rec_ssh.front());
    fmt::print(
        "recovery time ratio, median of {} restarts (tunnel/autossh, lower is better): {:.2f}\n",
        rounds, orc / src);
    return 0;
}
