// How one proxied request ended, whose fault that was, and what it tells the
// tunnel's circuit breaker (ARCHITECTURE §5; issue 10, finding 1). Pure
// decisions and one small RAII type, unit-tested with a manual clock in
// tests/unit/relay/exchange_outcome_test.cpp.
//
// The breaker hears only about the origin. It fails on a refused channel
// open, and, once the whole request was handed to the origin, on an origin
// that ends the connection, sends garbage, or stays silent for
// idle_timeout before its response head. It succeeds on a response head.
// Anything the caller does (a malformed or oversized body, a stall, a
// hang-up) gives no verdict at all, so no caller can open a tenant's
// breaker, and a half-open probe that ends on the caller's side gives its
// probe slot back instead of failing it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "pool/circuit_breaker.hpp"
#include "relay/http_tracker.hpp"

namespace tunnel::relay {

enum class exchange_end {
    answered,               // a response head came from the origin
    caller_bad_body,        // 400 bad_request: the body is malformed (a bad chunk)
    caller_body_too_large,  // 413 body_too_large: the body grew past max_body_bytes
    caller_stalled,         // 408 body_timeout: the caller stopped sending its body
    caller_gone,            // the caller hung up: nothing to answer
    origin_unreachable,     // 502 origin_unreachable: the channel open failed
    origin_closed,          // 502 origin_closed: the origin ended before a response head
    origin_timeout,         // 504 origin_timeout: no response head within idle_timeout
    origin_bad_response,    // 502 bad_origin_response: a malformed response head
};

[[nodiscard]] std::string_view to_string(exchange_end end) noexcept;

// The caller's side ended it (caller_*).
[[nodiscard]] bool callers_fault(exchange_end end) noexcept;

enum class breaker_verdict { none, success, failure };

// What `end` tells the breaker. `request_sent`: the whole request (head and
// body) was handed to the origin. Before that an origin that closes, sends
// garbage or does not answer may only be refusing a body it did not want,
// which a caller can provoke: no verdict.
[[nodiscard]] breaker_verdict verdict_of(exchange_end end, bool request_sent) noexcept;

// The end for a body the request tracker refused (bad_message or
// body_too_large).
[[nodiscard]] exchange_end end_for_body_problem(http_problem problem) noexcept;

// What the relay knows about a request when no response head came.
struct request_progress {
    bool sent = false;         // the whole request reached the channel
    bool caller_gone = false;  // the caller closed its side
    // The body pump ended the exchange first (caller_* ends, or
    // origin_timeout when the origin stopped taking the body).
    std::optional<exchange_end> body_end;
};

// The end of a request whose response head never came: the channel closed
// (`timed_out` false) or the wait for the head ran out. What the body pump
// saw wins (it closes the channel itself), then a caller that hung up; a
// wait that ran out while the body was still coming is the caller's stall.
[[nodiscard]] exchange_end end_without_head(bool timed_out, const request_progress& p) noexcept;

// The HTTP answer for an end without a response head: status 0 (caller_gone,
// answered) means none.
struct exchange_answer {
    int status = 0;
    std::string code;
    std::string message;
};
[[nodiscard]] exchange_answer answer_for(exchange_end end, std::string_view route_label,
                                         std::chrono::milliseconds idle_timeout,
                                         std::string_view detail = {});

// One request's attempt on its tunnel's breaker: settle() reports the first
// end it is given (later ones are ignored). A probe that ends without a
// verdict, or is destroyed before it ended, releases the probe slot
// (circuit_breaker::release_probe).
class breaker_ticket {
  public:
    breaker_ticket(pool::circuit_breaker& breaker, bool probe) noexcept
        : breaker_(&breaker), probe_(probe) {}
    breaker_ticket(const breaker_ticket&) = delete;
    breaker_ticket& operator=(const breaker_ticket&) = delete;
    ~breaker_ticket();

    // Reports `end` unless an earlier call did; returns what was reported
    // (none when nothing was, now or before).
    breaker_verdict settle(exchange_end end, bool request_sent);

    [[nodiscard]] bool probe() const noexcept { return probe_; }
    [[nodiscard]] bool ended() const noexcept { return ended_; }

  private:
    pool::circuit_breaker* breaker_;
    bool probe_;
    bool ended_ = false;     // settle() was called
    bool reported_ = false;  // and reported a verdict
};

}  // namespace tunnel::relay
