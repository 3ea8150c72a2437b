// The POSIX sh scripts a deploy runs on a host, one round trip each. Layout:
//   <root>/releases/<id>/          one directory per release (complete once named so:
//                                  it is unpacked as releases/.<id>.partial and renamed)
//   <root>/current -> <root>/releases/<id>   switched with `ln -s` + `mv -T` (atomic)
//   <root>/shared/<path>           linked into every release (deploy.yaml `shared`)
//   <root>/.tunnel-deploy/lock/holder     the lock (mkdir is atomic) and who holds it
//   <root>/.tunnel-deploy/log.jsonl       the release log, one JSON object a line
//   <root>/.tunnel-deploy/previous        the release `current` pointed at before the last switch
//   <root>/.tunnel-deploy/artifacts/, cache/   uploaded artifacts (kept for checksum skips)
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "deploy/artifact.hpp"
#include "deploy/deploy_config.hpp"

namespace tunnel::deploy::scripts {

// Where the uploaded artifact lives on the host (file kinds), or the synced
// tree (directories).
[[nodiscard]] std::string artifact_path(const deploy_config& c, const artifact& a);

// Takes the lock: prints `LOCKED`, or `HELD` and the holder's line.
[[nodiscard]] std::string lock(const deploy_config& c, std::string_view holder_json);
// Releases the lock only if `holder_json` still holds it.
[[nodiscard]] std::string unlock(const deploy_config& c, std::string_view holder_json);
// Removes the lock whoever holds it: prints `HELD <holder>` or `FREE`.
[[nodiscard]] std::string force_unlock(const deploy_config& c);

// Prints `CURRENT <id>`, `PREVIOUS <id>`, `RELEASE <id>` lines (releases sorted),
// `SLOT <slot> <id>` for each blue_green slot, `LIVE <slot>` and,
// with `log_lines` > 0, the log's last lines as `LOG <json>`.
[[nodiscard]] std::string read_state(const deploy_config& c, unsigned log_lines);

// Unpacks the artifact into releases/<id> (through a .partial directory) and
// links the shared paths.
[[nodiscard]] std::string unpack(const deploy_config& c, const artifact& a, std::string_view id);

// Points `current` at releases/<id> atomically; records the release it
// pointed at in .tunnel-deploy/previous (when different). Empty `id`:
// removes `current` (rolling back a host's first deploy).
[[nodiscard]] std::string switch_to(const deploy_config& c, std::string_view id,
                                    std::string_view previous_to_record);

// Restarts the unit (sudo -n unless root) and waits until it is active.
[[nodiscard]] std::string restart_unit(const deploy_config& c);

// One hook command, run in `dir` with DEPLOY_* variables set.
[[nodiscard]] std::string hook(const deploy_config& c, std::string_view dir, std::string_view id,
                               std::string_view previous, std::string_view command);

// One attempt of an HTTP check through curl: prints `STATUS <code> <seconds>`
// then the body's first 4 KiB.
[[nodiscard]] std::string http_attempt(const health_check& h);
// One attempt of a command check, run in `current`.
// One attempt of a command check, run in `<root>/<dir>` (default `current`)
// after `env` (sh assignments and exports, for blue_green's slot variables).
[[nodiscard]] std::string command_attempt(const deploy_config& c, const health_check& h,
                                          std::string_view dir = "current",
                                          std::string_view env = "");

// Removes the oldest releases beyond keep_releases, never `current`, the
// `previous` one nor one in a blue_green slot; prints `PRUNED <id>` lines.
[[nodiscard]] std::string prune(const deploy_config& c);

// Appends one line to the release log.
[[nodiscard]] std::string append_log(const deploy_config& c, std::string_view json_line);

// A release id for now (UTC, sortable, milliseconds): 20261206-160512-123.
[[nodiscard]] std::string new_release_id();
// True for ids this tool makes or accepts in --to: [0-9A-Za-z._-], not starting with '.'.
[[nodiscard]] bool valid_release_id(std::string_view id) noexcept;

}  // namespace tunnel::deploy::scripts

namespace tunnel::deploy::scripts {
// Removes releases/<id> unless `current` points at it (a release that never went live).
[[nodiscard]] std::string discard(const deploy_config& c, std::string_view id);
}  // namespace tunnel::deploy::scripts
