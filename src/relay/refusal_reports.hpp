// Summaries of throttled refusals (relay_state::attach_refusals and
// visitor_failures, refusal_throttle.hpp): one warning and one audit event
// per source and window in which attempts were answered 429 unchecked.
// Internal to relay/.
#pragma once

#include <memory>

#include "core/asio.hpp"

namespace tunnel::relay {

class relay_state;

// Logs and audits one summary per source and window in which attach
// attempts (or visitor credentials) were throttled, every second until
// `timer` is cancelled (the accept loop does when the listener closes), then
// the rest.
asio::awaitable<void> report_attach_refusals(std::shared_ptr<relay_state> relay,
                                             std::shared_ptr<asio::steady_timer> timer);

}  // namespace tunnel::relay
