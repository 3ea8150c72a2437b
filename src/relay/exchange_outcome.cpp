#include "relay/exchange_outcome.hpp"

#include <fmt/format.h>

namespace tunnel::relay {

std::string_view to_string(exchange_end end) noexcept {
    switch (end) {
        case exchange_end::answered:
            return "answered";
        case exchange_end::caller_bad_body:
            return "caller_bad_body";
        case exchange_end::caller_body_too_large:
            return "caller_body_too_large";
        case exchange_end::caller_stalled:
            return "caller_stalled";
        case exchange_end::caller_gone:
            return "caller_gone";
        case exchange_end::origin_unreachable:
            return "origin_unreachable";
        case exchange_end::origin_closed:
            return "origin_closed";
        case exchange_end::origin_timeout:
            return "origin_timeout";
        case exchange_end::origin_bad_response:
            return "origin_bad_response";
    }
    return "unknown";
}

bool callers_fault(exchange_end end) noexcept {
    switch (end) {
        case exchange_end::caller_bad_body:
        case exchange_end::caller_body_too_large:
        case exchange_end::caller_stalled:
        case exchange_end::caller_gone:
            return true;
        default:
            return false;
    }
}

breaker_verdict verdict_of(exchange_end end, bool request_sent) noexcept {
    switch (end) {
        case exchange_end::answered:
            return breaker_verdict::success;
        case exchange_end::origin_unreachable:
            return breaker_verdict::failure;
        case exchange_end::origin_closed:
        case exchange_end::origin_timeout:
        case exchange_end::origin_bad_response:
            return request_sent ? breaker_verdict::failure : breaker_verdict::none;
        case exchange_end::caller_bad_body:
        case exchange_end::caller_body_too_large:
        case exchange_end::caller_stalled:
        case exchange_end::caller_gone:
            return breaker_verdict::none;
    }
    return breaker_verdict::none;
}

exchange_end end_for_body_problem(http_problem problem) noexcept {
    return problem == http_problem::body_too_large ? exchange_end::caller_body_too_large
                                                   : exchange_end::caller_bad_body;
}

exchange_end end_without_head(bool timed_out, const request_progress& p) noexcept {
    if (p.body_end) return *p.body_end;
    if (p.caller_gone) return exchange_end::caller_gone;
    if (timed_out) return p.sent ? exchange_end::origin_timeout : exchange_end::caller_stalled;
    return exchange_end::origin_closed;
}

exchange_answer answer_for(exchange_end end, std::string_view route_label,
                           std::chrono::milliseconds idle_timeout, std::string_view detail) {
    switch (end) {
        case exchange_end::answered:
        case exchange_end::caller_gone:
            return {};
        case exchange_end::caller_bad_body:
            return {400, "bad_request", fmt::format("malformed request body: {}", detail)};
        case exchange_end::caller_body_too_large:
            return {413, "body_too_large",
                    fmt::format("the request body is larger than {}", detail)};
        case exchange_end::caller_stalled:
            // `detail`: why, when it was not the idle timeout (limits.min_body_rate).
            if (!detail.empty()) return {408, "body_timeout", std::string(detail)};
            return {408, "body_timeout",
                    fmt::format("the request body stopped arriving for {} ms: send it in one go",
                                idle_timeout.count())};
        case exchange_end::origin_unreachable:
            return {502, "origin_unreachable",
                    fmt::format("the tunnel client could not reach the service behind {}: {}",
                                route_label, detail)};
        case exchange_end::origin_closed:
            return {502, "origin_closed",
                    fmt::format("the tunnel client closed the connection to {} without an answer: "
                                "is the local service it exposes running?",
                                route_label)};
        case exchange_end::origin_timeout:
            return {504, "origin_timeout",
                    fmt::format("the service behind {} sent nothing for {} ms", route_label,
                                idle_timeout.count())};
        case exchange_end::origin_bad_response:
            return {502, "bad_origin_response",
                    fmt::format("the service behind {} sent a malformed HTTP response: {}",
                                route_label, detail)};
    }
    return {};
}

breaker_ticket::~breaker_ticket() {
    if (probe_ && !ended_) breaker_->release_probe();
}

breaker_verdict breaker_ticket::settle(exchange_end end, bool request_sent) {
    if (ended_) return breaker_verdict::none;
    ended_ = true;
    const auto verdict = verdict_of(end, request_sent);
    if (verdict == breaker_verdict::success) breaker_->on_success();
    if (verdict == breaker_verdict::failure) breaker_->on_failure();
    reported_ = verdict != breaker_verdict::none;
    if (probe_ && !reported_) breaker_->release_probe();
    return verdict;
}

}  // namespace tunnel::relay
