// `tunnel ui` without the terminal: two connections to the manager's control
// socket (one for requests, one following `events`), an `ls` every second
// (and soon after each event), the keys' requests and their replies, and
// reconnecting every second when the manager goes away. It never waits on
// the manager: the caller polls poll_entries() (with the terminal's input)
// for at most timeout_ms(), then calls on_ready() and tick().
#pragma once

#include <poll.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "ui/control_stream.hpp"
#include "ui/dashboard_layout.hpp"
#include "ui/dashboard_model.hpp"

namespace tunnel::ui {

enum class key { none, up, down, switch_transport, restart, log, back, quit };

struct dashboard_timing {
    std::chrono::milliseconds refresh{1000};        // between `ls` requests
    std::chrono::milliseconds after_event{100};     // an `ls` this soon after an event
    std::chrono::milliseconds reply_timeout{5000};  // an `ls` unanswered this long: reconnect
    std::chrono::milliseconds reconnect{1000};
    std::chrono::milliseconds status_shown{5000};  // a key's result in the footer
};

class dashboard {
  public:
    // Connects to the manager at `path`; fails when none answers there.
    [[nodiscard]] static core::result<dashboard> connect(std::string path,
                                                         dashboard_timing timing = {});

    // What to poll (entries of closed connections have fd -1), and for how long.
    [[nodiscard]] std::vector<pollfd> poll_entries() const;
    [[nodiscard]] int timeout_ms(clock::time_point now) const;
    // After poll() on poll_entries(): reads replies and events.
    void on_ready(const std::vector<pollfd>& ready, clock::time_point now);
    // Sends what is due, reconnects, expires the footer's message.
    void tick(clock::time_point now);
    // False: quit.
    bool on_key(key k, clock::time_point now);

    [[nodiscard]] std::vector<screen_row> frame(int columns, int rows) const {
        return layout(model_, view_, columns, rows);
    }
    // True once after anything on screen changed.
    bool take_dirty() { return std::exchange(dirty_, false); }
    [[nodiscard]] view_state& view() noexcept { return view_; }
    [[nodiscard]] const dashboard_model& model() const noexcept { return model_; }
    [[nodiscard]] bool connected() const noexcept { return view_.connected; }

  private:
    enum class request_kind { ls, restart, switch_transport };
    struct pending {
        request_kind kind;
        std::string link;
    };
    dashboard(std::string path, dashboard_timing timing, control_stream requests,
              control_stream events);
    bool send(request_kind kind, nlohmann::json request, std::string link, clock::time_point now);
    void on_reply(const std::string& line, clock::time_point now);
    void on_event(const std::string& line, clock::time_point now);
    void disconnect(const std::string& why, clock::time_point now);
    void show(std::string message, bool error, clock::time_point now);

    std::string path_;
    dashboard_timing timing_;
    std::optional<control_stream> requests_;
    std::optional<control_stream> events_;
    dashboard_model model_;
    view_state view_;
    std::map<std::int64_t, pending> pending_;
    std::int64_t next_id_ = 1;
    std::optional<clock::time_point> ls_sent_;
    clock::time_point next_ls_{};
    clock::time_point next_reconnect_{};
    std::optional<clock::time_point> status_until_;
    bool dirty_ = true;
};

}  // namespace tunnel::ui
