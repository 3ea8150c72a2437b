// The blue-green steps on one host (deploy_config strategy.type blue_green,
// keys in blue_green_config.hpp). Layout, besides release_scripts.hpp's:
//   <root>/slots/blue, <root>/slots/green  -> <root>/releases/<id>   the release each slot runs
//   <root>/.tunnel-deploy/live-slot        the slot traffic goes to
//   <root>/.tunnel-deploy/upstream.orig    the upstream file as it was before the first switch
// `current` always points at the live slot's release, so `tunnel releases`,
// pruning and the other strategies see the same host.
//
// A deploy puts the new release into the idle slot, restarts that slot's unit,
// checks the slot's health and only then switches traffic (the upstream file
// rewritten and reloaded, `current` flipped). The old slot's unit keeps
// running: switching back is a flip, without a restart.
#pragma once

#include <string>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "deploy/deploy_config.hpp"
#include "deploy/release_host.hpp"

namespace tunnel::deploy::blue_green {

// The slot a new release goes into: the one that is not live (blue when none is).
[[nodiscard]] std::string target_slot(const host_state& st);

// --check: what a deploy of `id` would do on this host.
[[nodiscard]] std::string describe_plan(const deploy_config& c, const host_state& st,
                                        const std::string& id);

// " [blue, live]" / " [green]" / "" for release `id` in `tunnel releases`.
[[nodiscard]] std::string slot_marks(const host_state& st, const std::string& id);

struct step {
    std::string slot;       // the slot the release went into
    bool switched = false;  // traffic went to it
    core::result<void> result;
};

// Release `id` (unpacked) into the idle slot: before_switch hooks (with
// `hooks`), the slot link, the slot's unit restarted, its health checked,
// then traffic switched and after_switch hooks. A failure before the switch
// puts the slot back as it was (its unit restarted on its old release) and
// traffic never moved.
asio::awaitable<step> deploy(release_host& h, const host_state& st, std::string id, bool hooks);

// Undoes deploy() after the switch: traffic back to the slot that was live
// (st.live_slot; none: the upstream file as it was and `current` as it was),
// then `slot` back to the release it held. The old slot is not restarted.
asio::awaitable<core::result<void>> switch_back(release_host& h, const host_state& st,
                                                std::string slot);

// `tunnel rollback` to `target`: when the idle slot holds it, its health is
// checked and traffic flipped to it (no restart, the other slot untouched);
// otherwise it is started in the idle slot as deploy() does (without hooks).
asio::awaitable<step> rollback(release_host& h, const host_state& st, std::string target);

}  // namespace tunnel::deploy::blue_green
