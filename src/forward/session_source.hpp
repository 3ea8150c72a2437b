// Where forwards get the current SSH session from: the supervisor, which
// replaces it after a reconnect. Listeners keep listening through outages
// and ask for a session with a deadline.
#pragma once

#include <memory>

#include "core/asio.hpp"
#include "ssh/session.hpp"

namespace tunnel::forward {

class session_source {
  public:
    virtual ~session_source() = default;
    // The live session, waiting for one until `deadline`; null when there
    // is none by then or the source is stopping.
    virtual asio::awaitable<std::shared_ptr<ssh::session>> acquire(ssh::time_point deadline) = 0;
};

}  // namespace tunnel::forward
