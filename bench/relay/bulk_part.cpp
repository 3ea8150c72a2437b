// bench/relay bulk: one bulk HTTP download (512 MiB) from a local origin,
//   ours:  `tunnel connect` (libssh over our WebSocket client) through
//          `tunnel relay --dev`, fetched from the relay's public side;
//   peers: `ssh -N -L` to OpenSSH sshd, fetched from the forwarded port;
//          `websockify` in front of sshd + `ssh -N -L` with a python3-websockets
//          stdio bridge as ProxyCommand (SSH over WebSocket from off-the-shelf parts).
// Ours and ssh -L run with the default cipher (chacha20-poly1305 on both) and
// with aes128-gcm@openssh.com; the websockify peer with the default. The same
// plain TCP client fetches every URL. Rounds are interleaved (A B C ...),
// medians printed, ratios last (shared/PEERS.md).
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "relay_parts.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tcp_servers.hpp"
#include "support/websockify_fixture.hpp"

namespace tunnel::bench {

namespace {

using namespace tunnel;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
const char* const gcm = "aes128-gcm@openssh.com";

// HTTP/1.1 origin: `GET /small` answers 5 bytes, anything else `bytes`
// bytes (Content-Length, Connection: close), written 1 MiB at a time.
class bulk_origin {
  public:
    explicit bulk_origin(std::size_t bytes) : bytes_(bytes) {
        const auto l = test::listen_loopback();
        fd_ = l.fd;
        port_ = l.port;
        thread_ = std::thread([this] {
            while (!stop_) {
                pollfd pf{fd_, POLLIN, 0};
                if (::poll(&pf, 1, 50) <= 0) continue;
                int c = ::accept(fd_, nullptr, nullptr);
                if (c < 0) continue;
                std::thread([c, n = bytes_] { serve(c, n); }).detach();
            }
        });
    }
    ~bulk_origin() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    uint16_t port() const { return port_; }

