// A forward's connection: ssh::start_channel_pump (bounded buffers, the
// channel's window, half-close passed through) with the bytes and open
// channels counted in the forward's stats.
#pragma once

#include <memory>
#include <string>

#include "forward/forward_stats.hpp"
#include "forward/local_socket.hpp"
#include "ssh/channel.hpp"
#include "ssh/channel_pump.hpp"

namespace tunnel::forward {

using ssh::pump_limits;

// Starts the pump on the channel's session executor and returns at once.
// `to_channel_first` is sent before anything read from the socket (bytes a
// SOCKS client sent early). The pump keeps `stats` alive and updates it.
void start_pump(ssh::channel channel, stream_socket socket, std::shared_ptr<forward_stats> stats,
                std::string to_channel_first = {}, pump_limits limits = {});

}  // namespace tunnel::forward
