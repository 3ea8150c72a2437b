#include "forward/forward_metrics.hpp"

namespace tunnel::forward {

forward_metrics::forward_metrics(observe::metrics_registry& r)
    : connected(
          r.gauge("tunnel_forward_connected", "1 while the SSH session is up", {"destination"})),
      connects(r.counter("tunnel_forward_connects_total", "SSH sessions established")),
      reconnects(
          r.counter("tunnel_forward_reconnects_total", "SSH sessions established after a loss")),
      connect_failures(
          r.counter("tunnel_forward_connect_failures_total", "failed connection attempts")),
      disconnects(r.counter("tunnel_forward_disconnects_total", "established sessions lost")),
      up(r.gauge("tunnel_forward_up", "1 when the forward is up", {"forward", "kind"})),
      bytes_out(r.counter("tunnel_forward_bytes_out_total", "bytes carried towards the target",
                          {"forward", "kind"})),
      bytes_in(r.counter("tunnel_forward_bytes_in_total", "bytes carried back from the target",
                         {"forward", "kind"})),
      connections(r.counter("tunnel_forward_connections_total", "connections accepted",
                            {"forward", "kind"})),
      connection_failures(r.counter("tunnel_forward_connection_failures_total",
                                    "connections that could not be carried", {"forward", "kind"})),
      open_channels(
          r.gauge("tunnel_forward_open_channels", "channels open now", {"forward", "kind"})),
      state(r.gauge("tunnel_forward_state", "1 for the current state of each forward",
                    {"forward", "state"})) {}

void forward_metrics::update(const supervisor_stats& s) {
    connected.with({s.destination}).set(s.connected ? 1 : 0);
    connects.with({}).advance_to(static_cast<double>(s.connects));
    reconnects.with({}).advance_to(static_cast<double>(s.reconnects));
    connect_failures.with({}).advance_to(static_cast<double>(s.connect_failures));
    disconnects.with({}).advance_to(static_cast<double>(s.disconnects));
    for (const auto& f : s.forwards) {
        const std::vector<std::string> labels{f.spec.text, std::string(to_string(f.spec.kind))};
        up.with(labels).set(f.state == forward_state::up ? 1 : 0);
        bytes_out.with(labels).advance_to(static_cast<double>(f.bytes_out));
        bytes_in.with(labels).advance_to(static_cast<double>(f.bytes_in));
        connections.with(labels).advance_to(static_cast<double>(f.connections));
        connection_failures.with(labels).advance_to(static_cast<double>(f.failures));
        open_channels.with(labels).set(static_cast<double>(f.open_channels));
        for (auto st : {forward_state::starting, forward_state::up, forward_state::down,
                        forward_state::failed})
            state.with({f.spec.text, std::string(to_string(st))}).set(f.state == st ? 1 : 0);
    }
}

}  // namespace tunnel::forward
