#include "relay/hop_pool.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <memory>
#include <utility>

#include <fmt/format.h>

#include "core/log_text.hpp"
#include "relay/cluster_routes.hpp"
#include "relay/hop_preamble.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

void close_socket(tcp::socket& sock) {
    error_code ignored;
    sock.shutdown(tcp::socket::shutdown_both, ignored);
    sock.close(ignored);
}

// An idle hop connection is usable when nothing is waiting on it: no EOF
// (the owner closed it) and no bytes (an owner sends nothing between
// responses). A peek that would block says so.
bool looks_open(tcp::socket& sock) {
    char byte = 0;
    const auto n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

asio::awaitable<core::result<tcp::socket>> connect_hop(asio::any_io_executor ex,
                                                       std::string address) {
    auto where = parse_listen_address(address);
    error_code ec;
    asio::ip::address ip;
    if (where) ip = asio::ip::make_address(where->host, ec);
    if (!where || ec)
        co_return core::fail(
            core::errc::invalid_argument,
            fmt::format("its address {:?} is not HOST:PORT", core::log_text(address, 80)));
    auto sock = std::make_shared<tcp::socket>(ex);
    asio::steady_timer timer(ex);
    timer.expires_after(hop_connect_timeout);
    auto timed_out = std::make_shared<bool>(false);
    timer.async_wait([sock, timed_out](error_code e) {
        if (e) return;
        *timed_out = true;
        error_code ignored;
        sock->close(ignored);
    });
    co_await sock->async_connect(tcp::endpoint(ip, where->port),
                                 asio::redirect_error(asio::use_awaitable, ec));
    timer.cancel();
    if (*timed_out)
        co_return core::fail(
            core::errc::timeout,
            fmt::format("no connection to {} within {} ms", address, hop_connect_timeout.count()));
    if (ec)
        co_return core::fail(core::errc::connection_failed,
                             fmt::format("connecting to {}: {}", address, ec.message()));
    sock->set_option(tcp::no_delay(true), ec);
    co_return std::move(*sock);
}

core::result<std::string> sign_hop(const relay_state& relay, const std::string& tenant,
                                   const std::string& name, const std::string& client_ip,
                                   bool https) {
    const hop_preamble p{
        relay.cluster->node(), unix_ms_now(), new_hop_nonce(), tenant, name, client_ip, https};
    return relay.hop_keys->sign(p);
}

void hop_pool::expire(std::deque<idle_hop>& hops, steady::time_point now) {
    // Oldest at the front.
    while (!hops.empty() && now - hops.front().since >= hop_pool_idle_timeout) {
        close_socket(hops.front().sock);
        hops.pop_front();
    }
}

std::optional<tcp::socket> hop_pool::take(const std::string& owner, steady::time_point now) {
    auto it = idle_.find(owner);
    if (it == idle_.end()) return std::nullopt;
    auto& hops = it->second;
    expire(hops, now);
    while (!hops.empty()) {
        tcp::socket sock = std::move(hops.back().sock);
        hops.pop_back();
        if (looks_open(sock)) return sock;
        close_socket(sock);
    }
    idle_.erase(it);
    return std::nullopt;
}

void hop_pool::put(const std::string& owner, tcp::socket sock, steady::time_point now) {
    if (closed_) {
        close_socket(sock);
        return;
    }
    auto& hops = idle_[owner];
    expire(hops, now);
    if (hops.size() >= hop_pool_max_idle) {
        close_socket(hops.front().sock);
        hops.pop_front();
    }
    hops.push_back(idle_hop{std::move(sock), now});
}

void hop_pool::close() {
    closed_ = true;
    for (auto& [owner, hops] : idle_)
        for (auto& h : hops) close_socket(h.sock);
    idle_.clear();
}

std::size_t hop_pool::idle(const std::string& owner) const {
    auto it = idle_.find(owner);
    return it == idle_.end() ? 0 : it->second.size();
}

hop_pool& hop_pool_of(relay_state& relay, unsigned worker) {
    auto& slot = relay.worker(worker).hops;
    if (!slot) {
        slot = std::make_shared<hop_pool>();
        slot->owned_ =
            relay.own(worker, "cluster hop pool", [weak = std::weak_ptr<hop_pool>(slot)] {
                if (auto p = weak.lock()) p->close();
            });
        if (relay.stopping) slot->close();
    }
    return *slot;
}

}  // namespace tunnel::relay
