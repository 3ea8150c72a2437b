#include "ssh/proxy_command.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"

extern char** environ;

namespace tunnel::ssh {

namespace {

// The running program. Reaped exactly once: by why_closed() when it has
// exited, or by stop().
class proxy_process final : public stream_pump {
  public:
    proxy_process(pid_t pid, std::string command) : pid_(pid), command_(std::move(command)) {}
    proxy_process(const proxy_process&) = delete;
    proxy_process& operator=(const proxy_process&) = delete;
    ~proxy_process() override { stop(); }

    void stop() override {
        if (pid_ <= 0) return;
        if (!reap(WNOHANG)) {
            // As ssh does when it is done with the proxy: hang it up.
            ::kill(pid_, SIGHUP);
            for (int i = 0; i < 40 && !reap(WNOHANG); ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            if (pid_ > 0) {
                ::kill(pid_, SIGKILL);
                (void)reap(0);
            }
        }
    }

    std::string why_closed() override {
        // The session saw EOF: the program is exiting; give it a moment to.
        for (int i = 0; i < 10 && pid_ > 0 && !reap(WNOHANG); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (!status_) return {};
        if (WIFEXITED(*status_))
            return fmt::format("ProxyCommand \"{}\" exited with status {}",
                               core::log_text(command_, 200), WEXITSTATUS(*status_));
        if (WIFSIGNALED(*status_))
            return fmt::format("ProxyCommand \"{}\" was killed by signal {}",
                               core::log_text(command_, 200), WTERMSIG(*status_));
        return {};
    }

  private:
    // True when the process is gone (and its status kept).
    bool reap(int flags) {
        int status = 0;
        pid_t r;
        do {
            r = ::waitpid(pid_, &status, flags);
        } while (r < 0 && errno == EINTR);
        if (r == 0) return false;
        if (r == pid_) status_ = status;
        pid_ = -1;  // reaped, or not ours to reap any more (ECHILD)
        return true;
    }

    pid_t pid_;
    std::string command_;
    std::optional<int> status_;
};

struct spawn_actions {
    posix_spawn_file_actions_t a{};
    bool ok = false;
    spawn_actions() { ok = ::posix_spawn_file_actions_init(&a) == 0; }
    ~spawn_actions() {
        if (ok) ::posix_spawn_file_actions_destroy(&a);
    }
    spawn_actions(const spawn_actions&) = delete;
    spawn_actions& operator=(const spawn_actions&) = delete;
};

core::result<byte_stream> start(const std::string& command) {
    auto pair = open_socketpair();
    if (!pair) return tl::unexpected(pair.error());
    auto [ours, theirs] = *pair;
    auto fail = [&](std::string what, int err) -> core::result<byte_stream> {
        ::close(ours);
        ::close(theirs);
        return core::fail(core::errc::connection_failed,
                          fmt::format("cannot start ProxyCommand \"{}\": {}: {}",
                                      core::log_text(command, 200), what, std::strerror(err)));
    };
    // The program reads and writes its end the ordinary, blocking way.
    const int fl = ::fcntl(theirs, F_GETFL);
    if (fl < 0 || ::fcntl(theirs, F_SETFL, fl & ~O_NONBLOCK) != 0) return fail("fcntl", errno);
    // dup2 onto 0/1 clears close-on-exec; an end that already is 0 or 1
    // would keep it, so move it above stderr first.
    if (theirs <= 2) {
        const int moved = ::fcntl(theirs, F_DUPFD_CLOEXEC, 3);
        if (moved < 0) return fail("fcntl", errno);
        ::close(theirs);
        theirs = moved;
    }
    spawn_actions actions;
    if (!actions.ok || ::posix_spawn_file_actions_adddup2(&actions.a, theirs, 0) != 0 ||
        ::posix_spawn_file_actions_adddup2(&actions.a, theirs, 1) != 0)
        return fail("posix_spawn_file_actions", ENOMEM);
    // ssh runs it through the user's shell, with exec so the shell does not linger.
    const char* env_shell = std::getenv("SHELL");
    const std::string shell = env_shell && *env_shell ? env_shell : "/bin/sh";
    const std::string line = "exec " + command;
    const char* argv[] = {shell.c_str(), "-c", line.c_str(), nullptr};
    pid_t pid = -1;
    if (int e = ::posix_spawn(&pid, shell.c_str(), &actions.a, nullptr,
                              const_cast<char* const*>(argv), environ);
        e != 0)
        return fail("spawning " + shell, e);
    ::close(theirs);
    spdlog::debug("ProxyCommand started (pid {}): {}", pid, core::log_text(command, 200));
    return byte_stream{ours, std::make_shared<proxy_process>(pid, command)};
}

asio::awaitable<core::result<byte_stream>> open(std::string command) {
    co_return start(command);
}

}  // namespace

stream_opener proxy_command_opener(std::string command) {
    return
        [command = std::move(command)](
            asio::any_io_executor, std::chrono::steady_clock::time_point) { return open(command); };
}

}  // namespace tunnel::ssh
