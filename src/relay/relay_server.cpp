#include "relay/relay_server.hpp"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/beast.hpp"
#include "core/fd_limit.hpp"
#include "core/log_text.hpp"
#include "core/secret_file.hpp"
#include "core/spawn.hpp"
#include "core/wake_signal.hpp"
#include "relay/admin_server.hpp"
#include "relay/cluster_hop.hpp"
#include "relay/cluster_rates.hpp"
#include "relay/cluster_revocations.hpp"
#include "relay/cluster_routes.hpp"
#include "relay/public_connection.hpp"
#include "relay/relay_state.hpp"
#include "relay/tcp_routes.hpp"
#include "relay/token_revocation.hpp"
#include "relay/visitor_token.hpp"
#include "usage/redis_usage.hpp"
#include "usage/usage_recorder.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
namespace ssl = asio::ssl;

core::result<tcp::acceptor> bind_listener(asio::io_context& io, const listen_address& where,
                                          const char* what) {
    error_code ec;
    auto host = where.host.empty() ? std::string("0.0.0.0") : where.host;
    if (host == "localhost") host = "127.0.0.1";
    auto addr = asio::ip::make_address(host, ec);
    if (ec)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{} address {:?} is not an IP address", what, where.host));
    tcp::endpoint ep(addr, where.port);
    tcp::acceptor acc(io);
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return core::fail(core::errc::io_error, fmt::format("cannot listen on {} for the {}: {}",
                                                            where.to_string(), what, ec.message()));
    return acc;
}

// Closes every worker's acceptor, each on its worker (worker 0's here: this
// runs on worker 0, or while it is not running).
void close_acceptors(relay_state& st) {
    if (st.internal_acceptor) {  // worker 0's
        error_code ignored;
        st.internal_acceptor->close(ignored);
    }
    for (auto& w : st.workers) {
        if (w->index == 0) {
            error_code ignored;
            if (w->acceptor) w->acceptor->close(ignored);
            continue;
        }
        asio::post(w->io, [wk = w.get()] {
            error_code ignored;
            if (wk->acceptor) wk->acceptor->close(ignored);
        });
    }
}

// Closes everything the relay owns: the listeners, then every registered
// public connection, tunnel and timer (relay_state::owned; each closed on its
// worker). What those were doing completes with an error, so every coroutine
// the relay started ends; with the work guards released, every worker's
// run() returns once that is done.
void close_everything(relay_state& st) {
    st.stopping = true;
    close_acceptors(st);
    st.close_admin();  // the admin listener and its open connections
    if (!st.owned.closing() && st.owned.size() > 0) spdlog::info("closing {}", st.owned.describe());
    st.owned.close_all();
    for (auto& w : st.workers) w->work.reset();
}

}  // namespace

struct relay_server::shutdown_state {
    bool started = false;
    bool finished = false;
    std::vector<std::function<void()>> done;
};

