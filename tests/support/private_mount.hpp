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
#include "core/unique_fd.hpp"

namespace tunnel::test {

// readlink /proc/PID/ns/mnt: "mnt:[4026531841]", empty if it cannot be read.
[[nodiscard]] std::string mount_namespace_of(pid_t pid);

// True if pid runs `binary` (an absolute path) in a mount namespace that is
// not ours (so that mount_namespace::kill_all may end everything in it).
[[nodiscard]] bool runs_in_own_mount_namespace(pid_t pid, const std::string& binary);

// A server's private mount namespace, held open: the kernel reuses the inode
// number that names a namespace ("mnt:[N]") once its last process and
// reference are gone, so a fixture that stopped its listener and then looked
// for "mnt:[N]" could find, and kill, another test's server. Holding
// /proc/PID/ns/mnt open keeps N ours until this object goes.
class mount_namespace {
  public:
    mount_namespace() = default;
    // The namespace `pid` runs in, pinned; empty if it cannot be read.
    [[nodiscard]] static mount_namespace of(pid_t pid);

    [[nodiscard]] const std::string& id() const noexcept { return id_; }
    // SIGTERM to every process in it, SIGKILL after `grace` to those left,
    // then lets it go. Does nothing when empty or when it is our own.
    void kill_all(std::chrono::milliseconds grace);

  private:
    std::string id_;
    core::unique_fd pin_;
};

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
