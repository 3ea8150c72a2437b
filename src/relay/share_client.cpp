#include "relay/share_client.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/beast.hpp"
#include "core/run_until_done.hpp"

namespace tunnel::relay {

namespace {

namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

constexpr std::size_t max_reply_bytes = 1 << 20;

bool is_ip_literal(const std::string& host) {
    unsigned char buf[16];
    return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

http::request<http::string_body> make_request(const share_client_options& o,
                                              std::string_view method, std::string_view target,
                                              std::string_view body) {
    http::request<http::string_body> req;
    req.method_string(beast::string_view(method.data(), method.size()));
    req.target(beast::string_view(target.data(), target.size()));
    req.version(11);
    req.set(http::field::host, o.relay.host_header());
    req.set(http::field::authorization, "Bearer " + o.token);
    req.set(http::field::user_agent, "tunnel-share");
    req.set(http::field::accept, "application/json");
    req.keep_alive(false);
    if (!body.empty()) {
        req.set(http::field::content_type, "application/json");
        req.body() = std::string(body);
    }
    req.prepare_payload();
    return req;
}

template <class Stream>
asio::awaitable<core::result<share_reply>> exchange(Stream& stream,
                                                    http::request<http::string_body>& req,
                                                    const std::string& where) {
    error_code ec;
    co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
        co_return core::fail(core::errc::connection_failed,
                             fmt::format("sending to {} failed: {}", where, ec.message()));
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(max_reply_bytes);
    co_await http::async_read(stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec == beast::error::timeout)
        co_return core::fail(core::errc::timeout,
                             fmt::format("{} did not answer in time (--timeout)", where));
    if (ec)
        co_return core::fail(
            core::errc::protocol_error,
            fmt::format("reading the answer of {} failed: {}", where, ec.message()));
    share_reply reply;
    reply.status = parser.get().result_int();
    reply.body = std::move(parser.get().body());
    co_return reply;
}

asio::awaitable<core::result<share_reply>> call(const share_client_options& o,
                                                std::string_view method, std::string_view target,
                                                std::string_view body) {
    auto ex = co_await asio::this_coro::executor;
    const std::string where = fmt::format("the relay at {}{}", o.relay.tls ? "https://" : "http://",
                                          o.relay.host_header());
    const auto deadline = std::chrono::steady_clock::now() + o.timeout;
    tcp::resolver resolver(ex);
    error_code ec;
    auto endpoints = co_await resolver.async_resolve(o.relay.host, std::to_string(o.relay.port),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
        co_return core::fail(core::errc::connection_failed,
                             fmt::format("cannot resolve {}: {}", o.relay.host, ec.message()));
    beast::tcp_stream tcp_stream(ex);
    tcp_stream.expires_at(deadline);
    co_await tcp_stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
        co_return core::fail(
            ec == beast::error::timeout ? core::errc::timeout : core::errc::connection_failed,
            fmt::format("cannot connect to {}: {}", where, ec.message()));
    auto req = make_request(o, method, target, body);
    if (!o.relay.tls) {
        auto r = co_await exchange(tcp_stream, req, where);
        co_return r;
    }
    ssl::context ctx(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    ctx.set_default_verify_paths(ec);
    if (o.ca_file) {
        ctx.load_verify_file(*o.ca_file, ec);
        if (ec)
            co_return core::fail(
                core::errc::invalid_argument,
                fmt::format("cannot load --ca-file {}: {}", *o.ca_file, ec.message()));
    }
    ctx.set_verify_mode(o.insecure ? ssl::verify_none : ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> tls(std::move(tcp_stream), ctx);
    SSL* native = tls.native_handle();
    if (!is_ip_literal(o.relay.host)) SSL_set_tlsext_host_name(native, o.relay.host.c_str());
    if (!o.insecure) {
        X509_VERIFY_PARAM* param = SSL_get0_param(native);
        if (is_ip_literal(o.relay.host))
            X509_VERIFY_PARAM_set1_ip_asc(param, o.relay.host.c_str());
        else
            X509_VERIFY_PARAM_set1_host(param, o.relay.host.c_str(), 0);
    }
    co_await tls.async_handshake(ssl::stream_base::client,
                                 asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        const long verify = SSL_get_verify_result(native);
        if (verify != X509_V_OK)
            co_return core::fail(
                core::errc::host_key_unknown,
                fmt::format("the TLS certificate of {} is not trusted: {}; pass the relay's CA "
                            "with --ca-file FILE",
                            where, X509_verify_cert_error_string(verify)));
        co_return core::fail(core::errc::connection_failed,
                             fmt::format("TLS handshake with {} failed: {}", where, ec.message()));
    }
    auto r = co_await exchange(tls, req, where);
    co_return r;
}

}  // namespace

core::result<transport::ws_url> parse_relay_base_url(std::string_view text) {
    std::string ws(text);
    if (ws.starts_with("https://"))
        ws = "wss://" + ws.substr(8);
    else if (ws.starts_with("http://"))
        ws = "ws://" + ws.substr(7);
    auto url = transport::parse_ws_url(ws);
    if (!url)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("--relay '{}': write https://HOST[:PORT] (or the wss:// URL "
                                      "tunnel connect uses)",
                                      text));
    return url;
}

core::result<share_reply> call_share_api(const share_client_options& o, std::string_view method,
                                         std::string_view target, std::string_view body) {
    if (auto plain = transport::check_plaintext(o.relay, true, o.allow_plaintext); !plain)
        return tl::unexpected(plain.error());
    asio::io_context io;
    std::optional<core::result<share_reply>> out;
    core::run_until_done(io, [&]() -> asio::awaitable<void> {
        auto r = co_await call(o, method, target, body);
        out.emplace(std::move(r));
    });
    if (!out) return core::fail(core::errc::cancelled, "the request did not finish");
    return std::move(*out);
}

}  // namespace tunnel::relay
