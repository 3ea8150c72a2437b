#include "support/process.hpp"

#include "support/sanitizer_reports.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

extern char** environ;

namespace tunnel::test {
namespace {

using clock = std::chrono::steady_clock;

std::string errno_text(int err) {
    return std::strerror(err);
}

// Owns one file descriptor.
class fd_guard {
  public:
    fd_guard() = default;
    explicit fd_guard(int fd) : fd_(fd) {}
    fd_guard(fd_guard&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    fd_guard& operator=(fd_guard&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
    void reset() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

  private:
    int fd_ = -1;
};

core::result<std::pair<fd_guard, fd_guard>> make_pipe() {
    std::array<int, 2> fds{};
    if (::pipe2(fds.data(), O_CLOEXEC) != 0)
        return core::fail(core::errc::io_error, "pipe2: " + errno_text(errno));
    return std::pair{fd_guard(fds[0]), fd_guard(fds[1])};
}

void set_nonblocking(int fd) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// Writing to a pipe whose reader has gone must not kill the test runner.
void ignore_sigpipe_once() {
    static std::once_flag once;
    std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

int exit_code_from_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

// Everything execve needs, prepared before fork: the child may only call
// async-signal-safe functions.
struct exec_plan {
    std::string path;
    std::vector<std::string> argv;
    std::vector<std::string> env;
    std::vector<char*> argv_ptrs;
    std::vector<char*> env_ptrs;
};

std::string lookup_env(const std::vector<std::string>& env, std::string_view name) {
    for (const auto& entry : env) {
        if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 &&
            entry[name.size()] == '=')
            return entry.substr(name.size() + 1);
    }
    return {};
}

core::result<exec_plan> make_plan(std::vector<std::string> argv, const env_change& change) {
    if (argv.empty()) return core::fail(core::errc::invalid_argument, "empty argv");
    exec_plan plan;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        std::string_view text(*entry);
        const auto name = text.substr(0, text.find('='));
        bool replaced = false;
        for (const auto& unset : change.unset) replaced = replaced || unset == name;
        for (const auto& [key, value] : change.set) replaced = replaced || key == name;
        if (!replaced) plan.env.emplace_back(text);
    }
    for (const auto& [key, value] : change.set) plan.env.push_back(key + "=" + value);
    route_sanitizer_reports(plan.env);

    if (argv[0].find('/') != std::string::npos) {
        plan.path = argv[0];
    } else {
        std::string search = lookup_env(plan.env, "PATH");
        if (search.empty()) search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        std::istringstream dirs(search);
        for (std::string dir; std::getline(dirs, dir, ':');) {
            const auto candidate = (dir.empty() ? std::string(".") : dir) + "/" + argv[0];
            if (::access(candidate.c_str(), X_OK) == 0) {
                plan.path = candidate;
                break;
            }
        }
        if (plan.path.empty())
            return core::fail(core::errc::not_found, argv[0] + ": not found in PATH");
    }
    plan.argv = std::move(argv);
    for (auto& arg : plan.argv) plan.argv_ptrs.push_back(arg.data());
    plan.argv_ptrs.push_back(nullptr);
    for (auto& entry : plan.env) plan.env_ptrs.push_back(entry.data());
    plan.env_ptrs.push_back(nullptr);
    return plan;
}

// Runs in the forked child: async-signal-safe calls only.
[[noreturn]] void exec_child(const exec_plan& plan, int in_fd, int out_fd, int err_fd,
                             const char* cwd, int report_fd) {
    ::setpgid(0, 0);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);

    int stage_errno[2] = {0, 0};
    auto fail = [&](int stage) {
        stage_errno[0] = stage;
        stage_errno[1] = errno;
        [[maybe_unused]] auto n = ::write(report_fd, stage_errno, sizeof stage_errno);
        ::_exit(127);
    };
    if (::dup2(in_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) fail(1);
    // Leak no descriptor of the test process into the child.
    if (report_fd > 3) ::close_range(3, static_cast<unsigned>(report_fd) - 1, 0);
    ::close_range(static_cast<unsigned>(report_fd) + 1, ~0U, 0);
    if (cwd != nullptr && ::chdir(cwd) != 0) fail(2);
    ::execve(plan.path.c_str(), plan.argv_ptrs.data(), plan.env_ptrs.data());
    fail(3);
    ::_exit(127);
}

// Forks and execs; returns the pid once execve succeeded.
core::result<pid_t> start_child(const exec_plan& plan, int in_fd, int out_fd, int err_fd,
                                const std::string& cwd) {
    ignore_sigpipe_once();
    auto report = make_pipe();
    if (!report) return tl::unexpected(report.error());
    const pid_t pid = ::fork();
    if (pid < 0) return core::fail(core::errc::io_error, "fork: " + errno_text(errno));
    if (pid == 0)
        exec_child(plan, in_fd, out_fd, err_fd, cwd.empty() ? nullptr : cwd.c_str(),
                   report->second.get());
    ::setpgid(pid, pid);  // also from the parent: no window where signals miss the group
    report->second.reset();
    int stage_errno[2] = {0, 0};
    ssize_t n = 0;
    do {
        n = ::read(report->first.get(), stage_errno, sizeof stage_errno);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof stage_errno)) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        static constexpr std::array<const char*, 4> stages = {"?", "dup2", "chdir", "execve"};
        const auto stage = stage_errno[0] >= 0 && stage_errno[0] < 4 ? stage_errno[0] : 0;
        return core::fail(stage_errno[1] == ENOENT ? core::errc::not_found : core::errc::io_error,
                          std::string(stages[static_cast<std::size_t>(stage)]) + " " + plan.path +
                              ": " + errno_text(stage_errno[1]));
    }
    return pid;
}

// Waits for pid to exit until deadline; returns its wait status.
std::optional<int> wait_until(pid_t pid, clock::time_point deadline) {
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    for (;;) {
        int status = 0;
        const pid_t got = ::waitpid(pid, &status, WNOHANG);
        if (got == pid) {
            if (pidfd >= 0) ::close(pidfd);
            return status;
        }
        if (got < 0 && errno != EINTR) {
            if (pidfd >= 0) ::close(pidfd);
            return std::nullopt;
        }
        const auto now = clock::now();
        if (now >= deadline) {
            if (pidfd >= 0) ::close(pidfd);
            return std::nullopt;
        }
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
        if (pidfd >= 0) {
            pollfd p{pidfd, POLLIN, 0};
            ::poll(&p, 1, static_cast<int>(left));
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(std::min<long long>(left, 5)));
        }
    }
}

