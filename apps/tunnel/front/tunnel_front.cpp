// tunnel: the program's small front. It links no shared library but libc, so
// it starts in well under a millisecond, where the whole CLI (27 shared
// libraries bound at start, ~6 ms) does not. It does one thing itself: a
// `tunnel exec` while a `tunnel up` runs (docs/link.md, "The fast path") is
// sent to the manager as a command line; the manager reads it as `tunnel
// exec` would, runs it on a warm session, and streams the output back. Any
// other command, or an exec the manager does not take, runs the whole CLI:
// this process becomes it (execv of ../libexec/tunnel/tunnel-cli, the same
// arguments), so nothing ran twice and nothing else differs.
//
// The protocol is the control socket's (link/control_request.hpp and
// link/exec_frames.hpp); the environment it sends is the caller's own, only
// to a manager running as the same user (SO_PEERCRED), and never logged.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "link/control_path.hpp"

#ifndef TUNNEL_FULL_PATH
#error "TUNNEL_FULL_PATH: the whole CLI's path relative to this program's directory"
#endif

extern char** environ;

namespace {

// As the manager's own limits (link/control_request.hpp, link/exec_frames.hpp).
constexpr std::size_t max_request_bytes = 16 * 1024;
constexpr std::size_t max_reply_bytes = 64 * 1024;
constexpr std::size_t max_frame_payload = 1 << 20;
// Set for the CLI when the manager declined this exec (read and removed at
// its start: apps/tunnel/cli_common.hpp, manager_declined()).
constexpr const char* declined_variable = "TUNNEL_MANAGER_DECLINED";
// How long the manager may take to say whether it runs the command (the CLI's
// own wait, link/exec_client.cpp).
constexpr int reply_timeout_ms = 10'000;

class fd_guard {
  public:
    explicit fd_guard(int fd) : fd_(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    [[nodiscard]] int get() const noexcept { return fd_; }

  private:
    int fd_;
};

void write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return;  // the reader went away; the exit status still comes
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// Reads what is there (waiting up to `timeout_ms`, -1: no bound) onto `into`;
// false at EOF, on an error or on the timeout.
bool read_more(int fd, std::string& into, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    for (;;) {
        const int r = ::poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        break;
    }
    char chunk[64 * 1024];
    for (;;) {
        const ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        into.append(chunk, static_cast<std::size_t>(n));
        return true;
    }
}

// A connection to a manager of our own user at `path`, or -1.
int connect_manager(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return -1;
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return -1;
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ucred peer{};
    socklen_t len = sizeof peer;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.uid != ::getuid()) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// {"cmd":"exec","args":[...],"cwd":"...","env":{...}} and a newline; nullopt
// when it does not fit a control line or is not UTF-8 (the CLI sends it then).
std::optional<std::string> request_line(int argc, char** argv) {
    nlohmann::json args = nlohmann::json::array();
    for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
    nlohmann::json env = nlohmann::json::object();
    for (char** e = environ; e && *e; ++e) {
        const std::string_view entry = *e;
        const auto eq = entry.find('=');
        if (eq == std::string_view::npos || eq == 0) continue;
        env[std::string(entry.substr(0, eq))] = std::string(entry.substr(eq + 1));
    }
    char cwd[4096];
    if (!::getcwd(cwd, sizeof cwd)) return std::nullopt;
    nlohmann::json req{
        {"cmd", "exec"}, {"args", std::move(args)}, {"cwd", cwd}, {"env", std::move(env)}};
    std::string line;
    try {
        line = req.dump();  // strict: throws on bytes that are not UTF-8
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
    if (line.size() > max_request_bytes) return std::nullopt;
    line += '\n';
    // Stdin EOF at once: `tunnel exec` without --stdin sends the command none.
    line.append("e\0\0\0\0", 5);
    return line;
}

// The exit code and message of a JSON object that carries them.
int finish(const nlohmann::json& j) {
    if (auto m = j.find("message"); m != j.end() && m->is_string())
        write_all(2, m->get<std::string>() + "\n");
    if (auto c = j.find("exit_code"); c != j.end() && c->is_number_integer()) {
        const int code = c->get<int>();
        if (code >= 0 && code <= 255) return code;
    }
    return 255;
}

int fail(std::string_view message) {
    write_all(2, std::string("tunnel: ") + std::string(message) + "\n");
    return 255;
}

// The command's frames until its end: its exit code.
int stream(int fd, std::string buffer) {
    for (;;) {
        while (buffer.size() >= 5) {
            const auto byte = [&](std::size_t i) {
                return static_cast<std::uint32_t>(static_cast<unsigned char>(buffer[i]));
            };
            const std::uint32_t n = (byte(1) << 24) | (byte(2) << 16) | (byte(3) << 8) | byte(4);
            if (n > max_frame_payload) return fail("the manager sent an oversized frame");
            if (buffer.size() < 5 + n) break;
            const char type = buffer[0];
            const std::string_view payload(buffer.data() + 5, n);
            if (type == 'o') {
                write_all(1, payload);
            } else if (type == 'r') {
                write_all(2, payload);
            } else if (type == 'x') {
                auto end = nlohmann::json::parse(payload, nullptr, false);
                if (!end.is_object()) return fail("the manager's exit frame is not a JSON object");
                return finish(end);
            } else {
                return fail("the manager sent a frame of unknown type");
            }
            buffer.erase(0, 5 + n);
        }
        if (!read_more(fd, buffer, -1))
            return fail("`tunnel up` went away while running the command; it may have run partly");
    }
}

// The exec through the manager; nullopt when it did not take it (nothing
// ran): the whole CLI then runs it.
std::optional<int> through_manager(int argc, char** argv) {
    const auto path = tunnel::link::pooled_control_path();
    if (!path) return std::nullopt;
    const fd_guard fd(connect_manager(*path));
    if (fd.get() < 0) return std::nullopt;
    const auto line = request_line(argc, argv);
    if (!line || !send_all(fd.get(), *line)) return std::nullopt;
    std::string buffer;
    std::size_t eol = std::string::npos;
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(reply_timeout_ms);
    while ((eol = buffer.find('\n')) == std::string::npos) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              until - std::chrono::steady_clock::now())
                              .count();
        if (left <= 0 || buffer.size() > max_reply_bytes ||
            !read_more(fd.get(), buffer, static_cast<int>(left)))
            return std::nullopt;  // no answer: as the CLI, run it ourselves
    }
    auto reply = nlohmann::json::parse(std::string_view(buffer).substr(0, eol), nullptr, false);
    if (!reply.is_object()) return std::nullopt;
    const auto ok = reply.find("ok");
    if (ok == reply.end() || !ok->is_boolean() || !ok->get<bool>()) {
        // A refusal ran nothing; one that may have started says what to print.
        if (reply.contains("exit_code")) return finish(reply);
        // The link is down, refuses pooled execs, or none matches: the CLI
        // would be told the same after the same wait, so it does not ask.
        if (auto f = reply.find("fallback"); f != reply.end() && f->is_boolean() && f->get<bool>())
            ::setenv(declined_variable, "1", 1);
        return std::nullopt;
    }
    return stream(fd.get(), buffer.substr(eol + 1));
}

// This process becomes the whole CLI, with the same arguments; argv[0] is
// this program's absolute path, which the CLI names where it writes its own
// path down (a systemd unit from `tunnel up --install-unit`).
int run_full(char** argv) {
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return fail("cannot find this program's path in /proc/self/exe");
    self[n] = '\0';
    std::string path(self, static_cast<std::size_t>(n));
    path.erase(path.rfind('/') + 1);
    path += TUNNEL_FULL_PATH;
    argv[0] = self;
    ::execv(path.c_str(), argv);
    return fail(std::string("cannot run ") + path + ": " + std::strerror(errno) +
                " (the installation is incomplete: reinstall tunnel)");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 3 && std::string_view(argv[1]) == "exec")
        if (auto code = through_manager(argc, argv)) return *code;
    return run_full(argv);
}
