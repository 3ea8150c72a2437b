// Helpers for test servers that run in a private mount namespace of their own
// (`unshare --mount`) with the fixture's home bind-mounted on /root: dropbear
// and tinysshd read authorized_keys only from the user's home, so this is how
// they log in root without the real /root being touched. The namespace also
// names every process a server forked (its sessions and their commands), so
// that stop() can end them all.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/unique_fd.hpp"
#include "support/process.hpp"

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

// A test server that runs as `unshare --mount -- sh -c SCRIPT`, the script
// ending in `exec LISTENER` (dropbear, or socat running tinysshd): one pid
// throughout. launch() returns once the pid is LISTENER in its own mount
// namespace and 127.0.0.1:port accepts (a port that another process took
// meanwhile does not count: the listener exits on the bind failure, with
// errc::connection_failed when its output says "Address already in use", so
// the caller can retry on a new port). stop() ends the listener first, so
// that it forks no more sessions, then everything left in its namespace.
class private_server {
  public:
    struct launch_spec {
        std::string script;
        std::string listener;  // absolute path of the program the script execs
        std::uint16_t port = 0;
        std::string log_path;  // the process's stdout and stderr, appended
        std::chrono::milliseconds start_timeout{10'000};
        std::string what;  // "dropbear", "socat (for tinysshd)": names it in errors
    };
    [[nodiscard]] static core::result<private_server> launch(const launch_spec& spec);

    private_server(private_server&& other) noexcept;
    private_server& operator=(private_server&& other) noexcept;
    ~private_server() { stop(); }

    void stop();

  private:
    private_server(child_process process, mount_namespace ns)
        : process_(std::move(process)), namespace_(std::move(ns)) {}

    std::optional<child_process> process_;
    mount_namespace namespace_;
};

// The last `max_bytes` of a log, for error messages.
[[nodiscard]] std::string log_tail(const std::string& text, std::size_t max_bytes = 4000);

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
