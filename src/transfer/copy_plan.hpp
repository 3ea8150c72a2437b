// What `tunnel cp` copies where, decided before anything is touched: which
// side is remote (the direction), the host, the paths on each side, and the
// copy options with their rules (--owner/--group need --sudo and an upload,
// --mode is octal, --retries copies every file over one channel so that each
// cut can resume). Then scp's naming rules for the destination and the
// chown commands for --owner/--group. Pure: no file system, no network.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "transfer/file_copy.hpp"

namespace tunnel::transfer {

// The command line of `tunnel cp`, as typed.
struct copy_request {
    std::vector<std::string> paths;  // SRC... DST, each a local path or [user@]host:path
    bool recursive = false;
    bool preserve = false;
    std::string mode;  // --mode text; empty: the source's permission bits
    bool resume = false;
    bool verify = false;
    bool checksum = false;
    unsigned jobs = 4;
    unsigned streams = 4;
    bool streams_given = false;  // explicit --streams: use them even on a near link
    std::string owner, group;
    bool sudo = false;
    std::string retries = "0";  // --retries text
};

struct copy_plan {
    bool upload = false;               // local sources to the host; else from the host to here
    std::string host;                  // the remote side's [user@]host
    std::vector<std::string> sources;  // paths on the source side
    std::string dest;                  // path on the destination side
    copy_options options;
    unsigned retries = 0;  // reconnects after a lost connection
};

// Checks the request and decides the copy. Errors are invalid_argument and
// say what to do instead (both sides remote: copy in two steps; --owner
// without --sudo: add --sudo; ...).
[[nodiscard]] core::result<copy_plan> plan_copy(const copy_request& request);

// True if the options run commands on the host (chown through sudo, remote
// sha256sum); an SFTP-only account cannot, and the copy says so.
[[nodiscard]] bool needs_remote_commands(const copy_options& o) noexcept;

// What the user is told when the host runs no commands but the options
// would use one: one line per consequence (empty when nothing is lost).
[[nodiscard]] std::vector<std::string> notes_without_remote_commands(const copy_plan& plan);

// scp's naming: a source goes inside a destination that is a directory,
// under its own name; otherwise the destination is the copy's name.
[[nodiscard]] std::string copy_target(const std::string& source, const std::string& dest,
                                      bool dest_is_dir);

// The destination's shape, given what a stat of it found: several sources
// need an existing directory, and a path ending in '/' names a directory that
// must exist. `shown` is how messages name it (host:path for remote ones).
[[nodiscard]] core::result<void> check_copy_destination(std::size_t source_count,
                                                        const std::string& dest, bool exists,
                                                        bool is_dir, const std::string& shown);

// "OWNER", "OWNER:GROUP" or ":GROUP", as chown takes it.
[[nodiscard]] std::string chown_spec(const std::optional<std::string>& owner,
                                     const std::optional<std::string>& group);

// `sudo -n chown -h -- SPEC PATH...` commands covering every path, each
// quoted; a command takes no more paths once it is `max_length` bytes long.
[[nodiscard]] std::vector<std::string> chown_commands(const std::optional<std::string>& owner,
                                                      const std::optional<std::string>& group,
                                                      const std::vector<std::string>& paths,
                                                      std::size_t max_length = 64 * 1024);

}  // namespace tunnel::transfer