namespace {

// relay_server::shutdown: drain, tell the tunnels, close the rest.
asio::awaitable<void> drain_and_close(std::shared_ptr<relay_state> st,
                                      std::shared_ptr<relay_server::shutdown_state> sd) {
    const auto ex = co_await asio::this_coro::executor;
    st->stopping = true;
    close_acceptors(*st);
    spdlog::info("shutting down: {} requests in flight, {} tunnels", st->in_flight.load(),
                 st->table()->tunnels.size());
    st->audit("shutdown", {{"in_flight", std::to_string(st->in_flight.load())}});

    // Woken when the last in-flight request ends, and by a close().
    auto wake = std::make_shared<core::wake_signal>(ex);
    auto owned = st->owned.add("shutdown timer", [wake] { wake->notify(); });

    // 1. In-flight requests finish (new ones are answered 503), up to the
    // deadline. Requests waiting in the queue are answered first: 503, or
    // kept for after the restart (queue.state_file: deferred_requests.hpp).
    const auto drain_until = steady::now() + st->live()->config.shutdown.drain_timeout;
    st->queue->wake_all();
    while (st->queue->waiting() > 0 && !st->owned.closing() && steady::now() < drain_until)
        (void)co_await wake->wait(
            std::min(drain_until, steady::now() + std::chrono::milliseconds(20)));
    while (st->in_flight > 0 && !st->owned.closing()) {
        st->on_drained = [wake] { wake->notify(); };
        if (!co_await wake->wait(drain_until)) break;
    }
    st->on_drained = nullptr;
    if (st->in_flight > 0 && !st->owned.closing())
        spdlog::warn("drain deadline ({} ms) passed with {} requests in flight: closing them",
                     st->live()->config.shutdown.drain_timeout.count(), st->in_flight.load());

    // 2. Every tunnel: SSH disconnect and WebSocket close 1001 "relay
    // shutting down"; up to a second for them to reach the clients.
    if (!st->owned.closing()) {
        const auto table = st->table();
        for (const auto& [id, ref] : table->tunnels)
            asio::post(st->worker(ref.worker).io, [weak = ref.tunnel] {
                if (auto t = weak.lock(); t && t->close) t->close("relay shutting down");
            });
        const auto grace_until = steady::now() + std::chrono::seconds(1);
        while (st->owned.count("tunnel") > 0 && !st->owned.closing() && steady::now() < grace_until)
            (void)co_await wake->wait(
                std::min(grace_until, steady::now() + std::chrono::milliseconds(20)));
    }

    // 3. Whatever is left: idle connections, requests past the deadline, tunnels
    // that did not finish closing, the admin listener.
    owned.reset();
    close_everything(*st);
    // Every request has ended: the last counts go to Redis before its client stops.
    if (st->cluster_usage) {
        auto last = st->cluster_usage->stop(std::chrono::seconds(2));
        co_await std::move(last);
    }
    if (st->cluster) st->cluster->stop();
    sd->finished = true;
    auto done = std::move(sd->done);
    for (auto& d : done)
        if (d) d();
}

}  // namespace

// ---------------------------------------------------------------- relay_server

relay_server::relay_server(std::shared_ptr<relay_state> state,
                           std::vector<std::unique_ptr<asio::io_context>> contexts)
    : state_(std::move(state)),
      shutdown_(std::make_shared<shutdown_state>()),
      contexts_(std::move(contexts)) {}

relay_server::~relay_server() {
    close();
    join_workers(std::chrono::seconds(2));
    // Every request has ended: the last counts go to the database.
    if (state_->usage) state_->usage->stop();
    // What workers 1..N-1 own goes before their io_contexts.
    for (auto& w : state_->workers) {
        if (w->index == 0) continue;
        w->acceptor.reset();
        w->tunnels.clear();
        w->cached.reset();
        w->hops.reset();  // idle hop connections (hop_pool.hpp)
    }
    contexts_.clear();
    // Every request has ended: their spans go to the collector now (bounded
    // by the exporter's flush timeout), whoever still holds the state.
    if (state_->tracer) state_->tracer->stop();
}

