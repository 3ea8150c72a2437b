// Who may call a name, at request time: check_visitor (visitor_access.hpp)
// with the relay's keys, basic-mode password hashing off the relay's thread
// (relay.hash_pool, at most limits.max_password_checks queued: then 503
// busy), and the per-source throttle of wrong credentials
// (limits.visitor_failures_per_ip / visitor_failure_window: 429 unchecked).
// Refusals are answered, logged, audited and counted here.
#pragma once

#include <memory>

#include "core/asio.hpp"
#include "relay/http_tracker.hpp"
#include "relay/public_connection.hpp"
#include "relay/public_route.hpp"
#include "relay/visitor_access.hpp"

namespace tunnel::relay {

class relay_state;

// The decision for this request. When it is not allowed() the answer has
// been sent: the caller ends the exchange. When it is, the caller strips the
// visitor's credential (strip_visitor_credentials) before the origin.
asio::awaitable<visitor_decision> gate_visitor(std::shared_ptr<relay_state> relay,
                                               public_conn& conn, const public_route& route,
                                               const http_head& head, const access_policy& access);

}  // namespace tunnel::relay
