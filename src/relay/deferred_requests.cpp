#include "relay/deferred_requests.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "core/ascii.hpp"
#include "core/duration.hpp"
#include "core/encoding.hpp"
#include "core/spawn.hpp"
#include "core/utc_time.hpp"
#include "relay/cluster_hop.hpp"
#include "relay/cluster_routes.hpp"
#include "relay/connection_gate.hpp"
#include "relay/hop_pool.hpp"
#include "relay/public_connection.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

// How long one delivery may take, its answer included.
constexpr std::chrono::seconds delivery_timeout{60};
// How often a request waiting for its name looks again.
constexpr std::chrono::milliseconds poll_every{250};

}  // namespace

core::result<std::unique_ptr<deferred_store>> deferred_store::open(const std::string& path) {
    auto db = usage::sqlite_db::open(path);
    if (!db) return tl::unexpected(db.error());
    if (::chmod(path.c_str(), 0600) != 0)
        return core::fail(core::errc::io_error,
                          fmt::format("queue.state_file {}: cannot make it private (mode 0600): "
                                      "check the directory's owner",
                                      path));
    if (auto ok = db->exec("CREATE TABLE IF NOT EXISTS deferred ("
                           "id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, "
                           "name TEXT NOT NULL, client_ip TEXT NOT NULL, https INTEGER NOT NULL, "
                           "request TEXT NOT NULL, saved_unix INTEGER NOT NULL)");
        !ok)
        return tl::unexpected(ok.error());
    return std::unique_ptr<deferred_store>(new deferred_store(std::move(*db)));
}