void relay_server::join_workers(std::chrono::milliseconds grace) {
    const auto until = steady::now() + grace;
    for (auto& w : state_->workers)
        while (w->index != 0 && !threads_.empty() && !w->thread_done && steady::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (auto& w : state_->workers)
        if (w->index != 0 && !w->thread_done) {
            spdlog::warn("relay worker {} still had work {} ms after closing: stopped", w->index,
                         grace.count());
            w->io.stop();
        }
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
}

unsigned relay_server::workers() const {
    return static_cast<unsigned>(state_->workers.size());
}

void relay_server::close() {
    if (state_) close_everything(*state_);
    if (state_ && state_->cluster) state_->cluster->stop();
}

core::result<std::unique_ptr<relay_server>> relay_server::create(asio::io_context& io,
                                                                 relay_config config) {
    if (auto problems = validate(config); !problems.empty())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}", fmt::join(problems, "\n")));
    auto verifier = token_verifier::load(verifier_options_for(config));
    if (!verifier) return tl::unexpected(verifier.error());
    auto identity = config.host_key_file.empty()
                        ? ssh::server_identity::ephemeral()
                        : ssh::server_identity::load_or_generate(config.host_key_file);
    if (!identity) return tl::unexpected(identity.error());

    // Descriptors: raise the soft limit to the hard one, and size the
    // connection caps left on auto to fit under it (connection_gate.hpp).
    std::uint64_t nofile = 1024;
    if (auto fds = core::raise_nofile_limit())
        nofile = fds->soft;
    else
        spdlog::warn("{}", fds.error().message);
    std::vector<std::string> warnings;
    const auto caps = resolve_connection_caps(config.limits, nofile, warnings);
    for (const auto& w : warnings) spdlog::warn("{}", w);
    // Each attached tunnel and each public connection holds one descriptor.
    spdlog::info(
        "open-file limit {} (soft raised to the hard limit); public connections and "
        "tunnels capped at {} in all",
        nofile, caps.max_connections);
    config.limits.max_connections = caps.max_connections;
    config.limits.max_unauthenticated = caps.max_unauthenticated;

    unsigned workers = resolve_workers(config);
    if (config.tls && workers > 1) {
        // A TLS stream cannot move between io_contexts (docs/relay.md
        // "Threading model"): one worker serves everything.
        if (config.workers > 1)
            spdlog::warn(
                "workers: {}: with tls the relay runs 1 worker (TLS connections cannot be handed "
                "between workers yet); terminate TLS in front of the relay to use more",
                config.workers);
        workers = 1;
    }
    // Declared before the state: on an error below, the state (and the
    // acceptors on these io_contexts) goes first.
    std::vector<std::unique_ptr<asio::io_context>> contexts;
    auto state = std::make_shared<relay_state>(io, std::move(config), std::move(*verifier),
                                               std::move(*identity));
    auto& cfg = state->config;
    state->workers.push_back(std::make_unique<relay_worker>(0, io));
    for (unsigned i = 1; i < workers; ++i) {
        contexts.push_back(std::make_unique<asio::io_context>(1));
        state->workers.push_back(std::make_unique<relay_worker>(i, *contexts.back()));
    }
    if (!cfg.visitors.secret_file.empty()) {
        auto visitor = token_verifier::load(visitor_verifier_options(
            cfg.visitors.secret_file,
            std::chrono::duration_cast<std::chrono::seconds>(cfg.jwt.leeway)));
        if (!visitor)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("visitors.secret_file: {}", visitor.error().message));
        state->visitor_tokens.emplace(std::move(*visitor));
    }
    // Share grants (docs/relay.md "Sharing"): from shares.state_file, or in memory.
    if (auto shares = share_store::open(cfg.shares); shares)
        state->shares = std::move(*shares);
    else
        return tl::unexpected(shares.error());
    // Revoked token IDs (docs/relay.md "Revoking a token"): from
    // revocation.state_file, or in memory; a revocation closes the tunnels
    // using the token (token_revocation.hpp).
    if (auto revoked = open_local_revocation_list(cfg.revocation.state_file); revoked)
        state->revocations = std::move(*revoked);
    else
        return tl::unexpected(revoked.error());
    if (!cfg.queue.state_file.empty()) {
        auto deferred = deferred_store::open(cfg.queue.state_file);
        if (!deferred) return tl::unexpected(deferred.error());
        state->deferred = std::move(*deferred);
    }
    state->set_live(std::make_shared<const live_settings>(
        live_settings{cfg, state->verifier, state->visitor_tokens, 1}));
    if (!cfg.audit_log.empty()) {
        auto log = open_audit_log(cfg);
        if (!log) return tl::unexpected(log.error());
        state->audit_log.emplace(std::move(*log));
    }
    if (cfg.tcp.ports_enabled())  // raw TCP publishing (tcp_service.hpp)
        state->tcp = std::make_shared<tcp_routes>(cfg.tcp.first_port, cfg.tcp.last_port);
    if (cfg.cluster) {
        // The relay-to-relay hop's secret: read now, so a bad file stops the start.
        auto secret = core::read_secret_file(cfg.cluster->secret_file, "cluster.secret_file", 32);
        if (!secret) return tl::unexpected(secret.error());
        state->hop_keys = std::make_unique<hop_signer>(std::move(*secret));
        auto internal = bind_listener(
            io, listen_address{cfg.cluster->internal_host, cfg.cluster->internal_port},
            "cluster internal listener (cluster.internal_listen)");
        if (!internal) return tl::unexpected(internal.error());
        state->internal_acceptor.emplace(std::move(*internal));
        state->cluster = cluster_routes::create(io, *cfg.cluster);
        // Requests waiting here for a leased name go when its tunnel is
        // attached to another relay (the hop takes them), and wait again when
        // it drops there, unless a tunnel here publishes it.
        state->cluster->on_claim(
            [weak = std::weak_ptr<relay_state>(state)](const std::string& tenant,
                                                       const std::string& name, bool attached) {
                auto s = weak.lock();
                if (!s) return;
                if (attached)
                    s->queue->open(tenant, name);
                else if (!s->table()->routes.count({tenant, name}))
                    s->queue->close(tenant, name);
            });
        // Revocations and rate limits shared by the cluster (docs/cluster.md
        // "Revocations", "Rate limits"), over the route table's Redis clients.
        state->revocations =
            cluster_revocations::create(io, std::move(state->revocations),
                                        state->cluster->commands(), state->cluster->subscriber());
        state->shared_rates = make_cluster_rates(state, state->cluster->commands());
    }
    watch_revocations(state);
    if (cfg.usage && state->cluster) {
        // Counted here, kept in the cluster's Redis (docs/cluster.md "Usage analytics").
        state->usage = usage::usage_recorder::create_unstored(*cfg.usage, workers);
        state->cluster_usage = usage::redis_usage::create(state->usage, state->cluster->redis(),
                                                          cfg.cluster->node, state->registry);
    } else if (cfg.usage) {
        auto usage = usage::usage_recorder::open(*cfg.usage, workers);
        if (!usage) return tl::unexpected(usage.error());
        state->usage = std::move(*usage);
    }
    if (cfg.tls) {
        try {
            state->tls_context.emplace(ssl::context::tls_server);
            auto& ctx = *state->tls_context;
            ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                            ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                            ssl::context::no_tlsv1_1);
            ctx.use_certificate_chain_file(cfg.tls->cert_file);
            ctx.use_private_key_file(cfg.tls->key_file, ssl::context::pem);
        } catch (const boost::system::system_error& e) {
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("cannot load the TLS certificate {} / key {}: {}", cfg.tls->cert_file,
                            cfg.tls->key_file, e.code().message()));
        }
        state->tls = true;
    }
    auto pub = bind_listener(io, cfg.listen, "public listener");
    if (!pub) return tl::unexpected(pub.error());
    auto adm = bind_listener(io, cfg.admin_listen, "admin listener");
    if (!adm) return tl::unexpected(adm.error());
    state->public_port = pub->local_endpoint().port();
    state->admin_port = adm->local_endpoint().port();
    // Every worker accepts on its own descriptor of the one listening socket.
    const auto protocol = pub->local_endpoint().protocol();
    for (auto& w : state->workers) {
        if (w->index == 0) continue;
        const int fd = ::dup(pub->native_handle());
        error_code ec;
        if (fd < 0) ec.assign(errno, boost::system::system_category());
        w->acceptor.emplace(w->io);
        if (!ec) w->acceptor->assign(protocol, fd, ec);
        if (ec) {
            if (fd >= 0 && !w->acceptor->is_open()) ::close(fd);
            return core::fail(core::errc::io_error,
                              fmt::format("cannot share the public listener with worker {}: {}",
                                          w->index, ec.message()));
        }
    }
    state->workers[0]->acceptor.emplace(std::move(*pub));
    state->admin_acceptor.emplace(std::move(*adm));
    if (auto a = create_admin(state); !a) return tl::unexpected(a.error());
    return std::unique_ptr<relay_server>(new relay_server(std::move(state), std::move(contexts)));
}

