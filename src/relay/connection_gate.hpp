// Caps on the relay's public connections (issue 10, finding 6): in all, per
// source address, and for connections that have not yet sent a complete
// first request head ("unauthenticated": a slowloris or an idle socket
// never gets past that). The accept loop asks admit() for every accepted
// socket and closes it at once when a cap refuses; the ticket it gets
// otherwise gives the connection's place back when destroyed. No I/O, used
// from the relay's one thread; unit-tested in
// tests/unit/relay/connection_gate_test.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <tl/expected.hpp>

#include "core/asio.hpp"
#include "relay/relay_config.hpp"

namespace tunnel::relay {

struct connection_caps {
    unsigned max_connections = 1000;
    unsigned max_per_source = 256;
    unsigned max_unauthenticated = 500;
};

// limits.max_connections / max_unauthenticated with 0 ("auto") resolved
// against the open-file soft limit: three quarters of what is left after 64
// descriptors kept for listeners, logs and tunnels' socket pairs, and half
// of that for unauthenticated connections. A configured max_connections that
// does not fit under the limit is kept, and a warning says what will happen.
[[nodiscard]] connection_caps resolve_connection_caps(const limits_config& limits,
                                                      std::uint64_t nofile_soft,
                                                      std::vector<std::string>& warnings);

// The caps of a config whose values are already resolved (non-zero).
[[nodiscard]] connection_caps caps_of(const limits_config& limits);

enum class gate_refusal { connections, per_source, unauthenticated };
// "max_connections", "max_connections_per_ip", "max_unauthenticated": the
// config key of the cap, used as the metrics label.
[[nodiscard]] std::string_view to_string(gate_refusal r) noexcept;

// What a per-source cap counts by: an IPv4 address (IPv4-mapped IPv6 too) as
// it is, an IPv6 address by its /64 (one host usually has a whole /64).
[[nodiscard]] std::string source_key(const asio::ip::address& address);

class connection_gate {
    struct state;

  public:
    explicit connection_gate(connection_caps caps);

    // One admitted connection's place; move-only, released when destroyed.
    class ticket {
      public:
        ticket(ticket&& other) noexcept = default;
        ticket& operator=(ticket&& other) noexcept;
        ticket(const ticket&) = delete;
        ticket& operator=(const ticket&) = delete;
        ~ticket();

        // The connection sent a complete first head: it no longer counts
        // against max_unauthenticated. Idempotent.
        void authenticated() noexcept;

      private:
        friend class connection_gate;
        ticket(std::shared_ptr<state> st, std::string source)
            : state_(std::move(st)), source_(std::move(source)) {}
        void release() noexcept;
        std::shared_ptr<state> state_;
        std::string source_;
        bool authenticated_ = false;
    };

    // A ticket for a new connection from `source` (source_key()), or the
    // first cap it would exceed, checked in the order total, per source,
    // unauthenticated.
    [[nodiscard]] tl::expected<ticket, gate_refusal> admit(const std::string& source);

    [[nodiscard]] unsigned open() const noexcept;
    [[nodiscard]] unsigned unauthenticated() const noexcept;
    [[nodiscard]] unsigned from(const std::string& source) const;
    [[nodiscard]] const connection_caps& caps() const noexcept;

  private:
    std::shared_ptr<state> state_;
};

}  // namespace tunnel::relay
