// Helpers for test servers that run in a private mount namespace of their own
// (`unshare --mount`) with the fixture's home bind-mounted on /root: dropbear
// and tinysshd read authorized_keys only from the user's home, so this is how
// they log in root without the real /root being touched. The namespace also
// names every process a server forked (its sessions and their commands), so
// that stop() can end them all.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace tunnel::test {

// readlink /proc/PID/ns/mnt: "mnt:[4026531841]", empty if it cannot be read.
[[nodiscard]] std::string mount_namespace_of(pid_t pid);

// True if pid runs `binary` (an absolute path) in a mount namespace that is
// not ours (so that kill_mount_namespace may end everything in it).
[[nodiscard]] bool runs_in_own_mount_namespace(pid_t pid, const std::string& binary);

// SIGTERM to every process in mount namespace `ns`, SIGKILL after `grace` to
// those left. Does nothing for an empty `ns` or our own namespace.
void kill_mount_namespace(const std::string& ns, std::chrono::milliseconds grace);

// A program on PATH, or empty.
[[nodiscard]] std::string find_program(const std::string& name);

// Why a private mount namespace with a bind mount cannot be made here (not
// root, no CAP_SYS_ADMIN, unshare or mount missing), or nullopt. Checked once.
[[nodiscard]] const std::optional<std::string>& private_mount_unavailable();

// mkdir (EEXIST is fine) and chmod to `mode`.
[[nodiscard]] core::result<void> make_dir(const std::string& path, mode_t mode);

// "ssh-ed25519 AAAA... comment" -> "ssh-ed25519 AAAA..." for the first such
// line of `text`; empty if there is none.
[[nodiscard]] std::string ed25519_line(const std::string& text);

}  // namespace tunnel::test
