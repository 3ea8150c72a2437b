#include "transport/http_connect.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "core/encoding.hpp"
#include "core/log_text.hpp"
#include "core/secret_file.hpp"
#include "ssh/tcp_connect.hpp"

namespace tunnel::transport {

namespace {

constexpr std::size_t max_head = 8 * 1024;
constexpr std::size_t max_credentials = 1024;

// Credentials (and the request holding them) do not linger in freed memory.
void wipe(std::string& s) {
    if (!s.empty()) ::explicit_bzero(s.data(), s.size());
    s.clear();
}

struct wiped {
    std::string& s;
    ~wiped() { wipe(s); }
};

// Waits until `fd` is ready for `what` or the deadline passes.
asio::awaitable<bool> wait_ready(asio::posix::stream_descriptor& d,
                                 asio::posix::descriptor_base::wait_type what,
                                 std::chrono::steady_clock::time_point deadline) {
    asio::steady_timer timer(d.get_executor());
    timer.expires_at(deadline);
    bool expired = false;
    timer.async_wait([&](boost::system::error_code ec) {
        if (!ec) {
            expired = true;
            boost::system::error_code ignored;
            d.cancel(ignored);
        }
    });
    boost::system::error_code ec;
    co_await d.async_wait(what, asio::redirect_error(asio::use_awaitable, ec));
    timer.cancel();
    co_return !ec && !expired;
}

asio::awaitable<core::result<ssh::byte_stream>> open_through(
    asio::any_io_executor executor, std::chrono::steady_clock::time_point deadline,
    std::string proxy_host, uint16_t proxy_port, std::string host, uint16_t port,
    proxy_credentials_source source) {
    const auto proxy = fmt::format("HTTP proxy {}:{}", proxy_host, proxy_port);
    // Read at each connection: a rotated file is picked up without a restart.
    auto credentials = read_proxy_credentials(source);
    if (!credentials)
        co_return core::fail(credentials.error().code,
                             fmt::format("{}: {}", proxy, credentials.error().message));
    const wiped credentials_wiped{*credentials};
    auto fd = co_await ssh::tcp_connect(executor, proxy_host, proxy_port, deadline);
    if (!fd)
        co_return core::fail(fd.error().code, fmt::format("{}: {}", proxy, fd.error().message));
    asio::posix::stream_descriptor d(executor, *fd);
    auto fail = [&](core::errc code, std::string why) -> core::result<ssh::byte_stream> {
        d.close();
        return core::fail(code, fmt::format("{}: {}", proxy, why));
    };
    const auto from = credentials->empty() ? std::string() : describe(source);
    auto request = connect_request(host, port, *credentials);
    const wiped request_wiped{request};
    std::size_t sent = 0;
    while (sent < request.size()) {
        const auto n = ::send(*fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            const bool ready =
                co_await wait_ready(d, asio::posix::descriptor_base::wait_write, deadline);
            if (!ready) co_return fail(core::errc::timeout, "timed out sending CONNECT");
            continue;
        }
        co_return fail(core::errc::connection_failed, "connection lost sending CONNECT");
    }
    // Read the head without reading past it: the SSH server's banner may
    // follow in the same segment, and that belongs to libssh.
    std::string head;
    char buf[1024];
    while (head.find("\r\n\r\n") == std::string::npos) {
        if (head.size() >= max_head)
            co_return fail(core::errc::protocol_error,
                           fmt::format("response head larger than {} bytes", max_head));
        const auto peeked =
            ::recv(*fd, buf, std::min(sizeof buf, max_head - head.size()), MSG_PEEK);
        if (peeked == 0) co_return fail(core::errc::connection_failed, "closed the connection");
        if (peeked < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                const bool ready =
                    co_await wait_ready(d, asio::posix::descriptor_base::wait_read, deadline);
                if (!ready) co_return fail(core::errc::timeout, "no answer to CONNECT in time");
                continue;
            }
            co_return fail(core::errc::connection_failed, "connection lost reading the answer");
        }
        // Take bytes up to the end of the head (searching across the boundary).
        const std::string_view got(buf, static_cast<std::size_t>(peeked));
        std::size_t take = got.size();
        const auto prior = head.size();
        const auto joined = head.substr(prior >= 3 ? prior - 3 : 0) + std::string(got);
        if (auto end = joined.find("\r\n\r\n"); end != std::string::npos)
            take = end + 4 - (prior >= 3 ? 3 : prior);
        const auto n = ::recv(*fd, buf, take, 0);
        if (n <= 0) co_return fail(core::errc::connection_failed, "connection lost");
        head.append(buf, static_cast<std::size_t>(n));
    }
    if (auto ok = check_connect_response(head, from); !ok)
        co_return fail(ok.error().code, ok.error().message);
    d.release();
    co_return ssh::byte_stream{*fd, nullptr};
}

}  // namespace

