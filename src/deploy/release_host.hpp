// One host during a deploy, rollback or listing: one SSH session, each step
// one POSIX sh script (release_scripts.hpp) or an SFTP upload of the artifact
// (skipped when the host already has it: same SHA-256).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "deploy/artifact.hpp"
#include "deploy/deploy_config.hpp"
#include "deploy/deploy_templates.hpp"
#include "ssh/connect_options.hpp"
#include "transfer/progress.hpp"
#include "transfer/remote_host.hpp"

namespace tunnel::deploy {

struct host_target {
    std::string name;  // inventory name
    ssh::connect_options options;
    std::string root;                  // the deploy root on this host (root_for_host)
    std::vector<rendered_file> files;  // its `templates:`, rendered (deploy_templates.hpp)
};

struct host_state {
    bool root_exists = true;
    std::string current;                // release id `current` points at; "" when none
    std::string previous;               // recorded at the last switch; "" when none
    std::vector<std::string> releases;  // sorted (oldest first)
    std::vector<nlohmann::json> log;    // last lines of the release log, oldest first
    // blue_green: the release in each slot (slot -> id) and the slot traffic goes to ("" none).
    std::map<std::string, std::string> slots;
    std::string live_slot;
};

// "alice@laptop (pid 4242) since 2026-12-06T16:05:12Z" from a lock's holder line.
[[nodiscard]] std::string describe_holder(const std::string& holder_json);

class release_host {
  public:
    static asio::awaitable<core::result<std::unique_ptr<release_host>>> connect(
        asio::any_io_executor executor, const host_target& target, const deploy_config& c);

    [[nodiscard]] const std::string& name() const noexcept { return name_; }

    // Takes the deploy lock; a held lock fails naming who holds it and since when.
    asio::awaitable<core::result<void>> lock(std::string holder_json);
    // Releases the lock if we still hold it (best effort).
    asio::awaitable<void> unlock();
    // Removes the lock whoever holds it; the holder's line, or nullopt when it was free.
    asio::awaitable<core::result<std::optional<std::string>>> force_unlock();

    asio::awaitable<core::result<host_state>> state(unsigned log_lines = 0);
    // Uploads the artifact unless the host has the same one; true when copied.
    asio::awaitable<core::result<bool>> upload(const artifact& a, transfer::progress& p);
    asio::awaitable<core::result<void>> unpack(const artifact& a, std::string id);
    // Writes the host's rendered templates into releases/<id> (before any hook sees it).
    asio::awaitable<core::result<void>> write_templates(const std::vector<rendered_file>& files,
                                                        std::string id);
    // Runs the commands of one hook in order; the first failure names the
    // hook, the command, its exit status and its last output.
    asio::awaitable<core::result<void>> run_hooks(std::string hook_name,
                                                  const std::vector<std::string>& commands,
                                                  std::string dir, std::string id,
                                                  std::string previous);
    // Empty id: removes `current` (undoing a host's first deploy).
    asio::awaitable<core::result<void>> switch_to(std::string id, std::string previous_to_record);
    asio::awaitable<core::result<void>> restart_unit();
    // Restarts `unit` (not the deploy file's) and waits until it is active.
    asio::awaitable<core::result<void>> restart_unit(std::string unit);
    // Every health check in order, each retried until it passes or its
    // timeout; a failure names the check, its last answer and how long it waited.
    asio::awaitable<core::result<void>> check_health();
    // The same for `checks`, command checks run in `<root>/<dir>` after `env`
    // (sh assignments, e.g. "DEPLOY_SLOT=green; export DEPLOY_SLOT").
    asio::awaitable<core::result<void>> check_health(std::vector<health_check> checks,
                                                     std::string dir, std::string env);
    // One POSIX sh script on the host (blue_green.cpp builds its own).
    asio::awaitable<core::result<transfer::command_output>> run_script(
        std::string script, std::chrono::milliseconds timeout) {
        co_return co_await sh(std::move(script), timeout);
    }
    asio::awaitable<core::result<std::vector<std::string>>> prune();
    // Removes an unpacked release that never went live.
    asio::awaitable<void> discard(std::string id);
    asio::awaitable<core::result<void>> append_log(const nlohmann::json& entry);

    // The deploy file with this host's root.
    [[nodiscard]] const deploy_config& config() const noexcept { return config_; }
    [[nodiscard]] bool locked() const noexcept { return !holder_.empty(); }
    void close();

  private:
    release_host(std::string name, std::shared_ptr<transfer::remote_host> host,
                 const deploy_config& c)
        : name_(std::move(name)), host_(std::move(host)), config_(c) {}
    asio::awaitable<core::result<transfer::command_output>> sh(std::string script,
                                                               std::chrono::milliseconds timeout);
    asio::awaitable<core::result<void>> check_one(const health_check& h, const std::string& dir,
                                                  const std::string& env);

    std::string name_;
    std::shared_ptr<transfer::remote_host> host_;
    deploy_config config_;
    std::string holder_;  // our lock's holder line, once taken
};

}  // namespace tunnel::deploy