core::result<void> deferred_store::save(const deferred_request& r) {
    std::lock_guard lock(mutex_);
    auto st = db_.prepare(
        "INSERT INTO deferred (tenant, name, client_ip, https, request, saved_unix) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (!st) return tl::unexpected(st.error());
    st->bind(1, r.tenant);
    st->bind(2, r.name);
    st->bind(3, r.client_ip);
    st->bind(4, std::int64_t{r.https ? 1 : 0});
    st->bind(5, core::base64_encode(r.request));  // bytes, whatever the body holds
    st->bind(6, core::unix_seconds(r.saved));
    return st->run();
}

core::result<std::vector<deferred_request>> deferred_store::load() {
    std::lock_guard lock(mutex_);
    auto st = db_.prepare(
        "SELECT id, tenant, name, client_ip, https, request, saved_unix FROM deferred "
        "ORDER BY id");
    if (!st) return tl::unexpected(st.error());
    std::vector<deferred_request> out;
    for (;;) {
        auto row = st->step();
        if (!row) return tl::unexpected(row.error());
        if (!*row) break;
        auto bytes = core::base64_decode(st->column_text(5));
        if (!bytes) {
            spdlog::warn("queue.state_file {}: row {} is damaged; dropped", db_.path(),
                         st->column_int64(0));
            continue;
        }
        deferred_request r;
        r.id = st->column_int64(0);
        r.tenant = st->column_text(1);
        r.name = st->column_text(2);
        r.client_ip = st->column_text(3);
        r.https = st->column_int64(4) != 0;
        r.request = std::move(*bytes);
        r.saved = core::from_unix_seconds(st->column_int64(6));
        out.push_back(std::move(r));
    }
    return out;
}

core::result<void> deferred_store::remove(std::int64_t id) {
    std::lock_guard lock(mutex_);
    auto st = db_.prepare("DELETE FROM deferred WHERE id = ?1");
    if (!st) return tl::unexpected(st.error());
    st->bind(1, id);
    return st->run();
}

asio::awaitable<bool> defer_request(relay_state& relay, public_conn& conn, const http_head& head,
                                    const std::string& tenant, const std::string& name) {
    if (!relay.deferred || head.chunked) co_return false;
    const std::uint64_t length = head.content_length.value_or(0);
    if (conn.buffered().size() < length) co_return false;  // not all of it here
    // The head as received, but the connection ends with the answer.
    http_head saved_head = head;
    std::erase_if(saved_head.fields, [](const auto& f) {
        return core::iequals(f.name, "Connection") || core::iequals(f.name, "Keep-Alive");
    });
    saved_head.fields.push_back({"Connection", "close"});
    deferred_request r;
    r.tenant = tenant;
    r.name = name;
    r.client_ip = conn.peer_ip;
    r.https = conn.secure();
    r.request = head_for_hop(saved_head);
    r.request.append(conn.buffered().substr(0, static_cast<std::size_t>(length)));
    r.saved = std::chrono::system_clock::now();
    if (auto ok = relay.deferred->save(r); !ok) {
        spdlog::warn("{}/{}: a waiting request could not be kept for after the restart: {}", tenant,
                     name, ok.error().message);
        co_return false;
    }
    const std::string body =
        nlohmann::json{
            {"deferred", true},
            {"message",
             fmt::format("the relay is restarting; this request was kept and will be "
                         "delivered to {}/{} when the relay and its tunnel are back "
                         "(within {}); its answer cannot reach you",
                         tenant, name, core::format_duration(relay.config.queue.max_wait))}}
            .dump() +
        "\n";
    conn.last_status = 202;
    co_await send(conn, fmt::format("HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                                    "Content-Length: {}\r\nTunnel-Deferred: 1\r\nConnection: "
                                    "close\r\n\r\n{}",
                                    body.size(), body));
    conn.close();
    relay.metrics.queued.with({"deferred"}).inc();
    co_return true;
}

namespace {

// How a delivery went: the answer's status (0: none came), and whether the
// request went into a tunnel (the receiver's hop_started_line came): then it
// is never delivered again.
struct delivery {
    int status = 0;
    bool started = false;
    bool not_attached = false;  // the receiver said the name has no tunnel there
};

// Writes `out` to `sock` and reads until the peer closes or the timeout.
asio::awaitable<delivery> send_and_read(tcp::socket& sock, const std::string& out) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    timer.expires_after(delivery_timeout);
    timer.async_wait([&sock](error_code e) {
        if (e) return;
        error_code ignored;
        sock.close(ignored);
    });
    error_code ec;
    co_await asio::async_write(sock, asio::buffer(out),
                               asio::redirect_error(asio::use_awaitable, ec));
    constexpr std::size_t keep = 64 + hop_started_line.size();
    std::string in;
    char buf[8192];
    while (!ec) {
        const std::size_t n = co_await sock.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (in.size() < keep) in.append(buf, std::min<std::size_t>(n, keep - in.size()));
    }
    timer.cancel();
    delivery d;
    const auto lead = read_hop_lead(in);
    if (lead.kind == hop_lead::not_attached) {
        d.not_attached = true;
        co_return d;
    }
    if (lead.kind == hop_lead::started) {
        d.started = true;
        in.erase(0, lead.size);
    }
    // "HTTP/1.1 200 ..."
    if (in.size() >= 12 && in.starts_with("HTTP/1.")) {
        const int status = std::atoi(in.substr(9, 3).c_str());
        if (status >= 100 && status <= 599) d.status = status;
    }
    co_return d;
}

// Through this relay's own public request path, bound to the route (as a
// proxy hop from another relay would be): a connected pair of loopback
// sockets, one end served by serve_hop.
asio::awaitable<delivery> deliver_here(std::shared_ptr<relay_state> relay,
                                       const deferred_request& r) {
    auto ex = co_await asio::this_coro::executor;
    error_code ec;
    const auto client_address = asio::ip::make_address(r.client_ip, ec);
    if (ec) co_return delivery{};
    auto ticket = relay->connections.admit(source_key(client_address));
    if (!ticket) co_return delivery{};
    tcp::acceptor acceptor(ex, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket caller(ex);
    co_await caller.async_connect(acceptor.local_endpoint(),
                                  asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return delivery{};
    tcp::socket served =
        co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return delivery{};
    acceptor.close(ec);
    const auto peer = caller.local_endpoint(ec);
    core::spawn(
        ex,
        serve_hop(relay, std::move(served), peer, std::string(), r.client_ip,
                  hop_binding{"(deferred)", r.tenant, r.name, r.https, true}, std::move(*ticket)),
        "deferred request");
    auto sent = send_and_read(caller, r.request);
    co_return co_await std::move(sent);
}

// To the relay of the cluster whose tunnel publishes the name, over the
// signed proxy hop (cluster_hop.hpp).
asio::awaitable<delivery> deliver_there(std::shared_ptr<relay_state> relay,
                                        const deferred_request& r,
                                        const cluster_routes::remote_owner& owner) {
    auto ex = co_await asio::this_coro::executor;
    // A connection of its own (the saved request closes it: never pooled).
    auto sock = co_await connect_hop(ex, owner.address);
    if (!sock) co_return delivery{};
    auto line = sign_hop(*relay, r.tenant, r.name, r.client_ip, r.https);
    if (!line) co_return delivery{};
    const std::string out = *line + r.request;
    auto sent = send_and_read(*sock, out);
    co_return co_await std::move(sent);
}

asio::awaitable<void> deliver(std::shared_ptr<relay_state> relay, deferred_request r,
                              steady::time_point until) {
    const std::string label = fmt::format("{}/{}", r.tenant, r.name);
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer wait(ex);
    while (!relay->stopping) {
        std::optional<delivery> d;
        if (relay->table()->routes.count({r.tenant, r.name})) {
            auto op = deliver_here(relay, r);
            d = co_await std::move(op);
        } else if (relay->cluster) {
            if (auto owner = relay->cluster->owner(r.tenant, r.name)) {
                auto op = deliver_there(relay, r, *owner);
                d = co_await std::move(op);
                // That relay's claim was stale here: not its owner any more.
                if (d->not_attached) relay->cluster->stale(r.tenant, r.name, owner->node);
            }
        }
        if (d && (d->status > 0 || d->started)) {
            // Answered, or into a tunnel without an answer (the relay holding
            // it went away): either way it is never delivered again.
            if (d->status > 0)
                spdlog::info("deferred request for {} (saved before the restart) delivered: {}",
                             label, d->status);
            else
                spdlog::warn(
                    "deferred request for {} went into its tunnel but no answer came; "
                    "it may have reached the service, so it is not delivered again",
                    label);
            relay->audit(
                "deferred_delivered",
                {{"tenant", r.tenant}, {"name", r.name}, {"status", std::to_string(d->status)}});
            (void)relay->deferred->remove(r.id);
            co_return;
        }
        if (d) spdlog::warn("deferred request for {}: no answer on delivery; trying again", label);
        if (steady::now() >= until) break;
        wait.expires_after(poll_every);
        error_code ignored;
        co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    if (relay->stopping) co_return;  // kept for the next start
    spdlog::warn(
        "deferred request for {} dropped: its name was not published within queue.max_wait of "
        "the restart",
        label);
    relay->audit("deferred_expired", {{"tenant", r.tenant}, {"name", r.name}});
    (void)relay->deferred->remove(r.id);
}

}  // namespace

asio::awaitable<void> replay_deferred(std::shared_ptr<relay_state> relay) {
    auto rows = relay->deferred->load();
    if (!rows) {
        spdlog::error("queue.state_file {}: {}", relay->deferred->path(), rows.error().message);
        co_return;
    }
    if (rows->empty()) co_return;
    spdlog::info("{} deferred requests from before the restart wait for their names (up to {})",
                 rows->size(), core::format_duration(relay->config.queue.max_wait));
    const auto until = steady::now() + relay->config.queue.max_wait;
    auto ex = co_await asio::this_coro::executor;
    for (auto& r : *rows) core::spawn(ex, deliver(relay, std::move(r), until), "deferred request");
}

}  // namespace tunnel::relay