  private:
    static void serve(int c, std::size_t n) {
        std::string head;
        char buf[4096];
        while (head.find("\r\n\r\n") == std::string::npos) {
            auto r = ::recv(c, buf, sizeof buf, 0);
            if (r <= 0) {
                ::close(c);
                return;
            }
            head.append(buf, static_cast<std::size_t>(r));
        }
        if (head.find(" /small ") != std::string::npos) n = 5;
        const std::string reply = fmt::format(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
            "{}\r\nConnection: close\r\n\r\n",
            n);
        (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
        static const std::string block(1 << 20, 'x');
        while (n > 0) {
            auto w = ::send(c, block.data(), std::min(n, block.size()), MSG_NOSIGNAL);
            if (w <= 0) break;
            n -= static_cast<std::size_t>(w);
        }
        ::shutdown(c, SHUT_WR);
        while (::recv(c, buf, sizeof buf, 0) > 0) {
        }
        ::close(c);
    }

    std::size_t bytes_;
    int fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// GETs `path` from 127.0.0.1:port and reads the whole body. Returns MiB/s of
// the body (clock from connect to last byte), or -1 if the status was not
// 200 or the body came short.
double fetch(uint16_t port, const std::string& path, std::size_t* body_out = nullptr) {
    const auto start = clk::now();
    int fd = test::connect_tcp("127.0.0.1", port);
    if (fd < 0) return -1;
    const std::string req =
        fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::vector<char> buf(1 << 20);
    std::string head;
    std::size_t body = 0, length = 0;
    bool have_head = false;
    for (;;) {
        pollfd pf{fd, POLLIN, 0};
        if (::poll(&pf, 1, 30'000) <= 0) break;
        auto n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        if (!have_head) {
            head.append(buf.data(), static_cast<std::size_t>(n));
            auto end = head.find("\r\n\r\n");
            if (end == std::string::npos) continue;
            have_head = true;
            if (head.rfind("HTTP/1.1 200", 0) != 0) {
                fmt::print(stderr, "GET {} on port {}: {}\n", path, port,
                           head.substr(0, head.find("\r\n")));
                ::close(fd);
                return -1;
            }
            static const std::regex len_re("[Cc]ontent-[Ll]ength: *([0-9]+)");
            std::smatch m;
            const std::string h = head.substr(0, end);
            if (std::regex_search(h, m, len_re)) length = std::stoull(m[1]);
            body = head.size() - end - 4;
        } else {
            body += static_cast<std::size_t>(n);
        }
        if (length && body >= length) break;
    }
    ::close(fd);
    const double secs = std::chrono::duration<double>(clk::now() - start).count();
    if (body_out) *body_out = body;
    if (!have_head || (length && body < length)) return -1;
    return static_cast<double>(body) / (1 << 20) / secs;
}

bool wait_fetch(uint16_t port, const std::string& path, std::chrono::milliseconds timeout) {
    const auto deadline = clk::now() + timeout;
    while (clk::now() < deadline) {
        std::size_t body = 0;
        if (fetch(port, path, &body) > 0 && body == 5) return true;
        std::this_thread::sleep_for(50ms);
    }
    return false;
}

}  // namespace

int run_bulk_part(int argc, char** argv_in) {
    const int rounds = arg_int(argc, argv_in, "--rounds", 3);
    const std::size_t big = static_cast<std::size_t>(arg_int(argc, argv_in, "--mib", 512)) << 20;

    test::sshd_options so;
    so.max_sessions = 64;
    so.extra_config = {"LogLevel INFO"};
    auto sshd = test::sshd_fixture::start(so);
    if (!sshd) {
        fmt::print(stderr, "cannot start sshd: {}\n", sshd.error().message);
        return 1;
    }
    auto home = test::temp_dir::create("tunnel-relay-bench");
    if (!home) return 1;
    setenv("HOME", home->path().c_str(), 1);
    unsetenv("SSH_AUTH_SOCK");
    bulk_origin origin(big);
    auto ports = [] {
        auto p = test::unused_port();
        return p ? *p : uint16_t{0};
    };
    std::vector<test::child_process> children;
    auto start = [&](std::vector<std::string> argv, const std::string& log) -> bool {
        test::spawn_options o;
        o.stdout_path = o.stderr_path = home->file(log);
        auto c = test::spawn(std::move(argv), o);
        if (!c) {
            fmt::print(stderr, "cannot start {}: {}\n", log, c.error().message);
            return false;
        }
        children.push_back(std::move(*c));
        return true;
    };

    // Peers: ssh -L (default cipher, GCM) and ssh -L over websockify + python bridge.
    test::websockify_options wo;
    wo.target_port = sshd->port();
    auto ws = test::websockify_fixture::start(wo);
    if (!ws) {
        fmt::print(stderr, "cannot start websockify: {}\n", ws.error().message);
        return 1;
    }
    const uint16_t ssh_default = ports(), ssh_gcm = ports(), ssh_ws = ports();
    auto ssh_l = [&](uint16_t lp, std::vector<std::string> extra) {
        std::vector<std::string> argv{
            "ssh",       "-F",
            "/dev/null", "-N",
            "-p",        std::to_string(sshd->port()),
            "-i",        sshd->client_key_path(),
            "-o",        "UserKnownHostsFile=" + sshd->known_hosts_path(),
            "-o",        "GlobalKnownHostsFile=/dev/null",
            "-o",        "BatchMode=yes",
            "-o",        "ExitOnForwardFailure=yes",
            "-L",        fmt::format("127.0.0.1:{}:127.0.0.1:{}", lp, origin.port())};
        argv.insert(argv.end(), extra.begin(), extra.end());
        argv.push_back("root@127.0.0.1");
        return argv;
    };
    if (!start(ssh_l(ssh_default, {}), "ssh-default.log") ||
        !start(ssh_l(ssh_gcm, {"-c", gcm}), "ssh-gcm.log") ||
        !start(ssh_l(ssh_ws, {"-o", fmt::format("ProxyCommand=/usr/bin/python3 {} {}",
                                                WS_BRIDGE_SCRIPT, ws->url())}),
               "ssh-websockify.log"))
        return 1;

    // Ours: tunnel relay --dev and two tunnel connect (default cipher, GCM), one tenant each.
    if (!test::write_text_file(home->file("secret"), "bench-secret-0123456789abcdef0123456789\n",
                               0600))
        return 1;
    if (!start({TUNNEL_BINARY, "relay", "--dev", "--listen", "127.0.0.1:0", "--admin-listen",
                "127.0.0.1:0", "--jwt-secret-file", home->file("secret")},
               "relay.log"))
        return 1;
    uint16_t relay_port = 0;
    {
        static const std::regex public_re(R"(public: http://127\.0\.0\.1:(\d+))");
        const auto deadline = clk::now() + 15s;
        std::smatch m;
        std::string out;
        while (clk::now() < deadline &&
               !std::regex_search(out = log_of(home->file("relay.log")), m, public_re))
            std::this_thread::sleep_for(20ms);
        if (m.empty()) {
            fmt::print(stderr, "the relay did not start:\n{}\n", out);
            return 1;
        }
        relay_port = static_cast<uint16_t>(std::stoi(m[1]));
    }
    for (const char* tenant : {"bench", "benchgcm"}) {
        auto t = test::run({TUNNEL_BINARY, "token", "--secret-file", home->file("secret"),
                            "--tenant", tenant, "--allow", "bulk", "--ttl", "2h"});
        if (!t.ok() ||
            !test::write_text_file(home->file(std::string(tenant) + ".token"), t.out, 0600)) {
            fmt::print(stderr, "tunnel token failed: {}\n", t.describe());
            return 1;
        }
        std::vector<std::string> argv{TUNNEL_BINARY,
                                      "connect",
                                      fmt::format("ws://127.0.0.1:{}/v1/tunnel", relay_port),
                                      "--token-file",
                                      home->file(std::string(tenant) + ".token"),
                                      "--expose",
                                      fmt::format("bulk=127.0.0.1:{}", origin.port())};
        if (std::string(tenant) == "benchgcm") {
            argv.push_back("--ciphers");
            argv.push_back(gcm);
        }
        if (!start(argv, std::string(tenant) + "-connect.log")) return 1;
    }
    const std::string ours_default = "/t/bench/bulk/", ours_gcm = "/t/benchgcm/bulk/";
    struct setup {
        const char* name;
        uint16_t port;
        std::string path;
        std::string log;
        std::vector<double> figures;
    };
    std::vector<setup> setups = {
        {"tunnel connect + tunnel relay (chacha20-poly1305)",
         relay_port,
         ours_default,
         "bench-connect.log",
         {}},
        {"ssh -L to sshd (chacha20-poly1305)", ssh_default, "/", "ssh-default.log", {}},
        {"tunnel connect + tunnel relay (aes128-gcm)",
         relay_port,
         ours_gcm,
         "benchgcm-connect.log",
         {}},
        {"ssh -L to sshd (aes128-gcm)", ssh_gcm, "/", "ssh-gcm.log", {}},
        {"websockify + ssh -L, python3-websockets ProxyCommand (chacha20-poly1305)",
         ssh_ws,
         "/",
         "ssh-websockify.log",
         {}},
    };
    for (auto& s : setups) {
        if (!wait_fetch(s.port, s.path + "small", 30s)) {
            fmt::print(stderr, "{} did not come up:\n{}\nrelay:\n{}\n", s.name,
                       log_of(home->file(s.log)), log_of(home->file("relay.log")));
            return 1;
        }
    }
    for (auto& s : setups) (void)fetch(s.port, s.path);  // warm-up
    for (int r = 0; r < rounds; ++r) {
        for (auto& s : setups) {
            const double f = fetch(s.port, s.path);
            if (f < 0) {
                fmt::print(stderr, "{}: the download failed\n{}\n", s.name,
                           log_of(home->file(s.log)));
                return 1;
            }
            s.figures.push_back(f);
        }
        fmt::print(stderr, "round {}:", r + 1);
        for (auto& s : setups) fmt::print(stderr, " {:.0f}", s.figures.back());
        fmt::print(stderr, " MiB/s\n");
    }
    children.clear();

    fmt::print(
        "{} MiB per download over HTTP/1.1 from one local origin, {} interleaved rounds, "
        "medians:\n",
        big >> 20, rounds);
    for (auto& s : setups) fmt::print("  {}: {:.0f} MiB/s\n", s.name, median(s.figures));
    const double ours = median(setups[0].figures), ssh = median(setups[1].figures);
    const double ours_g = median(setups[2].figures), ssh_g = median(setups[3].figures);
    const double wsk = median(setups[4].figures);
    fmt::print("ratio tunnel relay / ssh -L, default cipher (target >= 0.9): {:.2f}\n", ours / ssh);
    fmt::print("ratio tunnel relay / ssh -L, aes128-gcm: {:.2f}\n", ours_g / ssh_g);
    fmt::print("ratio tunnel relay / websockify + ssh -L, default cipher (target >= 1.5): {:.2f}\n",
               ours / wsk);
    return 0;
}

}  // namespace tunnel::bench