void remove_tree(const std::string& path) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
}

}  // namespace

// ---- temp_dir ------------------------------------------------------------

core::result<temp_dir> temp_dir::create(std::string_view prefix) {
    std::string pattern = "/tmp/" + std::string(prefix) + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr)
        return core::fail(core::errc::io_error, "mkdtemp " + pattern + ": " + errno_text(errno));
    return temp_dir(std::move(pattern));
}

temp_dir::temp_dir(temp_dir&& other) noexcept : path_(std::exchange(other.path_, {})) {}

temp_dir& temp_dir::operator=(temp_dir&& other) noexcept {
    if (this != &other) {
        if (!path_.empty()) remove_tree(path_);
        path_ = std::exchange(other.path_, {});
    }
    return *this;
}

temp_dir::~temp_dir() {
    if (!path_.empty()) remove_tree(path_);
}

std::string temp_dir::file(std::string_view name) const {
    return path_ + "/" + std::string(name);
}

core::result<void> write_text_file(const std::string& path, std::string_view content,
                                   unsigned mode) {
    fd_guard fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd.valid())
        return core::fail(core::errc::io_error, "open " + path + ": " + errno_text(errno));
    ::fchmod(fd.get(), mode);  // umask and pre-existing files must not change the mode
    while (!content.empty()) {
        const ssize_t n = ::write(fd.get(), content.data(), content.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return core::fail(core::errc::io_error, "write " + path + ": " + errno_text(errno));
        content.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

core::result<std::string> read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return core::fail(core::errc::not_found, "cannot open " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// ---- run -----------------------------------------------------------------

std::string run_result::describe() const {
    std::string text = "exit " + std::to_string(exit_code);
    if (timed_out) text += " (timed out)";
    if (!err.empty()) text += ", stderr: " + err;
    return text;
}

run_result run(std::vector<std::string> argv, const run_options& options) {
    run_result result;
    auto plan = make_plan(std::move(argv), options.env);
    if (!plan) {
        result.err = plan.error().message;
        return result;
    }
    auto out_pipe = make_pipe();
    auto err_pipe = make_pipe();
    if (!out_pipe || !err_pipe) {
        result.err = "cannot create pipes";
        return result;
    }
    fd_guard stdin_read;
    fd_guard stdin_write;
    if (options.stdin_text) {
        auto in_pipe = make_pipe();
        if (!in_pipe) {
            result.err = in_pipe.error().message;
            return result;
        }
        stdin_read = std::move(in_pipe->first);
        stdin_write = std::move(in_pipe->second);
    } else {
        stdin_read = fd_guard(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    }

    const auto started = start_child(*plan, stdin_read.get(), out_pipe->second.get(),
                                     err_pipe->second.get(), options.cwd);
    stdin_read.reset();
    out_pipe->second.reset();
    err_pipe->second.reset();
    if (!started) {
        result.err = started.error().message;
        return result;
    }
    const pid_t pid = *started;

    fd_guard out_read = std::move(out_pipe->first);
    fd_guard err_read = std::move(err_pipe->first);
    set_nonblocking(out_read.get());
    set_nonblocking(err_read.get());
    std::string_view pending_in;
    if (stdin_write.valid()) {
        set_nonblocking(stdin_write.get());
        pending_in = *options.stdin_text;
        if (pending_in.empty()) stdin_write.reset();
    }

    const auto deadline = clock::now() + options.timeout;
    std::optional<int> status;
    // Once the child has exited, a grandchild may still hold the pipes:
    // read for a short while longer, then stop.
    std::optional<clock::time_point> linger_until;
    std::array<char, 65536> buffer{};

    auto drain = [&](fd_guard& fd, std::string& into) {
        for (;;) {
            const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
            if (n > 0) {
                into.append(buffer.data(), static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return;
            fd.reset();  // EOF or error
            return;
        }
    };

    while (out_read.valid() || err_read.valid()) {
        const auto now = clock::now();
        if (now >= deadline) {
            ::kill(-pid, SIGKILL);
            result.timed_out = true;
            break;
        }
        if (linger_until && now >= *linger_until) break;
        std::array<pollfd, 3> fds{};
        nfds_t count = 0;
        if (out_read.valid()) fds[count++] = {out_read.get(), POLLIN, 0};
        if (err_read.valid()) fds[count++] = {err_read.get(), POLLIN, 0};
        if (stdin_write.valid()) fds[count++] = {stdin_write.get(), POLLOUT, 0};
        auto wait_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
        wait_ms = std::min<long long>(wait_ms, 50);  // also notice the child's exit
        ::poll(fds.data(), count, static_cast<int>(wait_ms));

        for (nfds_t i = 0; i < count; ++i) {
            if (fds[i].revents == 0) continue;
            if (fds[i].fd == out_read.get()) {
                drain(out_read, result.out);
            } else if (fds[i].fd == err_read.get()) {
                drain(err_read, result.err);
            } else if (fds[i].fd == stdin_write.get()) {
                if ((fds[i].revents & (POLLERR | POLLHUP)) != 0) {
                    stdin_write.reset();
                    continue;
                }
                const ssize_t n = ::write(stdin_write.get(), pending_in.data(), pending_in.size());
                if (n > 0) pending_in.remove_prefix(static_cast<std::size_t>(n));
                if ((n < 0 && errno != EAGAIN && errno != EINTR) || pending_in.empty())
                    stdin_write.reset();
            }
        }
        if (!status) {
            int raw = 0;
            if (::waitpid(pid, &raw, WNOHANG) == pid) {
                status = raw;
                linger_until = clock::now() + std::chrono::milliseconds(200);
            }
        }
    }
    if (out_read.valid()) drain(out_read, result.out);
    if (err_read.valid()) drain(err_read, result.err);
    stdin_write.reset();

    if (!status) {
        int raw = 0;
        while (::waitpid(pid, &raw, 0) < 0 && errno == EINTR) {
        }
        status = raw;
    }
    result.exit_code = exit_code_from_status(*status);
    result.term_signal = WIFSIGNALED(*status) ? WTERMSIG(*status) : 0;
    check_sanitizer_reports(pid, plan->path);
    return result;
}

// ---- spawn ---------------------------------------------------------------

core::result<child_process> spawn(std::vector<std::string> argv, const spawn_options& options) {
    auto plan = make_plan(std::move(argv), options.env);
    if (!plan) return tl::unexpected(plan.error());

    auto open_output = [](const std::string& path) {
        if (path.empty()) return fd_guard(::open("/dev/null", O_WRONLY | O_CLOEXEC));
        return fd_guard(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    };
    fd_guard in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    fd_guard out = open_output(options.stdout_path);
    fd_guard err = options.stderr_path == options.stdout_path ? fd_guard(::dup(out.get()))
                                                              : open_output(options.stderr_path);
    if (!in.valid() || !out.valid() || !err.valid())
        return core::fail(core::errc::io_error,
                          "cannot open output files for " + plan->path + ": " + errno_text(errno));
    auto pid = start_child(*plan, in.get(), out.get(), err.get(), options.cwd);
    if (!pid) return tl::unexpected(pid.error());
    return child_process(*pid, plan->path);
}

child_process::child_process(child_process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      program_(std::move(other.program_)),
      exit_code_(std::exchange(other.exit_code_, std::nullopt)) {}

child_process& child_process::operator=(child_process&& other) noexcept {
    if (this != &other) {
        if (pid_ > 0) terminate();
        pid_ = std::exchange(other.pid_, -1);
        program_ = std::move(other.program_);
        exit_code_ = std::exchange(other.exit_code_, std::nullopt);
    }
    return *this;
}

child_process::~child_process() {
    if (pid_ > 0) terminate();
}

bool child_process::running() {
    return !exit_code().has_value();
}

std::optional<int> child_process::exit_code() {
    if (exit_code_ || pid_ <= 0) return exit_code_;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) reaped(status);
    return exit_code_;
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
    if (exit_code_ || pid_ <= 0) return exit_code_;
    if (const auto status = wait_until(pid_, clock::now() + timeout)) reaped(*status);
    return exit_code_;
}

void child_process::reaped(int status) {
    exit_code_ = exit_code_from_status(status);
    check_sanitizer_reports(pid_, program_);
}

void child_process::signal(int sig) const {
    // Once reaped the pid may be reused: never signal it again.
    if (pid_ > 0 && !exit_code_) ::kill(-pid_, sig);
}

int child_process::terminate(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return -1;
    if (running()) {
        signal(SIGTERM);
        if (!wait(grace)) {
            signal(SIGKILL);
            static_cast<void>(wait(std::chrono::hours(1)));
        }
    }
    return exit_code_.value_or(-1);
}

}  // namespace tunnel::test
