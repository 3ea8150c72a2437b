// Counters and state per forward and per supervisor: owned by the forward
// component, read by the status server (/status JSON here, Prometheus
// families in forward_metrics.hpp). Everything runs on one executor, so
// plain integers suffice.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "forward/forward_spec.hpp"

namespace tunnel::forward {

enum class forward_state { starting, up, down, failed };

[[nodiscard]] std::string_view to_string(forward_state state) noexcept;

struct forward_stats {
    forward_spec spec;
    forward_state state = forward_state::starting;
    std::optional<uint16_t>
        bound_port;            // -R: the port the server listens on (allocated for port 0)
    uint64_t bytes_out = 0;    // towards the target (client -> target)
    uint64_t bytes_in = 0;     // back from the target
    uint64_t connections = 0;  // accepted (local) or forwarded to us (remote)
    uint64_t failures = 0;     // connections that could not be carried
    int64_t open_channels = 0;
    std::string last_error;
};

struct supervisor_stats {
    std::string destination;
    bool connected = false;
    uint64_t connects = 0;    // successful sessions
    uint64_t reconnects = 0;  // successful sessions after the first
    uint64_t connect_failures = 0;
    uint64_t disconnects = 0;
    std::string last_error;
    std::vector<forward_stats> forwards;

    // True when the session is up and every forward is up.
    [[nodiscard]] bool healthy() const noexcept;
};

[[nodiscard]] std::string_view to_string(forward_kind kind) noexcept;

// The /status document.
[[nodiscard]] std::string render_status_json(const supervisor_stats& stats);

}  // namespace tunnel::forward
