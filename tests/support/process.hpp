// Local processes and temp dirs for tests: run a program to completion with
// captured output and a deadline, or keep one running in the background.
// No shell anywhere: argv goes straight to execve (PATH is searched when
// argv[0] has no '/').
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace tunnel::test {

// A directory from mkdtemp under /tmp, removed recursively on destruction.
class temp_dir {
  public:
    [[nodiscard]] static core::result<temp_dir> create(std::string_view prefix = "tunnel-test");

    temp_dir(temp_dir&& other) noexcept;
    temp_dir& operator=(temp_dir&& other) noexcept;
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir();

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    // path() + "/" + name
    [[nodiscard]] std::string file(std::string_view name) const;

  private:
    explicit temp_dir(std::string path) : path_(std::move(path)) {}
    std::string path_;
};

// Small file helpers used by fixtures and tests.
[[nodiscard]] core::result<void> write_text_file(const std::string& path, std::string_view content,
                                                 unsigned mode = 0644);
[[nodiscard]] core::result<std::string> read_text_file(const std::string& path);

// Environment changes applied on top of the current process environment.
struct env_change {
    std::vector<std::pair<std::string, std::string>> set;  // added or overridden
    std::vector<std::string> unset;
};

struct run_options {
    env_change env;
    std::optional<std::string> stdin_text;      // nullopt: stdin is /dev/null
    std::string cwd;                            // empty: inherit
    std::chrono::milliseconds timeout{30'000};  // then SIGKILL to the process group
};

struct run_result {
    int exit_code = -1;   // exit status; 128 + signal when killed; -1 when it never ran
    int term_signal = 0;  // signal that ended it, 0 if it exited
    bool timed_out = false;
    std::string out;  // captured stdout
    std::string err;  // captured stderr (or why it could not start)

    [[nodiscard]] bool ok() const noexcept { return exit_code == 0 && !timed_out; }
    // One line for assertion messages: exit code, timeout, stderr.
    [[nodiscard]] std::string describe() const;
};

// Runs argv to completion (or timeout). The child gets its own process
// group; on timeout the whole group is killed. Never throws for a failing
// program: a program that cannot be started yields exit_code -1 and err.
[[nodiscard]] run_result run(std::vector<std::string> argv, const run_options& options = {});

struct spawn_options {
    env_change env;
    std::string stdout_path;  // empty: /dev/null; else appended to
    std::string stderr_path;  // empty: /dev/null; may equal stdout_path
    std::string cwd;
};

// A background child in its own process group. Move-only; the destructor
// terminates the group (SIGTERM, SIGKILL after 2 s) and reaps the child.
// Sanitizer reports of a child fail the test once it is reaped
// (support/sanitizer_reports.hpp).
class child_process {
  public:
    child_process(child_process&& other) noexcept;
    child_process& operator=(child_process&& other) noexcept;
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;
    ~child_process();

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    // False once the child has exited (reaps it if so).
    [[nodiscard]] bool running();
    // Exit status as run_result::exit_code once exited, nullopt while running.
    [[nodiscard]] std::optional<int> exit_code();
    // Waits up to timeout for the child to exit by itself.
    [[nodiscard]] std::optional<int> wait(std::chrono::milliseconds timeout);
    // Sends sig to the child's process group.
    void signal(int sig) const;
    // SIGTERM to the group, SIGKILL after grace; reaps. Returns the exit code.
    int terminate(std::chrono::milliseconds grace = std::chrono::milliseconds{2'000});

  private:
    friend core::result<child_process> spawn(std::vector<std::string> argv,
                                             const spawn_options& options);
    child_process(pid_t pid, std::string program) : pid_(pid), program_(std::move(program)) {}
    // Records the exit status and fails the test on the child's sanitizer reports.
    void reaped(int status);

    pid_t pid_ = -1;
    std::string program_;
    std::optional<int> exit_code_;
};

[[nodiscard]] core::result<child_process> spawn(std::vector<std::string> argv,
                                                const spawn_options& options = {});

}  // namespace tunnel::test
