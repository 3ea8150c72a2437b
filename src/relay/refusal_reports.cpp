#include "relay/refusal_reports.hpp"

#include <chrono>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "relay/refusal_throttle.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

// Which throttle a summary is from: its log wording and audit event.
struct summary_kind {
    const char* who;      // "tunnel attach from", "visitors from"
    const char* refused;  // what the answered attempts were
    const char* event;    // the audit event
};
constexpr summary_kind attach_kind{"tunnel attach from", "refused", "attach_refusals_throttled"};
constexpr summary_kind visitor_kind{"visitors from", "wrong credentials",
                                    "visitor_failures_throttled"};

void report_summaries(relay_state& relay, const summary_kind& kind,
                      const std::vector<refusal_throttle::summary>& all) {
    for (const auto& s : all) {
        const auto window_s = std::chrono::duration_cast<std::chrono::seconds>(s.window).count();
        spdlog::warn("{} {}: {} {} and {} more answered 429 unchecked within {} s", kind.who,
                     s.source, s.refusals, kind.refused, s.suppressed, window_s);
        relay.audit(kind.event, {{"source", s.source},
                                 {"refused", std::to_string(s.refusals)},
                                 {"throttled", std::to_string(s.suppressed)},
                                 {"window_s", std::to_string(window_s)}});
    }
}

}  // namespace

asio::awaitable<void> report_attach_refusals(std::shared_ptr<relay_state> relay,
                                             std::shared_ptr<asio::steady_timer> timer) {
    for (;;) {
        timer->expires_after(std::chrono::seconds(1));
        boost::system::error_code ec;
        co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (ec || relay->stopping) break;
        report_summaries(*relay, attach_kind, relay->attach_refusals.take_ended());
        report_summaries(*relay, visitor_kind, relay->visitor_failures.take_ended());
    }
    report_summaries(*relay, attach_kind, relay->attach_refusals.take_all());
    report_summaries(*relay, visitor_kind, relay->visitor_failures.take_all());
}

}  // namespace tunnel::relay
