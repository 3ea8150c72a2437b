// bench/relay_load's HTTP load: an open-loop client that sends `rate`
// requests per second for `duration`, spread round-robin over the names
// n0..n(names-1) of one tenant (path-routed: GET /t/TENANT/nI/), over up to
// `connections` keep-alive connections to the relay. A request's latency runs
// from the moment it was due, not from when a connection took it, so a
// stalled relay shows as latency rather than as a slower schedule. Every
// answer must be a 200 whose body names the tunnel it was meant to cross
// (load_origin.hpp); anything else is an error, counted by kind.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tunnel::bench {

struct load_options {
    std::uint16_t port = 0;  // the relay's public listener on 127.0.0.1
    std::string tenant;
    int names = 1;
    double rate = 1000;  // requests per second
    std::chrono::milliseconds duration{std::chrono::seconds(60)};
    int connections = 64;
    std::chrono::milliseconds timeout{std::chrono::seconds(10)};  // per request
};

struct load_result {
    long long sent = 0, ok = 0;
    long long status_errors = 0;  // an answer other than 200
    long long wrong_tunnel = 0;   // a 200 from another tunnel's origin address
    long long socket_errors = 0;  // connect, write, read, malformed answers
    long long timeouts = 0;
    std::string first_error;
    double seconds = 0;  // from the first due request to the last answer
    double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
    [[nodiscard]] long long errors() const {
        return status_errors + wrong_tunnel + socket_errors + timeouts;
    }
};

// Runs the load on the calling thread and returns when every request has
// been answered or has failed.
[[nodiscard]] load_result run_load(const load_options& o);

}  // namespace tunnel::bench
