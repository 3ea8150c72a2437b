// Who may call a name, at request time (visitor_gate.hpp). Split from
// proxy_exchange.cpp.
#include "relay/visitor_gate.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/wake_signal.hpp"
#include "relay/admission.hpp"
#include "relay/connection_gate.hpp"
#include "relay/relay_state.hpp"
#include "relay/share_api.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;

// Printable ASCII only, at most 200 bytes: untrusted text bound for logs.
std::string log_safe(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, 200)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    return out;
}

// Logs, audits and counts a visitor decision that is not `allow` (the
// login/logout exchanges are audited, not counted as refusals).
void answer_visitor(relay_state& relay, public_conn& conn, const public_route& route,
                    const visitor_decision& d) {
    conn.last_status = d.status;
    const std::string peer = log_safe(conn.peer_ip);
    if (d.verdict == visitor_verdict::login || d.verdict == visitor_verdict::logout) {
        relay.audit(d.verdict == visitor_verdict::login ? "visitor_login" : "visitor_logout",
                    {{"tenant", route.tenant},
                     {"name", route.name},
                     {"principal", log_safe(d.principal)},
                     {"peer", peer}});
        return;
    }
    relay.metrics.visitor_refusals.with({route.tenant, d.code}).inc();
    spdlog::info("{}/{}: visitor from {} refused ({}): {}", route.tenant, route.name, peer, d.code,
                 log_safe(d.message));
    relay.audit("visitor_refused", {{"tenant", route.tenant},
                                    {"name", route.name},
                                    {"status", std::to_string(d.status)},
                                    {"reason", d.code},
                                    {"message", log_safe(d.message)},
                                    {"peer", peer}});
}

// The per-source key visitor failures count by (connection_gate's source_key).
std::string visitor_source(const std::string& peer_ip) {
    error_code ec;
    const auto address = asio::ip::make_address(peer_ip, ec);
    return ec ? peer_ip : source_key(address);
}

// Codes of a credential that was presented and is wrong: what a guesser
// produces. A missing credential (a browser's first request) is not one.
bool is_wrong_credential(std::string_view code) {
    return code == "bad_credential" || code == "invalid_token" || code == "expired" ||
           code == "token_revoked" || code == "wrong_service" || code == "wrong_token_type" ||
           code == "insufficient_scope";
}

// check_visitor for one request. Basic mode may hash a password (libcrypt,
// 100+ ms): that runs on relay.hash_pool with copies of everything it reads,
// so the relay's thread keeps serving meanwhile.
asio::awaitable<visitor_decision> decide_visitor(std::shared_ptr<relay_state> relay,
                                                 public_conn& conn, const public_route& route,
                                                 const http_head& head,
                                                 const access_policy& access) {
    const bool tls = conn.secure();
    const auto live = relay->live();
    if (access.mode != access_mode::basic) {
        co_return check_visitor(
            visitor_request{route.tenant, route.name, head.method, route.target, head.fields,
                            conn.peer_ip, tls, route.by_host},
            access,
            visitor_keys{live->visitor_tokens ? &*live->visitor_tokens : nullptr, &relay->passwords,
                         relay->revocations.get()},
            std::chrono::system_clock::now());
    }
    // A flood of made-up passwords must not queue minutes of hashing in front
    // of every basic-mode name: past the cap, 503 and come back in a second.
    if (relay->password_checks >= live->config.limits.max_password_checks) {
        visitor_decision busy;
        busy.verdict = visitor_verdict::unavailable;
        busy.status = 503;
        busy.code = "busy";
        busy.message = "too many password checks in progress; retry in a second";
        busy.headers.push_back({"Retry-After", "1"});
        co_return busy;
    }
    struct pending {
        explicit pending(const asio::any_io_executor& ex) : signal(ex) {}
        visitor_decision decision;
        bool done = false;
        core::wake_signal signal;
    };
    const auto executor = co_await asio::this_coro::executor;
    auto job = std::make_shared<pending>(executor);
    ++relay->password_checks;
    struct check_slot {
        relay_state& relay;
        ~check_slot() { --relay.password_checks; }
    } slot{*relay};
    asio::post(relay->hash_pool,
               [job, executor, access, tenant = route.tenant, name = route.name,
                method = head.method, target = route.target, fields = head.fields,
                peer = conn.peer_ip, tls, by_host = route.by_host, passwords = &relay->passwords] {
                   auto d = check_visitor(
                       visitor_request{tenant, name, method, target, fields, peer, tls, by_host},
                       access, visitor_keys{nullptr, passwords}, std::chrono::system_clock::now());
                   asio::post(executor, [job, d = std::move(d)]() mutable {
                       job->decision = std::move(d);
                       job->done = true;
                       job->signal.notify();
                   });
               });
    while (!job->done) (void)co_await job->signal.wait(steady::now() + std::chrono::seconds(30));
    co_return std::move(job->decision);
}

}  // namespace

asio::awaitable<visitor_decision> gate_visitor(std::shared_ptr<relay_state> relay,
                                               public_conn& conn, const public_route& route,
                                               const http_head& head, const access_policy& access) {
    // A source that keeps presenting wrong credentials (password guessing) is
    // answered 429 unchecked until its window ends: no hash, no audit record.
    const bool checks_credentials =
        access.mode == access_mode::basic || access.mode == access_mode::token;
    // (Only then: parsing the address is 2% of a request's relay instructions.)
    const std::string source = checks_credentials ? visitor_source(conn.peer_ip) : std::string();
    if (checks_credentials) {
        if (const auto v = relay->visitor_failures.check(source); v.throttled) {
            relay->metrics.visitor_refusals.with({route.tenant, "throttled"}).inc();
            limit_hit(*relay, "visitor_failures");
            conn.last_status = 429;
            co_await send(conn, error_response(429, "too_many_failures",
                                               fmt::format("too many wrong credentials from this "
                                                           "address; retry after {} s",
                                                           v.retry_after_seconds()),
                                               v.retry_after_seconds()));
            visitor_decision throttled;
            throttled.verdict = visitor_verdict::forbidden;
            throttled.status = 429;
            throttled.code = "too_many_failures";
            co_return throttled;
        }
    }
    visitor_decision visitor = co_await decide_visitor(relay, conn, route, head, access);
    // Refused by the access mode: a share grant may still let the caller in.
    const bool shareable = visitor.verdict == visitor_verdict::unauthorized ||
                           visitor.verdict == visitor_verdict::forbidden ||
                           visitor.verdict == visitor_verdict::unavailable;
    if (shareable)
        if (auto shared = admit_by_share(*relay, conn, route, head)) co_return std::move(*shared);
    if (!visitor.allowed()) {
        answer_visitor(*relay, conn, route, visitor);
        if (checks_credentials && is_wrong_credential(visitor.code) &&
            relay->visitor_failures.record_refusal(source))
            spdlog::warn(
                "visitors from {}: {} wrong credentials within {} s; further requests to token and "
                "basic names are answered 429 unchecked until the window ends",
                source, relay->config.limits.visitor_failures_per_ip,
                std::chrono::duration_cast<std::chrono::seconds>(
                    relay->config.limits.visitor_failure_window)
                    .count());
        co_await send(conn, render_visitor_response(visitor));
    }
    co_return visitor;
}

}  // namespace tunnel::relay
