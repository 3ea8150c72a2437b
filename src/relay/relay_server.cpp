#include "relay/relay_server.hpp"

#include <chrono>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/beast.hpp"
#include "core/spawn.hpp"
#include "relay/admin_server.hpp"
#include "relay/public_connection.hpp"
#include "relay/relay_state.hpp"

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

}  // namespace

// ---------------------------------------------------------------- relay_server

relay_server::relay_server(std::shared_ptr<relay_state> state) : state_(std::move(state)) {}

relay_server::~relay_server() {
    if (!state_) return;
    error_code ignored;
    if (state_->public_acceptor) state_->public_acceptor->close(ignored);
    if (state_->admin_acceptor) state_->admin_acceptor->close(ignored);
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

    auto state = std::make_shared<relay_state>(io, std::move(config), std::move(*verifier),
                                               std::move(*identity));
    auto& cfg = state->config;
    if (!cfg.audit_log.empty()) {
        auto log = observe::audit_log::open(cfg.audit_log);
        if (!log) return tl::unexpected(log.error());
        state->audit_log.emplace(std::move(*log));
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
    state->public_acceptor.emplace(std::move(*pub));
    state->admin_acceptor.emplace(std::move(*adm));
    return std::unique_ptr<relay_server>(new relay_server(std::move(state)));
}

void relay_server::start() {
    core::spawn(state_->io, accept_public(state_), "relay public accept loop");
    start_admin(state_);
}

void relay_server::shutdown(std::function<void()> done) {
    auto st = state_;
    if (st->stopping) return;
    st->stopping = true;
    error_code ignored;
    st->public_acceptor->close(ignored);
    spdlog::info("shutting down: {} requests in flight, {} tunnels", st->in_flight,
                 st->tunnels.size());
    st->audit("shutdown", {{"in_flight", std::to_string(st->in_flight)}});

    // Runs once: disconnect every tunnel, give the disconnects up to a
    // second to reach the clients, then `done`.
    auto finished = std::make_shared<bool>(false);
    auto finish = std::make_shared<std::function<void()>>([st, done, finished]() {
        if (*finished) return;
        *finished = true;
        st->on_drained = nullptr;
        auto tunnels = st->tunnels;
        for (auto& [id, t] : tunnels)
            if (t->close) t->close("relay shutting down");
        auto timer = std::make_shared<asio::steady_timer>(st->io);
        const auto deadline = steady::now() + std::chrono::seconds(1);
        auto poll = std::make_shared<std::function<void()>>();
        std::weak_ptr<std::function<void()>> weak_poll = poll;
        *poll = [st, timer, deadline, done, weak_poll]() {
            if (st->tunnels.empty() || steady::now() >= deadline) {
                error_code e;
                if (st->admin_acceptor) st->admin_acceptor->close(e);
                done();
                return;
            }
            timer->expires_after(std::chrono::milliseconds(20));
            timer->async_wait([keep = weak_poll.lock()](error_code) { (*keep)(); });
        };
        (*poll)();
    });
    if (st->in_flight == 0) {
        asio::post(st->io, [finish] { (*finish)(); });
        return;
    }
    st->on_drained = [finish] { (*finish)(); };
    auto drain = std::make_shared<asio::steady_timer>(st->io);
    drain->expires_after(st->config.shutdown.drain_timeout);
    drain->async_wait([drain, finish, st](error_code e) {
        if (e) return;
        if (st->in_flight > 0)
            spdlog::warn("drain deadline passed with {} requests in flight", st->in_flight);
        (*finish)();
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
bool relay_server::tls() const {
    return state_->tls;
}

}  // namespace tunnel::relay
