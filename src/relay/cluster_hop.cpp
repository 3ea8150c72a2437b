#include "relay/cluster_hop.hpp"

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "core/wake_signal.hpp"
#include "relay/hop_preamble.hpp"
#include "relay/public_connection.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

// Log lines (and audit records) of refused hops: at most one a second,
// saying how many were left out, so that a flood of bad connections cannot
// flood the log or the audit chain.
struct refusal_log {
    std::mutex mutex;
    steady::time_point last{};
    unsigned left_out = 0;
};

void refuse(relay_state& relay, const tcp::endpoint& peer, std::string_view outcome,
            const std::string& reason) {
    static refusal_log throttle;
    relay.metrics.hops.with({"refused"}).inc();
    unsigned left_out = 0;
    {
        std::lock_guard lock(throttle.mutex);
        const auto now = steady::now();
        if (now - throttle.last < std::chrono::seconds(1)) {
            ++throttle.left_out;
            return;
        }
        throttle.last = now;
        left_out = std::exchange(throttle.left_out, 0);
    }
    const auto from = peer.address().to_string();
    spdlog::warn("cluster hop from {}: refused ({}): {}{}", from, outcome, reason,
                 left_out
                     ? fmt::format(" ({} more refused in the last second, not logged)", left_out)
                     : std::string());
    (void)relay.audit("hop_refused", {{"peer", from},
                                      {"outcome", std::string(outcome)},
                                      {"reason", core::log_text(reason, 512)},
                                      {"not_logged", std::to_string(left_out)}});
}

// A preamble line checked (steps 2 to 4 of a hop connection's start, and
// of every later request on it).
struct preamble_check {
    bool granted = false;
    hop_preamble preamble;
    // The caller's connection ticket (none when it was not asked for: the
    // same caller as the connection's last request).
    std::optional<connection_gate::ticket> ticket;
    std::string answer;  // refused: what to answer (empty: close without a byte)
};

// Verifies `line` (without its CRLF) from `peer`: its signature, time and
// nonce; then that the route is this relay's (attached, or held by a lease:
// the request queue applies; else the sender's mirror was stale and the
// caller gets the usual 503); then admits the caller against the connection
// caps as if it had come here directly, by its own address (unless its
// address is `same_caller`). Refusals are logged, counted and audited.
preamble_check check_preamble(relay_state& relay, std::string_view line, const tcp::endpoint& peer,
                              unsigned worker, const std::string* same_caller) {
    preamble_check out;
    auto p = relay.hop_keys->verify(line, unix_ms_now(), relay.hop_nonces);
    if (!p) {
        const char* outcome = p.error().code == core::errc::auth_failed      ? "bad_hmac"
                              : p.error().code == core::errc::denied         ? "stale_or_replayed"
                              : p.error().code == core::errc::protocol_error ? "bad_preamble"
                                                                             : "busy";
        refuse(relay, peer, outcome, p.error().message);
        return out;
    }
    const std::string label = fmt::format("{}/{}", p->tenant, p->name);
    bool here = relay.leases->held(p->tenant, p->name).lease != 0;
    if (const auto* r = relay.route(worker, p->tenant, p->name); r) {
        auto t = r->tunnel.lock();
        here = here || (t && !t->closing);
    }
    if (!here) {
        refuse(relay, peer, "not_attached",
               fmt::format("relay {} sent a request for {}, which has no tunnel here", p->node,
                           label));
        out.answer = error_response(503, "tunnel_offline",
                                    fmt::format("{} is not attached to this relay (any more); "
                                                "retry in a moment",
                                                label),
                                    1);
        // A TUNNEL-HOP/2 sender learns its mirror is stale (and may let the
        // request wait for the tunnel instead of passing the 503 on).
        if (p->version >= 2) out.answer.insert(0, hop_not_attached_line);
        return out;
    }
    if (!same_caller || *same_caller != p->client_ip) {
        error_code ec;
        const auto client = asio::ip::make_address(p->client_ip, ec);
        auto ticket = relay.connections.admit(source_key(client));
        if (ec || !ticket) {
            const auto cap =
                ec ? std::string("bad_address") : std::string(to_string(ticket.error()));
            relay.metrics.connections_refused.with({cap}).inc();
            refuse(relay, peer, "over_cap",
                   fmt::format("caller {} of {} is over {}", p->client_ip, label, cap));
            out.answer = error_response(503, "over_capacity",
                                        "this relay has too many open connections; retry later", 1);
            return out;
        }
        out.ticket.emplace(std::move(*ticket));
    }
    relay.metrics.hops.with({"received"}).inc();
    if (spdlog::should_log(spdlog::level::debug))  // (once per request over a kept hop)
        spdlog::debug("cluster hop from {} ({}): {} for {}", p->node, peer.address().to_string(),
                      label, p->client_ip);
    out.granted = true;
    out.preamble = std::move(*p);
    return out;
}

