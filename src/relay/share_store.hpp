// The relay's share grants (share_grant.hpp; docs/relay.md "Sharing").
//
// Readers (every worker, on each request that its name's access mode would
// refuse, and the stats endpoint) load an immutable snapshot through one
// atomic shared_ptr: no lock on the request path. Writers (grant, revoke:
// rare API calls) take a mutex, build the next snapshot, write the state
// file when one is configured (temp file, fsync, rename: a crash leaves the
// old or the new file, never half of one) and only then publish it, so a
// grant the relay could not persist is refused and never in effect.
// Without a state file the grants live in memory and are lost at restart.
// Expired grants are dropped on every write and at load.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "relay/share_grant.hpp"

namespace tunnel::relay {

// A grant plus its use counters (shared by successive snapshots).
struct share_entry {
    explicit share_entry(share_grant g) : grant(std::move(g)) {}
    share_grant grant;
    // For sampled share_used audit records (share_store::note_use).
    mutable std::atomic<std::int64_t> last_audit_ms{-1};
    mutable std::atomic<std::uint64_t> unaudited{0};
};

struct share_snapshot {
    std::vector<std::shared_ptr<const share_entry>> grants;  // in creation order
    // (tenant, name) -> its grants.
    std::multimap<std::pair<std::string, std::string>, std::shared_ptr<const share_entry>> by_route;
};

class share_store {
  public:
    // Loads `config.state_file` when set (a missing file is an empty store;
    // one that does not parse is an error naming it); expired grants dropped.
    [[nodiscard]] static core::result<std::unique_ptr<share_store>> open(
        share_config config,
        std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

    [[nodiscard]] std::shared_ptr<const share_snapshot> snapshot() const {
        return snapshot_.load(std::memory_order_acquire);
    }
    [[nodiscard]] const share_config& config() const noexcept { return config_; }

    // Adds a grant of `owner` (errc::resource_exhausted past max_per_tenant,
    // errc::io_error when the state file cannot be written).
    [[nodiscard]] core::result<share_grant> grant(const share_request& request,
                                                  const std::string& owner,
                                                  std::chrono::system_clock::time_point now);
    // Removes grant `id` of `owner`; errc::not_found when `owner` has no
    // such grant (another tenant's grant is not found either).
    [[nodiscard]] core::result<share_grant> revoke(const std::string& owner, const std::string& id,
                                                   std::chrono::system_clock::time_point now);
    // The live grants of `owner`, oldest first.
    [[nodiscard]] std::vector<share_grant> list(const std::string& owner,
                                                std::chrono::system_clock::time_point now) const;

    // A live grant of `role` on (tenant, name) for one of `grantees`, or nullptr.
    [[nodiscard]] static const share_entry* find(const share_snapshot& s, const std::string& tenant,
                                                 const std::string& name, share_role role,
                                                 std::span<const share_grantee> grantees,
                                                 std::chrono::system_clock::time_point now);
    // Whether (tenant, name) has any live grant of `role` (one lookup: the
    // request path asks this before verifying any token).
    [[nodiscard]] static bool any(const share_snapshot& s, const std::string& tenant,
                                  const std::string& name, share_role role,
                                  std::chrono::system_clock::time_point now);

    // Counts a use of `entry`; true when a share_used audit record is due
    // (the first use, then at most one per use_audit_interval), with `uses`
    // the uses since the last record (this one included). Lock-free.
    [[nodiscard]] bool note_use(const share_entry& entry, std::chrono::steady_clock::time_point now,
                                std::uint64_t& uses) const;

  private:
    explicit share_store(share_config config) : config_(std::move(config)) {}
    // Writes the state file (when configured) and publishes `next`.
    core::result<void> commit(std::shared_ptr<share_snapshot> next);

    share_config config_;
    std::mutex write_mutex_;
    std::atomic<std::shared_ptr<const share_snapshot>> snapshot_{
        std::make_shared<const share_snapshot>()};
};

// Writes `text` to `path` atomically: PATH.tmp (mode 0600), fsync, rename,
// fsync of the directory.
[[nodiscard]] core::result<void> write_file_atomically(const std::string& path,
                                                       std::string_view text);

}  // namespace tunnel::relay
