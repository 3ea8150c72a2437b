// What `tunnel ui` knows about the running `tunnel up` (pure, unit-tested):
// the links and their transports from the `ls` replies, throughput from the
// byte counters of two replies, the recent events from the `events` stream,
// the selected link, and the control requests its keys send.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ui/dashboard_format.hpp"

namespace tunnel::ui {

using clock = std::chrono::steady_clock;

struct transport_row {
    std::size_t index = 0;
    std::string name;
    std::string type;
    std::string state;
    bool active = false;
    bool preferred = false;
    std::optional<double> rtt_ms;
    std::optional<double> ewma_ms;
    std::optional<int> score;
    std::optional<prediction> predicted;
    std::vector<double> rtt_samples_ms;
    int failure_streak = 0;
    std::string last_error;
};

struct link_row {
    std::string name;
    std::string state;
    std::string target;  // empty for a relay link
    std::optional<std::size_t> active;
    std::size_t preferred = 0;
    std::optional<double> rtt_ms;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::optional<double> rate_in;  // bytes/s, from the last two replies
    std::optional<double> rate_out;
    std::uint64_t switches = 0;
    std::uint64_t escalations = 0;
    std::string recovery_step;
    std::vector<transport_row> transports;

    // The active transport, if any.
    [[nodiscard]] const transport_row* active_transport() const;
};

struct event_row {
    std::int64_t time_ms = 0;
    std::string link;  // empty for the manager's own events
    std::string type;
    std::string text;  // describe_event()
};

inline constexpr std::size_t max_events = 512;
inline constexpr std::size_t max_links = 1024;

class dashboard_model {
  public:
    // Applies an `ls` reply received at `now`; false (model unchanged) when
    // it is not {"ok": true, "links": [...]}.
    bool apply_ls(const nlohmann::json& reply, clock::time_point now);
    // One line of the `events` stream (an event, or an error object).
    void apply_event(const nlohmann::json& event);
    // Forgets the events (before following a new stream that replays them).
    void clear_events() { events_.clear(); }

    [[nodiscard]] const std::vector<link_row>& links() const noexcept { return links_; }
    [[nodiscard]] const std::deque<event_row>& events() const noexcept { return events_; }
    // The last `n` events of link `name`, oldest first.
    [[nodiscard]] std::vector<event_row> events_of(const std::string& name, std::size_t n) const;

    // The selection follows the link's name across replies.
    [[nodiscard]] const link_row* selected() const;
    [[nodiscard]] std::optional<std::size_t> selected_index() const;
    void select_next();
    void select_previous();
    void select(const std::string& name) { selected_ = name; }

    // {"cmd": "restart", "link": selected}; nullopt without a selection.
    [[nodiscard]] std::optional<nlohmann::json> restart_request() const;
    // {"cmd": "switch", ...} to the next transport after the preferred one
    // (cyclic) that is not unsupported; nullopt when there is none.
    [[nodiscard]] std::optional<nlohmann::json> switch_request() const;

  private:
    struct counters {
        clock::time_point at;
        std::uint64_t in = 0;
        std::uint64_t out = 0;
    };
    std::vector<link_row> links_;
    std::vector<std::pair<std::string, counters>> previous_;
    std::deque<event_row> events_;
    std::string selected_;
};

}  // namespace tunnel::ui