// Writes a whole error response on the internal socket (best effort, 1 s)
// and closes it.
asio::awaitable<void> answer_and_close(std::shared_ptr<tcp::socket> sock, std::string text) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(std::chrono::seconds(1));
    timer.async_wait([sock](error_code ec) {
        error_code ignored;
        if (!ec) sock->cancel(ignored);
    });
    error_code ec;
    co_await asio::async_write(*sock, asio::buffer(text),
                               asio::redirect_error(asio::use_awaitable, ec));
    timer.cancel();
    error_code ignored;
    sock->shutdown(tcp::socket::shutdown_both, ignored);
    sock->close(ignored);
}

// Why no preamble line came, `got` bytes having come.
std::string no_line_reason(std::size_t got, bool timed_out) {
    if (got >= hop_signer::max_line)
        return fmt::format("no line end within {} bytes", hop_signer::max_line);
    if (timed_out)
        return fmt::format("no complete preamble within {} ms ({} bytes came)",
                           hop_preamble_timeout.count(), got);
    return fmt::format("the connection closed before its preamble ({} bytes came)", got);
}

// One connection on internal_listen: the preamble, then serve_hop.
asio::awaitable<void> serve_internal(std::shared_ptr<relay_state> relay, tcp::socket accepted,
                                     tcp::endpoint peer) {
    struct pending_guard {
        relay_state& r;
        bool held = true;
        void release() {
            if (std::exchange(held, false)) --r.hop_pending;
        }
        ~pending_guard() { release(); }
    } pending{*relay};
    auto ex = co_await asio::this_coro::executor;
    auto sock = std::make_shared<tcp::socket>(std::move(accepted));
    auto owned = relay->own(0, "cluster hop connection", [weak = std::weak_ptr<tcp::socket>(sock)] {
        if (auto s = weak.lock()) {
            error_code ignored;
            s->close(ignored);
        }
    });
    auto close_it = [&] {
        error_code ignored;
        sock->close(ignored);
    };

    // 1. The preamble line, within hop_preamble_timeout and max_line bytes.
    std::string in;
    std::size_t eol = std::string::npos;
    {
        asio::steady_timer timer(ex);
        auto timed_out = std::make_shared<bool>(false);
        timer.expires_after(hop_preamble_timeout);
        timer.async_wait([sock, timed_out](error_code ec) {
            if (ec) return;
            *timed_out = true;
            error_code ignored;
            sock->cancel(ignored);
        });
        std::vector<char> buf(4096);
        while ((eol = in.find("\r\n")) == std::string::npos) {
            if (in.size() >= hop_signer::max_line) break;
            error_code ec;
            const std::size_t n = co_await sock->async_read_some(
                asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
            in.append(buf.data(), n);
            if (ec) break;
        }
        timer.cancel();
        if (eol == std::string::npos) {
            refuse(*relay, peer, "bad_preamble", no_line_reason(in.size(), *timed_out));
            close_it();
            co_return;
        }
        if (eol + 2 > hop_signer::max_line) {
            refuse(*relay, peer, "bad_preamble",
                   fmt::format("a {} byte line, over {}", eol + 2, hop_signer::max_line));
            close_it();
            co_return;
        }
    }

    // 2-4. Its signature, time and nonce; the route; the caller's caps.
    auto checked = check_preamble(*relay, std::string_view(in).substr(0, eol), peer, 0, nullptr);
    if (!checked.granted) {
        if (checked.answer.empty())
            close_it();
        else
            co_await answer_and_close(sock, std::move(checked.answer));
        co_return;
    }
    std::string unread = in.substr(eol + 2);
    pending.release();
    owned.reset();  // serve_hop registers the connection itself
    const auto& p = checked.preamble;
    hop_binding binding{p.node, p.tenant, p.name, p.https, p.version >= 2};
    auto serve = serve_hop(relay, std::move(*sock), peer, std::move(unread), p.client_ip,
                           std::move(binding), std::move(*checked.ticket));
    co_await std::move(serve);
}

}  // namespace

