#include "relay/token_source.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/encoding.hpp"
#include "relay/relay_client.hpp"
#include "transport/websocket_client.hpp"

namespace tunnel::relay {

namespace {

constexpr std::size_t max_token_file_bytes = 16 * 1024;

std::optional<std::pair<std::int64_t, std::int64_t>> stamp_of(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return std::pair<std::int64_t, std::int64_t>{
        static_cast<std::int64_t>(st.st_size),
        static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

std::optional<nlohmann::json> claims_of(std::string_view token) {
    const auto a = token.find('.');
    if (a == std::string_view::npos) return std::nullopt;
    const auto b = token.find('.', a + 1);
    if (b == std::string_view::npos) return std::nullopt;
    auto payload = core::base64url_decode(token.substr(a + 1, b - a - 1));
    if (!payload) return std::nullopt;
    auto j = nlohmann::json::parse(*payload, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    return j;
}

core::error command_error(std::string why) {
    return core::error{core::errc::invalid_argument,
                       fmt::format("--token-command: {}", std::move(why))};
}

struct started_command {
    pid_t pid = -1;
    int out = -1;  // the read end of its stdout
};

// Starts `command` with /bin/sh -c in a process group of its own (a timeout
// kills what it started too), stdin on /dev/null, stdout into a pipe.
core::result<started_command> start_command(const std::string& command, bool nonblocking) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0)) != 0)
        return tl::unexpected(command_error(fmt::format("pipe: {}", std::strerror(errno))));
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(out[0]);
        ::close(out[1]);
        return tl::unexpected(command_error(fmt::format("fork: {}", std::strerror(errno))));
    }
    if (pid == 0) {
        ::setpgid(0, 0);
        ::dup2(out[1], 1);
        const int null = ::open("/dev/null", O_RDONLY);
        if (null >= 0) ::dup2(null, 0);
        ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out[1]);
    return started_command{pid, out[0]};
}

// A finished command's token: in time, exit 0 and one word on stdout.
core::result<std::string> command_result(int status, std::string text, bool timed_out,
                                         bool too_long, std::chrono::milliseconds timeout) {
    const auto fail = [](std::string why) { return tl::unexpected(command_error(std::move(why))); };
    if (timed_out)
        return fail(
            fmt::format("no token within {} ms (killed); check that it does not wait for input",
                        timeout.count()));
    if (too_long) return fail(fmt::format("printed more than {} bytes", max_token_file_bytes));
    if (WIFSIGNALED(status)) return fail(fmt::format("killed by signal {}", WTERMSIG(status)));
    if (WEXITSTATUS(status) != 0)
        return fail(fmt::format("exited with status {}{}", WEXITSTATUS(status),
                                WEXITSTATUS(status) == 127 ? " (command not found?)" : ""));
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return fail("printed nothing; it must print the token");
    const auto last = text.find_last_not_of(" \t\r\n");
    text = text.substr(first, last - first + 1);
    if (text.find_first_of(" \t\r\n") != std::string::npos)
        return fail("printed more than one word; it must print only the token");
    return text;
}

}  // namespace

core::result<token_source> token_source::create(token_source_options options) {
    if (options.file.empty() == options.command.empty())
        return core::fail(core::errc::invalid_argument,
                          options.file.empty()
                              ? "the relay needs a token: pass --token-file FILE or "
                                "--token-command CMD"
                              : "give --token-file or --token-command, not both");
    if (options.command_timeout <= std::chrono::milliseconds(0))
        return core::fail(core::errc::invalid_argument, "the token command's timeout must be > 0");
    return token_source(std::move(options));
}

core::result<std::string> token_source::adopt(std::string token) {
    auto tenant = tenant_of_token(token);
    if (!tenant) return tl::unexpected(tenant.error());
    if (tenant_.empty()) tenant_ = *tenant;
    if (*tenant != tenant_)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("the new token is for tenant '{}', not '{}'; a tunnel keeps "
                                      "its tenant (start another tunnel connect)",
                                      *tenant, tenant_));
    last_ = token;
    return token;
}

core::result<std::string> token_source::fetch() {
    if (is_command()) {
        auto t = run_token_command(options_.command, options_.command_timeout);
        if (!t) return t;
        return adopt(std::move(*t));
    }
    const auto stamp = stamp_of(options_.file);
    auto t = transport::read_token_file(options_.file);
    if (!t) return t;
    stamp_ = stamp;
    return adopt(std::move(*t));
}

