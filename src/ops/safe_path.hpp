// Race-free, symlink-safe file handling for the scripts `tunnel apply` runs on
// a host (as root with `sudo: true`).
//
// The danger: root writing by path through a directory someone else can
// change. If `~u/.ssh` is u's, u can make it (or anything in it) a symbolic
// link to /root/.ssh, or swap one in between two commands, and root's write,
// chown or chmod lands on root's own files. So every script reaches a
// directory with `tw_enter`, which walks the path from / one component at a
// time, makes each directory the shell's current directory (the current
// directory is a handle on the directory itself, like an openat dirfd), and:
//   - in a directory only root (and the script's own user) can change, follows
//     a symbolic link by reading it and walking its target under the same
//     rules (so a root-owned link into a user's tree is still checked);
//   - in a directory anyone else can change (another owner, or group/other
//     write permission, /tmp included), refuses a symbolic link, and after
//     entering a directory checks that its `..` is the directory it came from,
//     which catches a link swapped in after the check.
// Then files are written inside a fresh 0700 staging directory made there
// (nobody else can touch its entries, and nobody else can move it to another
// parent), given owner, group and mode there, and renamed into place with
// `mv -T` (rename(2) replaces a link, never follows it). Directories get
// chmod/chown on `.` once entered. Reads use `dd iflag=nofollow`.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace tunnel::ops {

// The POSIX sh functions above (tw_enter, tw_probe, tw_stage, tw_unstage,
// tw_backup, tw_ref, tw_replaceable, tw_die). Every script the runner sends
// starts with them (see script_prologue).
[[nodiscard]] std::string_view safe_path_library();

// PATH additions, CDPATH unset, and safe_path_library(): what the runner puts
// in front of every facts, probe and action script.
[[nodiscard]] std::string script_prologue();

// "/a/b/c" -> {"/a/b", "c"}; "/c" -> {"/", "c"}. `path` is absolute and not "/".
[[nodiscard]] std::pair<std::string, std::string> split_path(std::string_view path);

}  // namespace tunnel::ops
