// link's per-transport state (private to link.cpp and link_recovery.cpp).
#pragma once

#include <memory>
#include <string>

#include "core/asio.hpp"
#include "core/backoff.hpp"
#include "link/link.hpp"

namespace tunnel::link {

struct link::lane {
    lane(asio::any_io_executor ex, resolved_transport t, core::backoff_policy bp)
        : transport(std::move(t)), timer(ex), retry(bp) {}
    resolved_transport transport;
    transport_health health;
    lane_state state = lane_state::idle;
    std::shared_ptr<ssh::session> session;
    std::string last_error;
    std::uint64_t connects = 0;
    std::uint64_t connect_failures = 0;
    asio::steady_timer timer;  // the lane's sleeps; cancel() wakes it
    core::backoff retry;
    bool kick = false;  // restart(): drop the session and connect again
};

}  // namespace tunnel::link
