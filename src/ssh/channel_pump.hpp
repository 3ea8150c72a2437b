// Carries bytes both ways between a local stream socket and an SSH channel
// (ARCHITECTURE §4): bounded buffers on both sides, the channel's window for
// flow control, half-close passed through (EOF one way does not end the
// other), and both directions end when either fails. A stalled local peer
// only stops its own channel's window; the session keeps serving the others.
// Used by forwards (-L/-R/-D) and by agent forwarding.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "ssh/channel.hpp"

namespace tunnel::ssh {

using stream_socket = asio::generic::stream_protocol::socket;

struct pump_limits {
    std::size_t channel_buffer = 2 << 20;  // bytes taken from a channel and not yet written locally
    std::size_t read_chunk = 256 << 10;    // one local read
};

// What a pump reports, on the session's executor. Kept alive by the pump
// until both directions have ended (then destroyed: a destructor can count
// the channel as closed).
class pump_observer {
  public:
    virtual ~pump_observer() = default;
    virtual void on_bytes_to_channel(std::size_t) {}  // read locally, sent on the channel
    virtual void on_bytes_to_socket(std::size_t) {}   // taken from the channel, written locally
    virtual void on_channel_error(std::string_view) {}
};

// A running pump, for whoever must end it early.
class pump_control {
  public:
    virtual ~pump_control() = default;
    // Closes the socket and the channel; both directions end. Idempotent.
    virtual void stop() = 0;
};

// Starts the pump on the channel's session executor and returns at once.
// `to_channel_first` is sent before anything read from the socket (bytes a
// SOCKS client sent early). `observer` may be null. The pump owns itself;
// the handle expires when it has ended.
std::weak_ptr<pump_control> start_channel_pump(channel ch, stream_socket socket,
                                               std::shared_ptr<pump_observer> observer,
                                               std::string to_channel_first = {},
                                               pump_limits limits = {},
                                               const char* what = "channel pump");

}  // namespace tunnel::ssh
