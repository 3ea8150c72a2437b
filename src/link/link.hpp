// One named link (ARCHITECTURE §6): one SSH session to the target over the
// best healthy transport, carrying the link's forwards. Each transport is a
// lane with its own session (all connected at once with `start: parallel`,
// the others only while nothing better is up with `on_demand`), probed every
// keepalive interval with a channel open whose round trip is the lane's RTT.
// After `after_failures` failed (or too slow) probes the lane's session is
// dropped and the link moves to the next healthy lane; a lane ranked above
// the active one takes over again after `return_after` good probes. -L/-D
// listeners stay open throughout: a new connection waits (up to
// switch_wait) for a clean session; -R is requested again on the new one.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/backoff.hpp"
#include "forward/forward_stats.hpp"
#include "forward/local_forward.hpp"
#include "forward/remote_forward.hpp"
#include "forward/session_source.hpp"
#include "link/escalation.hpp"
#include "link/link_config.hpp"
#include "link/link_resolve.hpp"
#include "link/transport_health.hpp"

namespace tunnel::link {

enum class link_state { starting, up, degraded, down, stopped, unsupported };
[[nodiscard]] std::string_view to_string(link_state s) noexcept;

enum class lane_state { idle, connecting, up, down, unsupported };
[[nodiscard]] std::string_view to_string(lane_state s) noexcept;

// Receives every event as one JSON object ({"type": ..., "link": ..., ...}).
using event_sink = std::function<void(nlohmann::json)>;

class link : public forward::session_source, public std::enable_shared_from_this<link> {
  public:
    // Binds the -L/-D listeners now, so "port in use" is reported at start.
    [[nodiscard]] static core::result<std::shared_ptr<link>> create(
        asio::any_io_executor executor, link_config config,
        std::vector<resolved_transport> transports, event_sink events);

    // Starts the lanes and the listeners (returns at once).
    void start();
    // Closes listeners, drops every session; idempotent.
    void stop();
    // Drops every session; lanes reconnect at once.
    void restart();
    // Makes transport `name` (a transport name or index) the preferred one:
    // the link moves to it as soon as it is up. Fails for an unknown name or
    // an unsupported transport.
    [[nodiscard]] core::result<std::size_t> prefer(std::string_view name);

    asio::awaitable<std::shared_ptr<ssh::session>> acquire(ssh::time_point deadline) override;

    [[nodiscard]] const std::string& name() const noexcept { return config_.name; }
    // user@host:port the target resolves to (ssh_config applied); empty for a relay link.
    [[nodiscard]] const std::string& destination() const noexcept { return destination_; }
    // Other processes' exec/cp/run may use this link's session (exec_pool).
    [[nodiscard]] bool serves_execs() const noexcept {
        return config_.exec_pool && !config_.is_relay() && !destination_.empty();
    }
    // A pooled exec started on this link (true) or was refused here (false).
    void count_exec(bool started) noexcept { ++(started ? execs_started_ : execs_refused_); }
    // A pooled SFTP channel (cp, sync) was opened on this link (true) or refused here.
    void count_sftp(bool opened) noexcept { ++(opened ? sftp_opened_ : sftp_refused_); }
    [[nodiscard]] link_state state() const noexcept;
    [[nodiscard]] std::optional<std::size_t> active() const noexcept { return active_; }
    // The `tunnel ls` / `tunnel status` object.
    [[nodiscard]] nlohmann::json status() const;
    // The local port of forward `index` (-L/-D; for port 0 and tests).
    [[nodiscard]] uint16_t local_port(std::size_t index) const;

    link(asio::any_io_executor executor, link_config config,
         std::vector<resolved_transport> transports, event_sink events);

  private:
    struct lane;
    asio::awaitable<void> run_lane(std::size_t index);
    asio::awaitable<void> drive(std::size_t index, std::shared_ptr<ssh::session> s);
    asio::awaitable<std::optional<std::chrono::microseconds>> probe(
        std::shared_ptr<ssh::session> s);
    asio::awaitable<void> request_remotes(std::shared_ptr<ssh::session> s);
    asio::awaitable<void> sleep(lane& l, std::chrono::milliseconds d);
    void drop(lane& l, const std::string& why);
    bool wanted(std::size_t index) const;
    void reselect(const std::string& reason);
    void wake_acquirers();
    // Makes `next` the active transport (nullopt: none is up): the event, -R
    // requested again on it, the old session dropped if it held -R listeners.
    void switch_to(std::optional<std::size_t> next, const std::string& reason);
    void mark_remotes_down();
    void emit(nlohmann::json e) const;
    health_policy policy() const;
    // A connect of lane `index` failed while no transport carries the link:
    // the next recovery step (escalation.hpp; in link_recovery.cpp).
    void recover(std::size_t index);
    // The failure prediction of lane `index` as JSON ({"in", "error"} or null).
    nlohmann::json prediction(std::size_t index) const;

    asio::any_io_executor executor_;
    link_config config_;
    std::vector<std::unique_ptr<lane>> lanes_;
    event_sink events_;
    std::vector<std::shared_ptr<forward::forward_stats>> forward_stats_;
    std::vector<std::shared_ptr<forward::local_forward>> locals_;    // null for -R
    std::vector<std::unique_ptr<forward::remote_forward>> remotes_;  // null for -L/-D
    std::optional<std::size_t> active_;
    std::size_t preferred_ = 0;
    std::vector<asio::steady_timer*> acquirers_;
    std::uint64_t switches_ = 0;
    recovery_ladder recovery_;
    std::uint64_t escalations_ = 0;
    std::uint64_t remote_generation_ = 0;
    std::string destination_;
    std::uint64_t execs_started_ = 0;
    std::uint64_t execs_refused_ = 0;
    std::uint64_t sftp_opened_ = 0;
    std::uint64_t sftp_refused_ = 0;
    bool started_ = false;
    bool stopped_ = false;
};

}  // namespace tunnel::link