void relay_server::start() {
    const auto routing = routing_of(state_->config);
    if (routes_by_path(routing))
        spdlog::warn(
            "routing: {}: path-routed services (/t/<tenant>/<name>/) of every tenant share one "
            "browser origin, so one tenant's pages can read another's cookies and call its API "
            "with the visitor's credentials (Service-Worker-Allowed is dropped from their "
            "responses). For tenants that do not trust each other set domain (a dedicated "
            "registrable domain, or one on the Public Suffix List) and routing: host",
            to_string(routing));
    for (auto& w : state_->workers)
        core::spawn(w->io, accept_public(state_, w->index), "relay public accept loop");
    start_admin(state_);
    if (state_->internal_acceptor)
        core::spawn(state_->io, accept_internal(state_), "relay cluster hop accept loop");
    if (state_->usage) state_->usage->start();
    if (state_->cluster_usage) state_->cluster_usage->start();
    if (state_->cluster) state_->cluster->start();
    if (state_->deferred)
        core::spawn(state_->io, replay_deferred(state_), "relay deferred requests");
    for (auto& w : state_->workers) {
        if (w->index == 0) continue;
        w->work.emplace(w->io.get_executor());
        threads_.emplace_back([wk = w.get()] {
            const std::string name = fmt::format("relay-worker-{}", wk->index);
            ::pthread_setname_np(::pthread_self(), name.c_str());
            try {
                wk->io.run();
            } catch (const std::exception& e) {
                spdlog::error("relay worker {} stopped: {}", wk->index, e.what());
            }
            wk->thread_done = true;
        });
    }
    if (state_->workers.size() > 1)
        spdlog::info("relay: {} worker threads", state_->workers.size());
}

