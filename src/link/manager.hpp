// `tunnel up`: every link of a links.yaml in one process, the events they
// emit (kept for late readers, fanned out to subscribers), and the control
// requests (JSON objects, see control_request.hpp) answered against them.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/asio.hpp"
#include "link/link.hpp"
#include "link/link_config.hpp"

namespace tunnel::link {

class manager : public std::enable_shared_from_this<manager> {
  public:
    // Creates every link (binding its listeners); `transports[i]` belongs to file.links[i].
    [[nodiscard]] static core::result<std::shared_ptr<manager>> create(
        asio::any_io_executor executor, const links_file& file,
        std::vector<std::vector<resolved_transport>> transports);

    void start();
    // Stops every link and wakes wait_stopped(); idempotent.
    void stop();
    [[nodiscard]] bool stopped() const noexcept { return stopped_; }
    asio::awaitable<void> wait_stopped();

    // Answers one validated request ({"cmd": ...}); `events` and `down` are
    // the control server's (it streams, or stops after replying).
    [[nodiscard]] nlohmann::json handle(const nlohmann::json& request);

    // Event fan-out: `fn` gets every event (as one JSON line, no newline)
    // until unsubscribe().
    std::uint64_t subscribe(std::function<void(const std::string&)> fn);
    void unsubscribe(std::uint64_t id);
    void publish(nlohmann::json event);
    // The last events (at most 256), oldest first.
    [[nodiscard]] const std::deque<std::string>& recent_events() const noexcept { return recent_; }

    [[nodiscard]] std::shared_ptr<link> find(std::string_view name) const;
    [[nodiscard]] const std::vector<std::shared_ptr<link>>& links() const noexcept {
        return links_;
    }

    explicit manager(asio::any_io_executor executor);

  private:
    asio::any_io_executor executor_;
    std::vector<std::shared_ptr<link>> links_;
    std::map<std::uint64_t, std::function<void(const std::string&)>> subscribers_;
    std::uint64_t next_subscriber_ = 1;
    std::uint64_t seq_ = 0;
    std::deque<std::string> recent_;
    asio::steady_timer stopped_timer_;
    bool stopped_ = false;
};

}  // namespace tunnel::link