std::string head_for_hop(const http_head& head) {
    std::string out =
        fmt::format("{} {} HTTP/1.{}\r\n", head.method, head.target, head.version == 10 ? 0 : 1);
    for (const auto& f : head.fields) {
        out += f.name;
        out += ": ";
        out += f.value;
        out += "\r\n";
    }
    out += "\r\n";
    return out;
}

asio::awaitable<bool> next_hop_preamble(std::shared_ptr<relay_state> relay,
                                        std::shared_ptr<public_conn> conn,
                                        connection_gate::ticket& ticket) {
    // The line: its first byte within hop_next_preamble_timeout (the sender
    // pools an idle connection for less), then the rest within
    // hop_preamble_timeout and hop_signer::max_line bytes.
    const auto idle_until = steady::now() + hop_next_preamble_timeout;
    std::optional<steady::time_point> line_until;  // from the first byte
    std::size_t eol = std::string::npos;
    for (;;) {
        const auto in = conn->buffered();
        eol = in.find("\r\n");
        if (eol != std::string::npos || in.size() >= hop_signer::max_line) break;
        if (!in.empty() && !line_until) line_until = steady::now() + hop_preamble_timeout;
        const bool closed = conn->in_eof || conn->closed;
        bool more = false;
        if (!closed) {
            const auto deadline = line_until.value_or(idle_until);
            more = co_await conn->data_signal.wait(deadline);
        }
        if (!more) {
            // Nothing at all: the sender let an idle connection go.
            const std::size_t got = conn->buffered().size();
            if (got > 0) refuse(*relay, conn->peer, "bad_preamble", no_line_reason(got, !closed));
            conn->close();
            co_return false;
        }
    }
    if (eol == std::string::npos || eol + 2 > hop_signer::max_line) {
        refuse(*relay, conn->peer, "bad_preamble",
               eol == std::string::npos
                   ? no_line_reason(conn->buffered().size(), false)
                   : fmt::format("a {} byte line, over {}", eol + 2, hop_signer::max_line));
        conn->close();
        co_return false;
    }
    const std::string line(conn->buffered().substr(0, eol));
    conn->consume(eol + 2);
    auto checked = check_preamble(*relay, line, conn->peer, conn->worker, &conn->peer_ip);
    if (!checked.granted) {
        if (!checked.answer.empty()) co_await send(*conn, std::move(checked.answer));
        conn->close();
        co_return false;
    }
    if (checked.ticket) ticket = std::move(*checked.ticket);
    ticket.authenticated();  // the preamble vouches for the request
    const auto& p = checked.preamble;
    conn->hop = hop_binding{p.node, p.tenant, p.name, p.https, p.version >= 2};
    conn->peer_ip = p.client_ip;
    co_return true;
}

hop_lead read_hop_lead(std::string_view in) {
    for (const auto& [line, kind] : {std::pair{hop_started_line, hop_lead::started},
                                     std::pair{hop_not_attached_line, hop_lead::not_attached}}) {
        if (in.starts_with(line)) return {kind, line.size()};
        if (in.size() < line.size() && line.starts_with(in)) return {hop_lead::incomplete, 0};
    }
    return {};
}

asio::awaitable<bool> announce_start(public_conn& conn) {
    if (!conn.hop || !conn.hop->announce || conn.hop->announced) co_return true;
    conn.hop->announced = true;
    co_return co_await write_caller(conn, hop_started_line) == write_outcome::done;
}

asio::awaitable<void> accept_internal(std::shared_ptr<relay_state> relay) {
    auto& acceptor = *relay->internal_acceptor;
    asio::steady_timer backoff(relay->io);
    for (;;) {
        error_code ec;
        tcp::socket sock =
            co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open() || relay->stopping)
                break;
            // Out of descriptors or memory: fails again at once; wait a little.
            backoff.expires_after(std::chrono::milliseconds(100));
            error_code ignored;
            co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
            continue;
        }
        const auto peer = sock.remote_endpoint(ec);
        if (ec) continue;
        if (relay->hop_pending >= hop_max_pending) {
            refuse(*relay, peer, "busy",
                   fmt::format("{} internal connections are waiting for their preamble",
                               hop_max_pending));
            sock.close(ec);
            continue;
        }
        ++relay->hop_pending;
        core::spawn(relay->io, serve_internal(relay, std::move(sock), peer),
                    "cluster hop connection");
    }
}

}  // namespace tunnel::relay