asio::awaitable<core::result<std::string>> token_source::fetch_async() {
    if (!is_command()) co_return fetch();  // a small file: read in place
    // The command's output is read on the event loop (the tunnel keeps
    // moving bytes meanwhile); a timer kills it at the timeout.
    auto ex = co_await asio::this_coro::executor;
    auto started = start_command(options_.command, true);
    if (!started) co_return tl::unexpected(started.error());
    const pid_t pid = started->pid;
    child_ = pid;
    asio::posix::stream_descriptor pipe(ex, started->out);
    asio::steady_timer deadline(ex);
    bool timed_out = false;
    deadline.expires_after(options_.command_timeout);
    deadline.async_wait([&timed_out, pid](boost::system::error_code ec) {
        if (ec) return;
        timed_out = true;
        ::kill(-pid, SIGKILL);  // the pipe then ends
    });
    std::string text;
    bool too_long = false;
    for (;;) {
        char buf[4096];
        boost::system::error_code ec;
        const std::size_t n = co_await pipe.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        text.append(buf, n);
        if (text.size() > max_token_file_bytes) {
            too_long = true;
            ::kill(-pid, SIGKILL);
            break;
        }
        if (ec) break;  // end of output (or the kill)
    }
    deadline.cancel();
    pipe.close();
    // Reap it without blocking the loop (it has closed its output: it is
    // ending, or was killed).
    int status = 0;
    asio::steady_timer poll(ex);
    while (::waitpid(pid, &status, WNOHANG) == 0) {
        poll.expires_after(std::chrono::milliseconds(10));
        boost::system::error_code ec;
        co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    child_ = -1;
    if (cancelled_) co_return tl::unexpected(command_error("stopped"));
    auto token =
        command_result(status, std::move(text), timed_out, too_long, options_.command_timeout);
    if (!token) co_return token;
    co_return adopt(std::move(*token));
}

void token_source::cancel() {
    cancelled_ = true;
    if (child_ > 0) ::kill(-child_, SIGKILL);
}

bool token_source::file_changed() const {
    if (is_command() || !stamp_) return false;
    return stamp_of(options_.file) != stamp_;
}

core::result<std::string> token_source::current(std::chrono::seconds margin) {
    if (last_.empty() || file_changed()) return fetch();
    if (const auto exp = token_expiry(last_);
        exp && *exp - margin <= std::chrono::system_clock::now())
        return fetch();
    return last_;
}

std::optional<std::chrono::system_clock::time_point> token_expiry(std::string_view token) {
    auto claims = claims_of(token);
    if (!claims) return std::nullopt;
    auto it = claims->find("exp");
    if (it == claims->end() || !it->is_number()) return std::nullopt;
    const double exp = it->get<double>();
    if (exp < 0 || exp > 7.2e9) return std::nullopt;
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(exp)));
}

std::chrono::seconds renewal_margin(std::string_view token) {
    using namespace std::chrono;
    const auto exp = token_expiry(token);
    if (!exp) return seconds(0);
    auto from = system_clock::now();
    if (auto claims = claims_of(token)) {
        auto it = claims->find("iat");
        if (it != claims->end() && it->is_number())
            from = system_clock::time_point(
                duration_cast<system_clock::duration>(duration<double>(it->get<double>())));
    }
    const auto lifetime = duration_cast<seconds>(*exp - from);
    return std::clamp(lifetime / 4, seconds(1), seconds(300));
}

core::result<std::string> run_token_command(const std::string& command,
                                            std::chrono::milliseconds timeout) {
    auto started = start_command(command, false);
    if (!started) return tl::unexpected(started.error());
    const pid_t pid = started->pid;
    const int out = started->out;
    std::string text;
    bool too_long = false, timed_out = false;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd pf{out, POLLIN, 0};
        const int ready = ::poll(&pf, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
        if (ready <= 0) continue;  // EINTR or not yet
        char buf[4096];
        const ssize_t n = ::read(out, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > max_token_file_bytes) {
            too_long = true;
            break;
        }
    }
    ::close(out);
    if (timed_out || too_long) ::kill(-pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return command_result(status, std::move(text), timed_out, too_long, timeout);
}

}  // namespace tunnel::relay
