#include "cluster/redis_address.hpp"

#include <charconv>

#include <fmt/format.h>

#include "core/log_text.hpp"

namespace tunnel::cluster {

namespace {

constexpr std::string_view direct_scheme = "redis://";
constexpr std::string_view sentinel_scheme = "redis-sentinel://";
constexpr std::size_t max_url = 2048;
constexpr std::size_t max_sentinels = 16;

constexpr std::string_view examples =
    "write redis://[:password@]host:port[/db] (e.g. redis://127.0.0.1:6379/0) or "
    "redis-sentinel://host:port[,host:port...]/master (e.g. "
    "redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster)";

// The URL as it may appear in a message: the user info (password) masked.
std::string masked(std::string_view url) {
    auto scheme_end = url.find("://");
    auto at = url.rfind('@');
    std::string out;
    if (scheme_end != std::string_view::npos && at != std::string_view::npos && at > scheme_end)
        out = fmt::format("{}***{}", url.substr(0, scheme_end + 3), url.substr(at));
    else
        out = std::string(url);
    return core::log_text(out, 200);
}

bool valid_host_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

core::result<redis_endpoint> parse_endpoint(std::string_view text, std::uint16_t default_port,
                                            std::string_view url) {
    redis_endpoint ep;
    std::string_view port_text;
    if (text.starts_with('[')) {
        auto close = text.find(']');
        if (close == std::string_view::npos)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("\"{}\": an IPv6 address needs its closing ']', e.g. "
                                          "redis://[::1]:6379",
                                          masked(url)));
        ep.host = std::string(text.substr(1, close - 1));
        auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':')
                return core::fail(core::errc::invalid_argument,
                                  fmt::format("\"{}\": expected ':port' after ']'", masked(url)));
            port_text = rest.substr(1);
        }
        for (char c : ep.host)
            if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.'))
                return core::fail(core::errc::invalid_argument,
                                  fmt::format("\"{}\": \"{}\" is not an IPv6 address", masked(url),
                                              core::log_text(ep.host, 64)));
    } else {
        auto colon = text.rfind(':');
        ep.host = std::string(text.substr(0, colon));
        if (colon != std::string_view::npos) port_text = text.substr(colon + 1);
        if (ep.host.find(':') != std::string::npos)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("\"{}\": write an IPv6 address in brackets, e.g. "
                                          "redis://[::1]:6379",
                                          masked(url)));
        for (char c : ep.host)
            if (!valid_host_char(c))
                return core::fail(core::errc::invalid_argument,
                                  fmt::format("\"{}\": \"{}\" is not a host name or IP address",
                                              masked(url), core::log_text(ep.host, 64)));
    }
    if (ep.host.empty() || ep.host.size() > 253)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("\"{}\": the host is missing; {}", masked(url), examples));
    if (port_text.empty() && text.find(':') != std::string_view::npos && !text.starts_with('['))
        return core::fail(core::errc::invalid_argument,
                          fmt::format("\"{}\": the port after ':' is missing", masked(url)));
    if (port_text.empty() && text.starts_with('[') && text.ends_with(':'))
        return core::fail(core::errc::invalid_argument,
                          fmt::format("\"{}\": the port after ':' is missing", masked(url)));
    ep.port = default_port;
    if (!port_text.empty()) {
        unsigned port = 0;
        auto [end, ec] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
            port > 65535)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("\"{}\": port \"{}\" must be a number from 1 to 65535",
                                          masked(url), core::log_text(port_text, 16)));
        ep.port = static_cast<std::uint16_t>(port);
    }
    return ep;
}

}  // namespace

