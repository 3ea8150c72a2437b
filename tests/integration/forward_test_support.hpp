// Shared helpers for the `tunnel forward` integration tests: start the CLI
// in the background against the sshd fixture, poll until a forward carries
// data, read its log.
#pragma once

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test::fwd {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

struct forward_process {
    temp_dir home;
    std::string out_path, err_path;
    std::optional<child_process> child;

    [[nodiscard]] std::string err() const { return read_text_file(err_path).value_or(""); }
    [[nodiscard]] std::string out() const { return read_text_file(out_path).value_or(""); }
};

// fixture_flags with -p replaced by `port` (to go through a proxy), and a
// known_hosts file that knows the server's key under that port too.
inline std::vector<std::string> flags_via(const sshd_fixture& sshd, uint16_t port) {
    auto flags = fixture_flags(sshd);
    const std::string kh = sshd.dir() + "/known_hosts_via_" + std::to_string(port);
    (void)write_text_file(kh,
                          "[127.0.0.1]:" + std::to_string(port) + " " + sshd.host_pubkey() + "\n");
    for (std::size_t i = 0; i + 1 < flags.size(); ++i) {
        if (flags[i] == "-p") flags[i + 1] = std::to_string(port);
        if (flags[i + 1].rfind("UserKnownHostsFile=", 0) == 0)
            flags[i + 1] = "UserKnownHostsFile=" + kh;
    }
    return flags;
}

// `tunnel -v forward FLAGS... EXTRA... root@127.0.0.1` in the background.
inline core::result<forward_process> start_forward(std::vector<std::string> flags,
                                                   std::vector<std::string> extra) {
    auto home = temp_dir::create("tunnel-fwd-home");
    if (!home) return tl::unexpected(home.error());
    forward_process p{std::move(*home), "", "", std::nullopt};
    p.out_path = p.home.file("stdout");
    p.err_path = p.home.file("stderr");
    std::vector<std::string> args{std::getenv("TUNNEL_TEST_TRACE") ? "-vvv" : "-v", "forward"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("root@127.0.0.1");
    auto c = spawn_tunnel(args, p.home.path(), p.out_path, p.err_path);
    if (!c) return tl::unexpected(c.error());
    p.child.emplace(std::move(*c));
    return p;
}

// One connection through host:port that echoes `payload` back intact.
inline bool round_trip(const std::string& host, uint16_t port, const std::string& payload = "ping",
                       int timeout_ms = 3000) {
    int fd = connect_tcp(host, port);
    if (fd < 0) return false;
    auto got = exchange(fd, payload, timeout_ms);
    ::close(fd);
    return got && *got == payload;
}

// Polls round_trip until it works or `timeout` passes; returns the time it took.
inline std::optional<std::chrono::milliseconds> wait_round_trip(const std::string& host,
                                                                uint16_t port,
                                                                std::chrono::milliseconds timeout) {
    const auto start = steady::now();
    while (steady::now() - start < timeout) {
        if (round_trip(host, port, "ping", 1000))
            return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
        std::this_thread::sleep_for(50ms);
    }
    return std::nullopt;
}

// Polls until `pred` holds or `timeout` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    while (steady::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return pred();
}

// GET http://127.0.0.1:port/path; returns "STATUS BODY" pieces.
struct http_reply {
    int status = 0;
    std::string body;
};
inline std::optional<http_reply> http_get(uint16_t port, const std::string& path) {
    int fd = connect_tcp("127.0.0.1", port);
    if (fd < 0) return std::nullopt;
    auto got = exchange(fd, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 3000);
    ::close(fd);
    if (!got || got->rfind("HTTP/1.1 ", 0) != 0) return std::nullopt;
    http_reply r;
    r.status = std::atoi(got->c_str() + 9);
    auto head_end = got->find("\r\n\r\n");
    if (head_end != std::string::npos) r.body = got->substr(head_end + 4);
    return r;
}

}  // namespace tunnel::test::fwd
