// fault_proxy's delay mode (fault_proxy::set_delay): moves bytes from one
// socket to another, each chunk held `delay` after it was read. A reader
// takes data as soon as it arrives and a writer sends it when its time has
// come, so the pump adds latency, not a bandwidth limit (up to a 64 MiB
// backlog, past which reading waits). This kernel has no netem.
#pragma once

#include <atomic>
#include <chrono>

namespace tunnel::test {

// Runs until `in` reaches EOF or fails, `out` fails, or `stop` is set (checked
// every 200 ms); then half-closes `out` (SHUT_WR) when everything read was
// sent. Closes neither descriptor.
void delay_pump(int in, int out, std::chrono::microseconds delay, const std::atomic<bool>& stop);

}  // namespace tunnel::test