core::result<redis_address> parse_redis_address(std::string_view url) {
    if (url.empty())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("the Redis address is empty; {}", examples));
    if (url.size() > max_url)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("the Redis address is longer than {} characters", max_url));
    for (char c : url)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("\"{}\": spaces and control characters are not allowed "
                                          "in a Redis address",
                                          masked(url)));
    redis_address out;
    std::string_view rest;
    if (url.starts_with(direct_scheme)) {
        rest = url.substr(direct_scheme.size());
    } else if (url.starts_with(sentinel_scheme)) {
        out.type = redis_address::kind::sentinel;
        rest = url.substr(sentinel_scheme.size());
    } else if (url.starts_with("rediss://")) {
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("\"{}\": TLS to Redis (rediss://) is not supported (Debian's "
                        "hiredis 0.14 has no TLS); reach Redis over a private network "
                        "or a local TLS tunnel, and write redis://",
                        masked(url)));
    } else {
        return core::fail(core::errc::invalid_argument,
                          fmt::format("\"{}\" is not a Redis address; {}", masked(url), examples));
    }
    if (rest.find('?') != std::string_view::npos || rest.find('#') != std::string_view::npos)
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("\"{}\": query parameters are not supported; {}", masked(url), examples));
    // User info: up to the last '@' (a password may hold '/' or ':').
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        auto info = rest.substr(0, at);
        rest = rest.substr(at + 1);
        auto colon = info.find(':');
        if (colon == std::string_view::npos)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("\"{}\": write the password as :password@ (or "
                                          "user:password@), e.g. redis://:secret@127.0.0.1:6379",
                                          masked(url)));
        out.user = std::string(info.substr(0, colon));
        out.password = std::string(info.substr(colon + 1));
        if (out.password.empty())
            return core::fail(core::errc::invalid_argument,
                              fmt::format("\"{}\": the password after ':' is empty; leave out "
                                          "\":@\" for a server without one",
                                          masked(url)));
    }
    auto slash = rest.find('/');
    auto authority = rest.substr(0, slash);
    std::string_view path =
        slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (authority.empty())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("\"{}\": the host is missing; {}", masked(url), examples));

    if (out.type == redis_address::kind::direct) {
        if (authority.find(',') != std::string_view::npos)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("\"{}\": redis:// takes one server; for several "
                                          "sentinels write redis-sentinel://h1:26379,h2:26379/"
                                          "master",
                                          masked(url)));
        auto ep = parse_endpoint(authority, 6379, url);
        if (!ep) return tl::unexpected(ep.error());
        out.endpoints.push_back(std::move(*ep));
        if (!path.empty()) {
            int db = -1;
            auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), db);
            if (ec != std::errc() || end != path.data() + path.size() || db < 0 || db > 9999)
                return core::fail(core::errc::invalid_argument,
                                  fmt::format("\"{}\": the database after '/' must be a number "
                                              "from 0 (e.g. redis://127.0.0.1:6379/2)",
                                              masked(url)));
            out.db = db;
        }
        return out;
    }

    std::size_t start = 0;
    while (start <= authority.size()) {
        auto comma = authority.find(',', start);
        auto one = authority.substr(
            start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (one.empty())
            return core::fail(core::errc::invalid_argument,
                              fmt::format("\"{}\": an empty sentinel between commas", masked(url)));
        auto ep = parse_endpoint(one, 26379, url);
        if (!ep) return tl::unexpected(ep.error());
        out.endpoints.push_back(std::move(*ep));
        if (out.endpoints.size() > max_sentinels)
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("\"{}\": more than {} sentinels", masked(url), max_sentinels));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    if (path.empty())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("\"{}\": the master's name is missing: write it after '/', "
                                      "as in redis-sentinel://127.0.0.1:26379/mymaster",
                                      masked(url)));
    if (path.size() > 64)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("\"{}\": the master's name is longer than 64", masked(url)));
    for (char c : path)
        if (!valid_host_char(c))
            return core::fail(core::errc::invalid_argument,
                              fmt::format("\"{}\": the master's name may hold A-Z a-z 0-9 . _ - "
                                          "only (no database: the master is always db 0)",
                                          masked(url)));
    out.master = std::string(path);
    return out;
}

std::string describe(const redis_endpoint& endpoint) {
    if (endpoint.host.find(':') != std::string::npos)
        return fmt::format("[{}]:{}", endpoint.host, endpoint.port);
    return fmt::format("{}:{}", endpoint.host, endpoint.port);
}

std::string describe(const redis_address& address) {
    std::string auth;
    if (!address.password.empty()) auth = fmt::format("{}:***@", address.user);
    std::string hosts;
    for (const auto& ep : address.endpoints) {
        if (!hosts.empty()) hosts += ',';
        hosts += describe(ep);
    }
    if (address.type == redis_address::kind::sentinel)
        return fmt::format("redis-sentinel://{}{}/{}", auth, hosts, address.master);
    return fmt::format("redis://{}{}/{}", auth, hosts, address.db);
}

}  // namespace tunnel::cluster
