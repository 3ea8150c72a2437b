// The proxy hop's integration fixture (cluster_hop_test.cpp,
// cluster_hop_pool_test.cpp): Redis, two relays of one cluster, an origin
// and a tunnel on the first, and raw socket helpers.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "relay/cluster_hop.hpp"
#include "relay/hop_preamble.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/redis_fixture.hpp"
#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"
#include "support/tcp_servers.hpp"

namespace tunnel::test {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

inline const std::string cluster_secret = "0123456789abcdef0123456789abcdef-cluster";

inline void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n <= 0) return;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

// Reads until the peer closes, `stop` says enough, or the deadline; calls
// `seen` with the bytes so far after each read.
inline std::string read_until(int fd, std::chrono::milliseconds timeout, bool& closed,
                              const std::function<bool(const std::string&)>& stop = {}) {
    std::string raw;
    closed = false;
    const auto deadline = steady::now() + timeout;
    char buf[16384];
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
        if (left.count() <= 0) break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            closed = true;
            break;
        }
        raw.append(buf, static_cast<std::size_t>(n));
        if (stop && stop(raw)) break;
    }
    return raw;
}

// Sends `request` on a new connection from `source` (a loopback address) to
// `port` and reads until the peer closes it (or 10 s: then `closed` is false).
inline std::string exchange_from(const std::string& source, std::uint16_t port,
                                 const std::string& request, bool& closed) {
    closed = false;
    const int fd = connect_from(source, port);
    if (fd < 0) return {};
    send_all(fd, request);
    auto raw = read_until(fd, 10s, closed);
    ::close(fd);
    return raw;
}

// Redis, relays A and B (one cluster, one secret), an origin, and a tunnel
// attached to A publishing acme/web, with B routing it to A.
// A redis-server and a directory holding the cluster's secret file.
struct cluster_base {
    std::optional<redis_fixture> redis;
    std::optional<temp_dir> dir;
    std::string secret;  // the secret file's path

    // Empty when both are up, else what failed.
    std::string start_base(const std::string& dir_prefix) {
        auto r = redis_fixture::start();
        if (!r) return r.error().message;
        redis.emplace(std::move(*r));
        auto d = temp_dir::create(dir_prefix);
        if (!d) return d.error().message;
        dir.emplace(std::move(*d));
        secret = dir->file("cluster.secret");
        if (!write_text_file(secret, cluster_secret, 0600)) return "cannot write the secret";
        return {};
    }
};

struct hop_cluster : cluster_base {
    std::uint16_t a_internal = 0;
    std::optional<relay_fixture> a;
    std::optional<relay_fixture> b;
    std::unique_ptr<streaming_origin> origin;
    std::optional<relay_client> tunnel;

    // Empty when all is up, else what failed.
    std::string start() {
        if (auto failed = start_base("tunnel-hop"); !failed.empty()) return failed;
        auto pa = unused_port();
        auto pb = unused_port();
        if (!pa || !pb) return "no free port";
        a_internal = *pa;
        relay_options oa;
        oa.extra_yaml = cluster_yaml(*redis, "relay-a", secret, *pa);
        auto ra = relay_fixture::start(oa);
        if (!ra) return ra.error().message;
        a.emplace(std::move(*ra));
        relay_options ob;
        ob.extra_yaml = cluster_yaml(*redis, "relay-b", secret, *pb);
        ob.share_secret_of = a->secret_path();
        auto rb = relay_fixture::start(ob);
        if (!rb) return rb.error().message;
        b.emplace(std::move(*rb));
        auto o = streaming_origin::start();
        if (!o) return o.error().message;
        origin = std::move(*o);
        auto token = a->mint("acme", "web");
        if (!token) return token.error().message;
        auto c = a->connect(*token, {{"web", origin->port()}});
        if (!c) return c.error().message;
        tunnel.emplace(std::move(*c));
        // B hears of the claim (pub/sub) within moments.
        const auto until = steady::now() + 10s;
        while (steady::now() < until) {
            auto reply = get_via_b("/t/acme/web/hello");
            if (reply && reply->status == 200) return {};
            std::this_thread::sleep_for(50ms);
        }
        return "B never routed acme/web to A\n" + a->log() + b->log();
    }

    [[nodiscard]] core::result<http_reply> get_via_b(const std::string& target) const {
        return http_request(b->public_port(), "GET " + target +
                                                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                                                  "close\r\n\r\n");
    }

    // A preamble signed with the cluster's secret, as relay-b would send it
    // (version 1: no hop_started_line before the answer; 2 as relays send).
    static std::string preamble(std::int64_t unix_ms, const std::string& client_ip = "127.0.0.9",
                                int version = 1) {
        relay::hop_signer keys(cluster_secret);
        relay::hop_preamble p{"relay-b", unix_ms, relay::new_hop_nonce(), "acme", "web", client_ip,
                              false,     version};
        auto line = keys.sign(p);
        return line ? *line : std::string();
    }
};

// The value of one series in Prometheus text (`name{labels}`), 0 when absent.
inline double metric(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return 0;
    return std::stod(text.substr(at + series.size() + 2));
}

// Reads one response with a Content-Length body (or a head-only one) from
// `fd`; what came, empty on timeout or close before it was whole.
inline std::string read_response(int fd, std::chrono::milliseconds timeout) {
    bool closed = false;
    std::string raw = read_until(fd, timeout, closed, [](const std::string& so_far) {
        const auto end = so_far.find("\r\n\r\n");
        if (end == std::string::npos) return false;
        std::size_t length = 0;
        const auto cl = so_far.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) length = std::stoul(so_far.substr(cl + 16));
        return so_far.size() >= end + 4 + length;
    });
    return raw;
}

}  // namespace tunnel::test
