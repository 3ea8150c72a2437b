// The sessions of one `tunnel connect` (docs/relay-client.md "Several
// relays"): the session in charge, a forwarding supervisor that reconnects
// by itself and, with several relays, fails over between them in order
// (relay_failover.hpp). While it is on another relay than the first, the
// first is probed (probe_relay) and, once it answers, a second session is
// attached there, pinned to it; when every name is published on the first
// relay, the other session is left at a quiet moment, releasing its lease
// there (make before break: both relays carry the names meanwhile, so a
// caller that tries the first relay and then the other finds them at one of
// them throughout). A move back that does not get the names up is given up
// and tried again later, at twice the interval (up to 5 min).
//
//   auto s = relay::relay_sessions::create(executor, std::move(options));
//   auto outcome = co_await (*s)->run();      // until stop() or a fatal error
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "core/asio.hpp"
#include "core/wake_signal.hpp"
#include "forward/supervisor.hpp"
#include "relay/relay_client.hpp"
#include "relay/relay_failover.hpp"

namespace tunnel::relay {

struct relay_sessions_options {
    // Each session gets its own lease and failover (set here: ignored).
    relay_client_options client;
    // Two or more: fail over between them, the first preferred. Fewer: the
    // one relay of client.url.
    std::vector<transport::ws_url> relays;
    // Failovers, and moves back to the first relay (reason "preferred").
    std::function<void(const relay_switch&)> on_switch;
    std::chrono::milliseconds probe_interval{5'000};  // the first relay, while on another
    std::chrono::milliseconds probe_timeout{3'000};
    std::chrono::milliseconds publish_limit{10'000};  // for the names to come up there
    std::chrono::milliseconds quiet_limit{10'000};    // to leave the other relay quietly
    transport::ws_options probe_ws;                   // TLS trust for the probes
    // The session in charge changed (token renewal follows it).
    std::function<void(std::shared_ptr<forward::supervisor>)> on_new_session;
};

class relay_sessions : public std::enable_shared_from_this<relay_sessions> {
  public:
    [[nodiscard]] static core::result<std::shared_ptr<relay_sessions>> create(
        asio::any_io_executor executor, relay_sessions_options options);

    // Until the session in charge ends: stop(), or an error it does not
    // retry (e.g. a refused host key on the first attempt).
    asio::awaitable<core::result<void>> run();
    // Stops every session; `release`: the relays release the names at once.
    void stop(bool release);
    [[nodiscard]] std::shared_ptr<forward::supervisor> current() const;

    relay_sessions(asio::any_io_executor executor, relay_sessions_options options);

  private:
    struct slot {
        std::shared_ptr<forward::supervisor> sup;
        std::shared_ptr<transport::ws_lease> lease;
        std::shared_ptr<relay_failover> failover;  // null with one relay
        bool in_charge = false;
        bool ended = false;
        std::optional<core::result<void>> outcome;
    };
    // `lease_id`: the lease to attach with (empty: a new one).
    [[nodiscard]] core::result<std::shared_ptr<slot>> make(std::optional<std::size_t> pin,
                                                           std::string lease_id = {});
    asio::awaitable<void> watch(std::shared_ptr<slot> s);
    asio::awaitable<void> return_to_first();
    // Stops the session trying the first relay; `cur` (the one in use)
    // attaches again when the names had gone over to it.
    void abandon_trial(slot& cur);
    // Whether two sessions attach with one lease (relays of one cluster).
    static bool shares_lease(slot& a, slot& b);
    asio::awaitable<void> sleep(std::chrono::milliseconds d);

    asio::any_io_executor executor_;
    relay_sessions_options options_;
    std::shared_ptr<slot> current_;
    std::shared_ptr<slot> trial_;  // attaching to the first relay beside current_
    core::wake_signal ended_;
    asio::steady_timer timer_;
    bool stopped_ = false;
};

}  // namespace tunnel::relay
