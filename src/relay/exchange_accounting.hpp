// What a proxied request counts while it runs (proxy_exchange.cpp): the
// request metrics when it ends, the relay's in-flight count (a draining
// shutdown waits for it) and the tunnel's stream count (its max_streams).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "relay/public_connection.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

// Records a public request in the metrics when it ends, however it ends,
// and its spans when it is traced (request_trace.hpp).
struct request_record {
    std::shared_ptr<relay_state> relay;
    std::shared_ptr<public_conn> conn;
    std::chrono::steady_clock::time_point start;
    std::string tenant = "none";
    std::string route = "none";
    // Bytes of the exchange (usage analytics): to the origin, back to the caller.
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::unique_ptr<request_trace> trace;  // null: tracing is off
    ~request_record();
};

// Decrements the in-flight counts when a proxied request ends, and tells a
// draining shutdown when the last one did. The tunnel's stream count may end
// earlier (end_stream): when the channel goes back to the keep-alive pool
// before the caller has the last bytes, the caller's next request must not
// find the tunnel still at its stream limit.
struct flight_guard {
    std::shared_ptr<relay_state> relay;
    std::shared_ptr<tunnel_entry> tunnel;
    bool stream_ended = false;

    void end_stream();
    flight_guard(std::shared_ptr<relay_state> r, std::shared_ptr<tunnel_entry> t)
        : relay(std::move(r)), tunnel(std::move(t)) {}
    flight_guard(const flight_guard&) = delete;
    flight_guard& operator=(const flight_guard&) = delete;
    ~flight_guard();
};

}  // namespace tunnel::relay
