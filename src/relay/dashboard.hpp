// The relay's web dashboard (docs/relay.md "Dashboard"): /dashboard/ on the
// admin listener, behind the admin token (HTTP Basic from a browser, or
// Bearer), as files compiled into the binary (dashboard_assets.hpp), fed by
// Server-Sent Events from /dashboard/events.
//
// The feed builds one snapshot of what the relay measures (tunnels per
// tenant with their names, access mode, client IP and uptime; request rate,
// latency and time-to-first-byte percentiles; bytes; limits hit; breaker
// states; recent audit events) and publishes it to every subscriber: each
// second while someone watches, and within 200 ms of an audit event (attach,
// detach, publish, denial...). At most max_subscribers watch at once (503
// beyond); one that falls max_queued_bytes behind is dropped.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/asio.hpp"
#include "observe/admin_http.hpp"
#include "observe/event_stream.hpp"

namespace tunnel::relay {

class relay_state;

struct dashboard_options {
    std::size_t max_subscribers = 8;
    std::size_t max_queued_bytes = 1024 * 1024;
    std::chrono::milliseconds interval{1000};    // snapshots while someone watches
    std::chrono::milliseconds min_spacing{200};  // between snapshots an event brought forward
    std::size_t recent_audit = 30;               // audit events kept for the page
    std::size_t max_tunnels = 500;               // tunnels listed in one snapshot
    std::chrono::seconds rate_window{10};        // the request rate's window
};

class dashboard_feed : public std::enable_shared_from_this<dashboard_feed> {
  public:
    dashboard_feed(asio::any_io_executor executor, dashboard_options options);

    // Runs the publisher on `executor` (worker 0's: the admin listener's).
    void start(std::weak_ptr<relay_state> state);
    // Stops the publisher and closes every subscriber. Any thread.
    void close();

    // An audit record (relay_state::audit, any thread): kept for the page
    // and brings the next snapshot forward.
    void note_audit(const std::string& event, const nlohmann::json& fields);
    // Brings the next snapshot forward (coalesced). Any thread.
    void nudge();

    [[nodiscard]] const std::shared_ptr<observe::event_stream>& events() const noexcept {
        return events_;
    }
    [[nodiscard]] nlohmann::json recent_audit() const;
    // Requests and bytes per second over the rate window (from the samples
    // the publisher takes each interval); null before two samples.
    [[nodiscard]] nlohmann::json rate() const;
    [[nodiscard]] const dashboard_options& options() const noexcept { return options_; }

  private:
    asio::awaitable<void> run(std::weak_ptr<relay_state> state);
    void sample(relay_state& st);

    struct sample_point {
        std::chrono::steady_clock::time_point at;
        double requests = 0;
        double bytes = 0;
    };

    asio::any_io_executor executor_;
    dashboard_options options_;
    std::shared_ptr<observe::event_stream> events_;
    asio::steady_timer timer_;
    std::atomic<bool> nudged_{false};
    std::atomic<bool> closed_{false};
    mutable std::mutex mutex_;  // audit_ and samples_
    std::deque<nlohmann::json> audit_;
    std::deque<sample_point> samples_;
};

// Everything the page shows, from the relay's own counters (the families
// /metrics exposes) and its route table. Any thread.
[[nodiscard]] nlohmann::json dashboard_snapshot(relay_state& st);

// /dashboard, /dashboard/, its files and /dashboard/events (browser
// endpoints: the admin token as Bearer or as the Basic password).
[[nodiscard]] std::vector<observe::admin_endpoint> dashboard_endpoints(
    const std::shared_ptr<relay_state>& state);

// The Content-Security-Policy of every dashboard answer: files from the
// listener itself only, no inline script or style, no framing.
[[nodiscard]] std::string_view dashboard_csp() noexcept;

}  // namespace tunnel::relay
