// Carries bytes both ways between a local stream socket and an SSH channel
// (ARCHITECTURE §4): bounded buffers on both sides, the channel's window for
// flow control, half-close passed through (EOF one way does not end the
// other), and both directions end when either fails. A stalled local peer
// only stops its own channel's window; the session keeps serving the others.
#pragma once

#include <memory>
#include <string>

#include "forward/forward_stats.hpp"
#include "forward/local_socket.hpp"
#include "ssh/channel.hpp"

namespace tunnel::forward {

struct pump_limits {
    std::size_t channel_buffer = 2 << 20;  // bytes taken from a channel and not yet written locally
    std::size_t read_chunk = 256 << 10;    // one local read
};

// Starts the pump on the channel's session executor and returns at once.
// `to_channel_first` is sent before anything read from the socket (bytes a
// SOCKS client sent early). The pump keeps `stats` alive and updates it.
void start_pump(ssh::channel channel, stream_socket socket, std::shared_ptr<forward_stats> stats,
                std::string to_channel_first = {}, pump_limits limits = {});

}  // namespace tunnel::forward
