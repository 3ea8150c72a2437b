#include "usage/usage_client.hpp"

#include <fmt/format.h>

#include "core/beast.hpp"

namespace tunnel::usage {

core::result<admin_url> parse_admin_url(std::string_view text) {
    auto bad = [&](std::string_view why) {
        return core::fail(core::errc::invalid_argument,
                          fmt::format("--relay {:?}: {}; give the relay's admin listener as "
                                      "http://HOST:PORT (its admin_listen)",
                                      text.substr(0, 80), why));
    };
    std::string_view s = text;
    if (s.rfind("https://", 0) == 0) return bad("the admin listener speaks plain HTTP");
    if (s.rfind("http://", 0) == 0) s.remove_prefix(7);
    if (!s.empty() && s.back() == '/') s.remove_suffix(1);
    if (s.find('/') != std::string_view::npos) return bad("a path is not expected");
    admin_url u;
    std::size_t colon = std::string_view::npos;
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find(']');
        if (close == std::string_view::npos) return bad("an unclosed '['");
        u.host = std::string(s.substr(1, close - 1));
        if (close + 1 < s.size() && s[close + 1] == ':')
            colon = close + 1;
        else if (close + 1 != s.size())
            return bad("text after ']'");
    } else {
        colon = s.rfind(':');
        u.host = std::string(s.substr(0, colon));
    }
    if (u.host.empty()) return bad("no host");
    if (colon == std::string_view::npos) return bad("no port");
    u.port = std::string(s.substr(colon + 1));
    if (u.port.empty() || u.port.size() > 5 ||
        u.port.find_first_not_of("0123456789") != std::string::npos || std::stoi(u.port) == 0 ||
        std::stoi(u.port) > 65535)
        return bad("the port must be a number from 1 to 65535");
    return u;
}

namespace {

core::result<admin_reply> admin_call(const admin_url& url, beast::http::verb verb,
                                     const std::string& target, const std::string* body,
                                     const std::string& token, std::chrono::milliseconds timeout) {
    namespace http = beast::http;
    asio::io_context io;
    beast::tcp_stream stream(io);
    beast::flat_buffer buffer;
    http::request<http::string_body> req{verb, target, 11};
    if (body) {
        req.set(http::field::content_type, "application/json");
        req.body() = *body;
        req.prepare_payload();
    }
    const bool v6 = url.host.find(':') != std::string::npos;
    req.set(http::field::host, v6 ? fmt::format("[{}]:{}", url.host, url.port)
                                  : fmt::format("{}:{}", url.host, url.port));
    req.set(http::field::user_agent, "tunnel-usage");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t{64} << 20);
    boost::system::error_code failed;
    std::string step = "resolving";
    asio::ip::tcp::resolver resolver(io);
    stream.expires_after(timeout);
    resolver.async_resolve(url.host, url.port, [&](auto ec, auto results) {
        if (ec) return void(failed = ec);
        step = "connecting";
        stream.async_connect(results, [&](auto ec2, auto) {
            if (ec2) return void(failed = ec2);
            step = "sending the request";
            http::async_write(stream, req, [&](auto ec3, auto) {
                if (ec3) return void(failed = ec3);
                step = "reading the answer";
                http::async_read(stream, buffer, parser, [&](auto ec4, auto) {
                    if (ec4) failed = ec4;
                });
            });
        });
    });
    io.run_for(timeout + std::chrono::seconds(1));
    const std::string where = fmt::format("{}:{}", url.host, url.port);
    if (!io.stopped())
        return core::fail(core::errc::timeout, fmt::format("{}: no answer within {} ms while {}",
                                                           where, timeout.count(), step));
    if (failed)
        return core::fail(
            failed == beast::error::timeout ? core::errc::timeout : core::errc::connection_failed,
            fmt::format("{}: {} failed: {}", where, step, failed.message()));
    admin_reply out;
    const auto& res = parser.get();
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    out.body = res.body();
    return out;
}

}  // namespace

core::result<admin_reply> admin_get(const admin_url& url, const std::string& target,
                                    const std::string& token, std::chrono::milliseconds timeout) {
    return admin_call(url, beast::http::verb::get, target, nullptr, token, timeout);
}

core::result<admin_reply> admin_post(const admin_url& url, const std::string& target,
                                     const std::string& json_body, const std::string& token,
                                     std::chrono::milliseconds timeout) {
    return admin_call(url, beast::http::verb::post, target, &json_body, token, timeout);
}

}  // namespace tunnel::usage
