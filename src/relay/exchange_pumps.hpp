// The two directions of one proxied HTTP exchange (proxy_exchange.cpp runs
// them): the caller's request body to the tunnel's channel (pump_request),
// and the origin's response back to the caller (pump_response), with the
// state they share and the end of an exchange that got no answer. Internal
// to relay/.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/wake_signal.hpp"
#include "relay/exchange_accounting.hpp"
#include "relay/exchange_outcome.hpp"
#include "relay/http_tracker.hpp"
#include "relay/public_connection.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

struct exchange_state {
    exchange_state(const asio::any_io_executor& ex, http_tracker req, pool::circuit_breaker& b,
                   bool probe)
        : request(std::move(req)), ticket(b, probe), done_signal(ex) {}
    std::chrono::steady_clock::time_point start =
        std::chrono::steady_clock::now();  // the head has been read
    http_tracker request;
    breaker_ticket ticket;
    bool upgrade = false;  // the request asks for a protocol switch
    bool reused = false;   // the channel carried an earlier request (keep-alive)
    // A reused channel that the origin turns out to have closed, before any
    // answer, may be swapped for a new one and the request sent again: only
    // for an idempotent request without a body (pump_response says `retry`).
    bool may_retry = false;
    bool body_done = false;  // the whole request reached the channel
    std::chrono::steady_clock::time_point body_done_at{};
    bool pump_done = false;      // pump_request returned (or was never needed)
    bool abort = false;          // pump_request must stop
    bool response_over = false;  // pump_response returned: no 101 is coming
    // Why pump_request ended the exchange, if it did (exchange_outcome.hpp).
    std::optional<exchange_end> body_end;
    std::string body_detail;
    std::uint64_t bytes_up = 0;
    core::wake_signal done_signal;

    void finish_body() {
        body_done = true;
        body_done_at = std::chrono::steady_clock::now();
    }
    // Path-routed requests: every tenant shares the relay's browser origin,
    // so Service-Worker-Allowed never reaches the caller (docs/relay.md).
    bool drop_service_worker_allowed = false;
    // pump_request is not running (the whole request went with the head):
    // a clean answer puts the channel back in the pool (under pool_name)
    // before its last bytes are written to the caller, so that the caller's
    // next request, which may reach this worker from another one before the
    // write's completion runs here, finds it there.
    bool release_early = false;
    std::string pool_name;
    flight_guard* guard = nullptr;   // proxy_exchange's, which outlives pump_response
    request_trace* trace = nullptr;  // proxy_exchange's record's (null: not traced)

    // The channel may go back to the pool before the caller has the whole
    // answer: nobody writes to it any more (the whole body reached it and
    // pump_request returned, or never ran) and no protocol switch is coming.
    [[nodiscard]] bool channel_free() const noexcept {
        return !upgrade && body_done && (release_early || pump_done);
    }
};

struct response_outcome {
    bool complete = false;           // the whole response reached the caller
    bool keep_alive = false;         // and the caller was told the connection stays open
    bool origin_keep_alive = false;  // the origin's final head kept its connection open
    bool retry = false;              // a stale kept-alive channel: nothing was answered (may_retry)
    int status = 0;
    std::uint64_t bytes = 0;
};

// Caller -> origin. First the request body, raw, as the tracker delimits
// it; a body the tracker refuses, a caller that stalls or hangs up, end the
// exchange here (body_end) and close the channel. Then, for a request that
// asked to switch protocols, it waits: after the origin's 101 every caller
// byte goes through raw; after any other answer it stops, and the bytes
// that follow are the next request, parsed like the first.
asio::awaitable<void> pump_request(std::shared_ptr<relay_state> relay,
                                   std::shared_ptr<public_conn> conn,
                                   std::shared_ptr<exchange_state> ex);

// The end of an exchange without a response head: the breaker's verdict,
// the metrics, and the answer (none when the caller is gone).
asio::awaitable<void> end_without_answer(relay_state& relay, public_conn& conn, exchange_state& ex,
                                         exchange_end end, std::string_view route_label,
                                         std::string_view detail, response_outcome& out);

// Origin -> caller. Each response head is rebuilt for the caller
// (response_for_caller: hop-by-hop fields dropped); the body bytes are
// forwarded raw as they arrive, watching where the response ends. What the
// channel holds is written in one go (a head with the body bytes behind
// it), and always before the next wait: a streamed chunk reaches the caller
// before the next is read. After a 101 to a request that asked for it,
// everything is raw both ways.
asio::awaitable<response_outcome> pump_response(std::shared_ptr<relay_state> relay,
                                                std::shared_ptr<public_conn> conn,
                                                std::shared_ptr<exchange_state> ex,
                                                std::shared_ptr<tunnel_entry> t,
                                                const http_head& request, std::string route_label);

}  // namespace tunnel::relay
