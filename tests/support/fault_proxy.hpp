// A fault-injecting TCP proxy for tests (ARCHITECTURE §7): put it between a
// client and a server, then make the link misbehave the ways real networks
// do. Runs on its own threads; every method is thread-safe.
//
//   auto proxy = fault_proxy::start(sshd->port());
//   proxy->set_mode(fault_mode::drop);   // bytes vanish, no FIN, no RST
//   proxy->set_mode(fault_mode::pass);
//   proxy->reset_all();                  // RST every open connection
//   proxy->cut_after(48 << 20, 5);       // RST each of the next 5 connections
//                                        // once it has carried 48 MiB
//   proxy->set_lag(400ms);               // open connections too: every chunk
//                                        // waits 400 ms (a rising RTT)
//   proxy->set_delay(5ms);               // later connections: 5 ms each way
//                                        // (a 10 ms round trip; this kernel
//                                        // has no netem)
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/error.hpp"

namespace tunnel::test {

enum class fault_mode {
    pass,   // forward bytes both ways
    drop,   // read and discard both ways: the peer hears nothing, TCP stays up
    stall,  // stop reading: buffers fill up, the peer's writes block
};

class fault_proxy {
  public:
    // Listens on 127.0.0.1:0 and forwards to 127.0.0.1:target_port.
    [[nodiscard]] static core::result<std::unique_ptr<fault_proxy>> start(uint16_t target_port);
    ~fault_proxy();
    fault_proxy(const fault_proxy&) = delete;
    fault_proxy& operator=(const fault_proxy&) = delete;

    [[nodiscard]] uint16_t port() const noexcept { return port_; }
    // Applies to open connections and to ones accepted later.
    void set_mode(fault_mode mode) noexcept { mode_ = mode; }
    // Aborts every open connection with a TCP RST on both sides.
    void reset_all() noexcept { ++reset_generation_; }
    // Connections accepted so far.
    [[nodiscard]] int accepted() const noexcept { return accepted_; }
    // Aborts connections (TCP RST both sides) once each has carried `bytes`
    // bytes, both directions counted, until `times` have been cut; later
    // connections pass. Applies to open connections and to ones accepted
    // later; a new call replaces what is left of the last one.
    void cut_after(std::uint64_t bytes, int times) noexcept;
    // Connections cut by cut_after so far.
    [[nodiscard]] int cuts() const noexcept { return cuts_; }
    // Lag: in pass mode every chunk, either way, is held this long before it
    // is forwarded, on open connections and later ones (one thread per
    // connection, so a round trip grows by about twice this). Unlike
    // set_delay it is not a faithful latency model, but it makes the RTT of
    // a connection that is already up rise, which set_delay cannot. 0 ends it.
    void set_lag(std::chrono::microseconds lag) noexcept { lag_us_ = lag.count(); }
    // Delay mode: connections accepted from now on hold every chunk
    // `one_way` in each direction (support/delay_pump.hpp: latency, not a
    // bandwidth cap), with TCP_NODELAY on both legs; 0 turns it off for
    // later connections. Modes, resets and cuts do not apply to delayed
    // connections.
    void set_delay(std::chrono::microseconds one_way) noexcept { delay_us_ = one_way.count(); }

    struct impl;

  private:
    fault_proxy() = default;
    // True (and one cut fewer left) if a connection that carried `carried`
    // bytes is to be cut now.
    [[nodiscard]] bool take_cut(std::uint64_t carried) noexcept;
    uint16_t port_ = 0;
    std::atomic<fault_mode> mode_{fault_mode::pass};
    std::atomic<int> reset_generation_{0};
    std::atomic<int> accepted_{0};
    std::atomic<std::uint64_t> cut_bytes_{0};
    std::atomic<int> cuts_left_{0};
    std::atomic<int> cuts_{0};
    std::atomic<std::int64_t> delay_us_{0};
    std::atomic<std::int64_t> lag_us_{0};
    std::shared_ptr<impl> impl_;
};

}  // namespace tunnel::test