std::string describe(const proxy_credentials_source& source) {
    if (!source.file.empty()) return fmt::format("proxy_credentials_file {}", source.file);
    if (!source.env.empty()) return fmt::format("environment variable {}", source.env);
    return {};
}

core::result<std::string> read_proxy_credentials(const proxy_credentials_source& source) {
    std::string text;
    const auto where = describe(source);
    if (!source.file.empty()) {
        auto s = core::read_secret_file(source.file, "proxy_credentials_file", 0);
        if (!s) return tl::unexpected(s.error());
        text = std::move(*s);
    } else if (!source.env.empty()) {
        const char* v = std::getenv(source.env.c_str());
        if (!v || !*v)
            return core::fail(core::errc::not_found,
                              fmt::format("{} is not set (it should hold user:password for the "
                                          "proxy, from proxy_credentials_env)",
                                          where));
        text = v;
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' ||
                                 text.back() == '\t'))
            text.pop_back();
    } else {
        return std::string();
    }
    const auto colon = text.find(':');
    const bool control = std::any_of(text.begin(), text.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    });
    std::string why;
    if (text.size() > max_credentials)
        why = fmt::format("longer than {} bytes", max_credentials);
    else if (colon == std::string::npos || colon == 0)
        why = "not user:password (a user, a colon, then the password)";
    else if (control)
        why = "holds control characters (one line of user:password)";
    if (!why.empty()) {
        wipe(text);
        return core::fail(core::errc::invalid_argument, fmt::format("{}: {}", where, why));
    }
    return text;
}

std::string connect_request(std::string_view host, uint16_t port, std::string_view credentials) {
    const bool v6 = host.find(':') != std::string_view::npos;
    const auto authority =
        v6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
    std::string auth;
    if (!credentials.empty())
        auth = fmt::format("Proxy-Authorization: Basic {}\r\n", core::base64_encode(credentials));
    auto request = fmt::format("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\nUser-Agent: tunnel\r\n{1}\r\n",
                               authority, auth);
    wipe(auth);
    return request;
}

core::result<void> check_connect_response(std::string_view head,
                                          std::string_view credentials_from) {
    const auto eol = head.find("\r\n");
    const auto status_line = head.substr(0, eol);
    // "HTTP/1.x NNN reason"
    if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ')
        return core::fail(
            core::errc::protocol_error,
            fmt::format("not an HTTP answer to CONNECT: \"{}\"", core::log_text(status_line, 80)));
    const auto code = status_line.substr(9, 3);
    if (code[0] == '2') return {};
    // 407 is the standard answer; tinyproxy answers wrong credentials with 401.
    const bool auth = code == "407" || code == "401";
    const auto code_errc = auth ? core::errc::auth_failed : core::errc::connection_failed;
    std::string hint;
    if (auth)
        hint = credentials_from.empty()
                   ? " (the proxy wants credentials: set proxy_credentials_file or "
                     "proxy_credentials_env on this transport to user:password)"
                   : fmt::format(" (the proxy refused the user:password from {})",
                                 core::log_text(credentials_from, 200));
    return core::fail(code_errc, fmt::format("refused CONNECT: \"{}\"{}",
                                             core::log_text(status_line, 120), hint));
}

ssh::stream_opener http_connect_opener(std::string proxy_host, uint16_t proxy_port,
                                       std::string target_host, uint16_t target_port,
                                       proxy_credentials_source credentials) {
    return [=](asio::any_io_executor executor, std::chrono::steady_clock::time_point deadline) {
        return open_through(executor, deadline, proxy_host, proxy_port, target_host, target_port,
                            credentials);
    };
}

}  // namespace tunnel::transport