void relay_server::shutdown(std::function<void()> done) {
    asio::dispatch(state_->io, [st = state_, sd = shutdown_, done = std::move(done)]() mutable {
        if (sd->finished) {
            if (done) done();
            return;
        }
        sd->done.push_back(std::move(done));
        if (sd->started) return;
        sd->started = true;
        core::spawn(st->io, drain_and_close(st, sd), "relay shutdown");
    });
}

std::uint16_t relay_server::public_port() const {
    return state_->public_port;
}
std::uint16_t relay_server::admin_port() const {
    return state_->admin_port;
}
const std::string& relay_server::host_key_fingerprint() const {
    return state_->identity.fingerprint();
}
const std::string& relay_server::jwt_key_fingerprint() const {
    return state_->verifier.key_fingerprint();
}
core::result<std::vector<config_change>> relay_server::reload(
    const relay_config& running, const core::result<relay_config>& next) {
    auto outcome = next ? reload_config(*state_, running, *next)
                        : core::result<std::vector<config_change>>(tl::unexpected(core::error{
                              next.error().code,
                              fmt::format("not reloaded: {}\nthe running configuration stays in "
                                          "force",
                                          next.error().message)}));
    if (!outcome) {
        spdlog::error("config reload refused: {}", outcome.error().message);
        (void)state_->audit(
            "config_reload",
            {{"outcome", "refused"}, {"reason", core::log_text(outcome.error().message, 1024)}});
        return outcome;
    }
    std::vector<std::string> keys;
    for (const auto& c : *outcome) keys.push_back(c.key);
    if (keys.empty())
        spdlog::warn("config reloaded (version {}): no setting changed; key files re-read",
                     state_->live()->version);
    else
        spdlog::warn("config reloaded (version {}):\n{}", state_->live()->version,
                     describe(*outcome));
    (void)state_->audit(
        "config_reload",
        {{"outcome", "applied"},
         {"version", std::to_string(state_->live()->version)},
         {"changed", core::log_text(fmt::format("{}", fmt::join(keys, ",")), 1024)}});
    return outcome;
}
bool relay_server::tls() const {
    return state_->tls;
}

}  // namespace tunnel::relay
