// A deploy across an inventory group (the strategies), a rollback, the
// release listing and --unlock.
//
// Deploy: every host is prepared first, in parallel (connect, lock, upload
// with checksum skip, unpack, link shared paths). Hosts that fail there are
// counted against max_fail_percentage; beyond it nothing is switched anywhere.
// Then the batches (deploy_config.hpp plan_batches) switch one after the
// other: before_switch hooks, the atomic switch, after_switch hooks, the unit
// restart, health checks. A batch with a failing host is switched back
// whole; when the failed hosts exceed max_fail_percentage every batch
// switched so far is switched back too and the deploy stops, so the fleet is
// never left half on a release unless max_fail_percentage allows it. Last,
// on every host: the release log line, pruning (deployed hosts), the
// after_success or after_failure hooks and the lock's release.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/asio.hpp"
#include "deploy/artifact.hpp"
#include "deploy/deploy_config.hpp"
#include "deploy/release_host.hpp"

namespace tunnel::deploy {

enum class host_status {
    pending,      // not reached (the deploy stopped before its batch)
    deployed,     // on the new release, healthy
    failed,       // its own step failed (and it was switched back if it had switched)
    rolled_back,  // healthy, but switched back with its batch or the fleet
    unreachable,  // no SSH session
    checked,      // --check: nothing changed
};
[[nodiscard]] std::string_view to_string(host_status s) noexcept;

struct host_outcome {
    std::string name;
    host_status status = host_status::pending;
    std::string message;    // why it failed / was rolled back; --check: what would happen
    std::string previous;   // the release `current` pointed at before
    std::size_t batch = 0;  // 1-based; 0 before batches
    bool uploaded = false;  // false: the host had the artifact already
    std::string slot;       // blue_green: the slot the release was started in
    std::vector<std::string> pruned;
};

struct deploy_report {
    std::string id;
    std::string sha256;
    std::string strategy;
    std::vector<host_outcome> hosts;
    std::size_t batches = 0;
    bool fleet_rolled_back = false;
    std::string stopped;  // why the deploy stopped early; "" when it ran through
    [[nodiscard]] bool ok() const noexcept;
};

struct run_options {
    std::size_t forks = 50;
    bool check = false;
    std::string user;         // who deploys (for the lock and the log): user@host
    std::string holder_json;  // the lock's holder line
    std::function<void(const std::string&)> on_progress;  // one line at a time
};

asio::awaitable<deploy_report> run_deploy(const deploy_config& c, const artifact& a,
                                          std::vector<host_target> hosts, run_options o);

// Switches every host back: to `to` when given, else to the release before
// the current one. Reuses the deploy_report shape (id = target, or "previous").
asio::awaitable<deploy_report> run_rollback(const deploy_config& c, std::vector<host_target> hosts,
                                            std::optional<std::string> to, run_options o);

struct host_releases {
    std::string name;
    std::string error;  // set when the host could not be read
    host_state state;
};
asio::awaitable<std::vector<host_releases>> list_releases(const deploy_config& c,
                                                          std::vector<host_target> hosts,
                                                          std::size_t forks);

struct host_unlock {
    std::string name;
    std::string error;
    std::optional<std::string> holder;  // who held the lock (its JSON line); nullopt: it was free
};
asio::awaitable<std::vector<host_unlock>> unlock_hosts(const deploy_config& c,
                                                       std::vector<host_target> hosts,
                                                       std::size_t forks);

[[nodiscard]] nlohmann::json to_json(const deploy_report& r);
// The recap the CLI prints at the end: one line per host and a summary.
[[nodiscard]] std::string format_recap(const deploy_report& r);
// The table `tunnel releases` prints for one host, current marked with '*'.
[[nodiscard]] std::string format_releases(const host_releases& h);

}  // namespace tunnel::deploy
