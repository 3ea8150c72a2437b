#include "transport/websocket_client.hpp"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/beast.hpp"
#include "core/duration.hpp"
#include "core/spawn.hpp"

namespace tunnel::transport {

namespace {

namespace websocket = beast::websocket;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using time_point = std::chrono::steady_clock::time_point;
using plain_ws = websocket::stream<beast::tcp_stream>;
using tls_ws = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

// ARCHITECTURE §5: common WebSocket peers refuse messages over 1 MiB; Beast's
// defaults (auto-fragment, 4 KiB write buffer, message limit) cost 40%.
constexpr std::size_t max_message = 1024 * 1024;
constexpr std::size_t write_buffer = 256 * 1024;
// The pumps' buffers start small, so an idle attached tunnel costs little
// (1 MiB each measured 2.3 MiB of RSS per tunnel in bench/relay_load), and
// grow x4 whenever a read fills them, up to max_message (bulk transfers).
constexpr std::size_t first_chunk = 2 * 1024;

void grow_when_full(std::vector<char>& buf, std::size_t n) {
    if (n == buf.size() && buf.size() < max_message)
        buf.resize(std::min(max_message, buf.size() * 4));
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    return out;
}

bool is_ip_literal(const std::string& host) {
    unsigned char buf[16];
    return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// Printable, one line, bounded: a refusal body quoted in an error message.
std::string printable(std::string_view s, std::size_t limit = 200) {
    std::string out;
    for (char c : s.substr(0, limit)) out += (c >= 0x20 && c < 0x7f) ? c : ' ';
    while (!out.empty() && out.back() == ' ') out.pop_back();
    if (s.size() > limit) out += "...";
    return out;
}

std::chrono::milliseconds remaining(time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return std::max(left, std::chrono::milliseconds(1));
}

}  // namespace

// ---------------------------------------------------------------- URL

bool is_loopback_host(std::string_view host) noexcept {
    if (host == "localhost") return true;
    if (host.size() > 45) return false;
    const std::string z(host);
    in_addr v4{};
    if (::inet_pton(AF_INET, z.c_str(), &v4) == 1)
        return reinterpret_cast<const unsigned char*>(&v4)[0] == 127;
    in6_addr v6{};
    if (::inet_pton(AF_INET6, z.c_str(), &v6) != 1) return false;
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

core::result<void> check_plaintext(const ws_url& url, bool sends_token, bool allow_plaintext) {
    if (url.tls || !sends_token || allow_plaintext || is_loopback_host(url.host)) return {};
    return core::fail(
        core::errc::invalid_argument,
        fmt::format("refusing to send the token in cleartext to {}: ws:// to a host that is not "
                    "loopback lets anyone on the network path read the token and attach as you. "
                    "Use wss://{}, or pass --allow-plaintext if this network is trusted",
                    url.to_string(), url.host_header() + url.target));
}

core::result<ws_url> parse_ws_url(std::string_view text) {
    auto bad = [&](std::string_view why) {
        return core::fail(core::errc::invalid_argument,
                          fmt::format("bad relay URL '{}': {}", text, why));
    };
    ws_url u;
    const auto colon = text.find("://");
    if (colon == std::string_view::npos)
        return bad("write it as ws://HOST[:PORT]/PATH or wss://HOST[:PORT]/PATH");
    const auto scheme = lower(text.substr(0, colon));
    if (scheme == "wss") {
        u.tls = true;
    } else if (scheme == "ws") {
        u.tls = false;
    } else if (scheme == "https" || scheme == "http") {
        return bad(fmt::format("scheme {} is not a WebSocket URL; use {}://", scheme,
                               scheme == "https" ? "wss" : "ws"));
    } else {
        return bad(fmt::format("unknown scheme '{}'; use ws:// or wss://", scheme));
    }
    auto rest = text.substr(colon + 3);
    if (rest.find('#') != std::string_view::npos)
        return bad("a fragment (#...) has no meaning here; remove it");
    const auto path_at = rest.find_first_of("/?");
    auto authority = rest.substr(0, path_at);
    std::string_view target =
        path_at == std::string_view::npos ? std::string_view{} : rest.substr(path_at);
    if (authority.find('@') != std::string_view::npos)
        return bad(
            "credentials in the URL are not accepted; put the token in a file and pass "
            "--token-file");
    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return bad("unterminated '[' in an IPv6 address");
        u.host = lower(authority.substr(1, close - 1));
        auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return bad("expected ':PORT' after ']'");
            port_text = after.substr(1);
            if (port_text.empty()) return bad("empty port after ':'");
        }
    } else {
        const auto c = authority.rfind(':');
        if (c != std::string_view::npos) {
            if (authority.find(':') != c)
                return bad("an IPv6 address must be written in brackets: [::1]");
            port_text = authority.substr(c + 1);
            if (port_text.empty()) return bad("empty port after ':'");
            authority = authority.substr(0, c);
        }
        u.host = lower(authority);
    }
    if (u.host.empty()) return bad("no host name");
    u.port = u.tls ? 443 : 80;
    if (!port_text.empty()) {
        unsigned value = 0;
        auto [end, ec] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
        if (ec != std::errc{} || end != port_text.data() + port_text.size() || value == 0 ||
            value > 65535)
            return bad(fmt::format("port '{}' is not a number from 1 to 65535", port_text));
        u.port = static_cast<uint16_t>(value);
    }
    if (target.empty()) {
        u.target = "/";
    } else if (target.front() == '?') {
        u.target = "/" + std::string(target);
    } else {
        u.target = std::string(target);
    }
    for (unsigned char c : u.target)
        if (c <= 0x20 || c >= 0x7f)
            return bad("the path holds spaces or control characters; percent-encode them");
    return u;
}

std::string ws_url::host_header() const {
    std::string h = host.find(':') != std::string::npos ? fmt::format("[{}]", host) : host;
    if (port != (tls ? 443 : 80)) h += fmt::format(":{}", port);
    return h;
}

std::string ws_url::to_string() const {
    return fmt::format("{}://{}{}", tls ? "wss" : "ws", host_header(), target);
}

std::string ws_url::known_hosts_name() const {
    return port == 22 ? host : fmt::format("[{}]:{}", host, port);
}

// ---------------------------------------------------------------- refusals, token

core::error refusal_error(const ws_url& url, unsigned status, std::string_view reason,
                          std::string_view body) {
    std::string code, message;
    auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (json.is_object()) {
        if (auto it = json.find("error"); it != json.end() && it->is_string())
            code = printable(it->get<std::string>(), 60);
        if (auto it = json.find("message"); it != json.end() && it->is_string())
            message = printable(it->get<std::string>(), 400);
    } else if (!body.empty()) {
        message = printable(body);
    }
    const std::string what = code.empty() ? fmt::format("HTTP {} {}", status, reason)
                                          : fmt::format("HTTP {} {}", status, code);
    const std::string detail = message.empty() ? std::string{} : ": " + message;
    switch (status) {
        case 401:
            return {
                core::errc::auth_failed,
                fmt::format("relay {} refused the token ({}){}{}", url.to_string(), what, detail,
                            message.empty()
                                ? "; check --token-file (expired, or minted for another relay?)"
                                : "")};
        case 403:
            return {core::errc::auth_failed, fmt::format("relay {} refused the tunnel ({}){}",
                                                         url.to_string(), what, detail)};
        case 404:
            return {core::errc::invalid_argument,
                    fmt::format(
                        "{} is not a tunnel endpoint ({}){}; the relay's attach path is /v1/tunnel",
                        url.to_string(), what, detail)};
        case 429:
        case 502:
        case 503:
        case 504:
            return {core::errc::connection_failed,
                    fmt::format("relay {} is not taking tunnels now ({}){}", url.to_string(), what,
                                detail)};
        default:
            return {core::errc::protocol_error,
                    fmt::format("{} answered {} instead of upgrading to WebSocket{}",
                                url.to_string(), what, detail)};
    }
}

core::result<std::string> read_token_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return core::fail(core::errc::not_found,
                          fmt::format("cannot read token file {}: {}", path, std::strerror(errno)));
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("token file {} is empty", path));
    const auto last = text.find_last_not_of(" \t\r\n");
    text = text.substr(first, last - first + 1);
    if (text.find_first_of(" \t\r\n") != std::string::npos)
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("token file {} holds more than one word; it must hold only the token",
                        path));
    return text;
}

// ---------------------------------------------------------------- the connection

struct websocket_client::impl {
    ws_url url;
    ws_options options;
    ws_attach_info info;
    std::unique_ptr<ssl::context> tls_context;  // outlives the stream using it
    std::unique_ptr<plain_ws> plain;
    std::unique_ptr<tls_ws> secure;
    std::optional<asio::posix::stream_descriptor> in, out;
    std::optional<asio::steady_timer> done;
    int running = 0;
    bool stopped = false;
    error_code ws_error;       // how the WebSocket side ended
    std::string close_reason;  // the peer's close frame, if any

    beast::tcp_stream& tcp() {
        return plain ? beast::get_lowest_layer(*plain) : beast::get_lowest_layer(*secure);
    }
};

namespace {

using impl = websocket_client::impl;

asio::awaitable<core::result<void>> connect_tcp(beast::tcp_stream& stream, const ws_url& url,
                                                time_point deadline) {
    tcp::resolver resolver(stream.get_executor());
    error_code ec;
    const std::string& where = url.address.empty() ? url.host : url.address;
    auto endpoints = co_await resolver.async_resolve(where, std::to_string(url.port),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
        co_return core::fail(
            core::errc::connection_failed,
            fmt::format("cannot resolve relay host {}: {}", url.host, ec.message()));
    stream.expires_at(deadline);
    co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == beast::error::timeout)
        co_return core::fail(
            core::errc::timeout,
            fmt::format("connecting to {} timed out (--connect-timeout)", url.to_string()));
    if (ec)
        co_return core::fail(
            core::errc::connection_failed,
            fmt::format("cannot connect to {}: {}", url.to_string(), ec.message()));
    stream.socket().set_option(tcp::no_delay(true), ec);
    co_return core::result<void>{};
}

core::result<std::unique_ptr<ssl::context>> make_tls_context(const ws_options& o) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    error_code ec;
    ctx->set_default_verify_paths(ec);
    if (o.ca_file) {
        ctx->load_verify_file(*o.ca_file, ec);
        if (ec)
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("cannot load --ca-file {}: {} (it must hold PEM certificates)",
                            *o.ca_file, ec.message()));
    }
    ctx->set_verify_mode(o.insecure ? ssl::verify_none : ssl::verify_peer);
    return ctx;
}

asio::awaitable<core::result<void>> tls_handshake(tls_ws& ws, const ws_url& url,
                                                  const ws_options& o, time_point deadline) {
    SSL* native = ws.next_layer().native_handle();
    if (!is_ip_literal(url.host)) SSL_set_tlsext_host_name(native, url.host.c_str());
    if (!o.insecure) {
        X509_VERIFY_PARAM* param = SSL_get0_param(native);
        if (is_ip_literal(url.host))
            X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str());
        else
            X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0);
    }
    beast::get_lowest_layer(ws).expires_at(deadline);
    error_code ec;
    co_await ws.next_layer().async_handshake(ssl::stream_base::client,
                                             asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) co_return core::result<void>{};
    if (ec == beast::error::timeout)
        co_return core::fail(core::errc::timeout,
                             fmt::format("TLS handshake with {} timed out", url.to_string()));
    const long verify = SSL_get_verify_result(native);
    if (verify != X509_V_OK)
        co_return core::fail(core::errc::host_key_unknown,
                             fmt::format("the TLS certificate of {} is not trusted: {}. If the "
                                         "relay uses a self-signed certificate, "
                                         "pass it with --ca-file FILE (--insecure skips the check, "
                                         "for throwaway tests only)",
                                         url.host_header(), X509_verify_cert_error_string(verify)));
    co_return core::fail(
        core::errc::connection_failed,
        fmt::format("TLS handshake with {} failed: {} (is it a wss:// endpoint? try ws://)",
                    url.to_string(), ec.message()));
}

template <class Ws>
asio::awaitable<core::result<void>> upgrade(Ws& ws, impl& im, time_point deadline) {
    beast::get_lowest_layer(ws).expires_never();  // the WebSocket's own timeouts take over
    websocket::stream_base::timeout t{};
    t.handshake_timeout = remaining(deadline);
    t.idle_timeout = im.options.idle_timeout;
    t.keep_alive_pings = true;
    ws.set_option(t);
    std::string lease;
    if (im.options.lease) {
        std::lock_guard lock(im.options.lease->mutex);
        lease = im.options.lease->id.empty() ? std::string("new") : im.options.lease->id;
    }
    ws.set_option(websocket::stream_base::decorator(
        [auth = im.options.token.empty() ? std::string{} : "Bearer " + im.options.token,
         lease](websocket::request_type& req) {
            if (!auth.empty()) req.set(http::field::authorization, auth);
            if (!lease.empty()) req.set("Tunnel-Lease", lease);
            req.set(http::field::user_agent, "tunnel/0.1");
        }));
    ws.auto_fragment(false);
    ws.write_buffer_bytes(write_buffer);
    ws.read_message_max(0);
    ws.binary(true);

    websocket::response_type res;
    error_code ec;
    co_await ws.async_handshake(res, im.url.host_header(), im.url.target,
                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec == websocket::error::upgrade_declined)
        co_return tl::unexpected(
            refusal_error(im.url, res.result_int(),
                          std::string_view(res.reason().data(), res.reason().size()), res.body()));
    if (ec == beast::error::timeout)
        co_return core::fail(core::errc::timeout,
                             fmt::format("WebSocket upgrade at {} timed out", im.url.to_string()));
    if (ec)
        co_return core::fail(
            core::errc::connection_failed,
            fmt::format("WebSocket upgrade at {} failed: {}", im.url.to_string(), ec.message()));
    im.info.tenant = std::string(res["Tunnel-Tenant"]);
    im.info.public_url = std::string(res["Tunnel-Public-Url"]);
    im.info.domain = std::string(res["Tunnel-Domain"]);
    if (im.options.lease) {
        // The relay's lease ID (the same one again on a reclaim); none from a
        // relay without leases.
        std::lock_guard lock(im.options.lease->mutex);
        im.options.lease->id = std::string(res["Tunnel-Lease"]);
        long long grace = 0;
        const auto g = res["Tunnel-Lease-Grace"];
        std::from_chars(g.data(), g.data() + g.size(), grace);
        im.options.lease->grace = std::chrono::seconds(grace);
        im.info.lease_grace = im.options.lease->grace;
        im.info.leased = !im.options.lease->id.empty();
    }
    co_return core::result<void>{};
}

void finish(impl& im) {
    if (--im.running == 0 && im.done) im.done->cancel();
}

void close_local(impl& im) {
    error_code ignored;
    if (im.in && im.in->is_open()) im.in->close(ignored);
    if (im.out && im.out->is_open()) im.out->close(ignored);
}

// WebSocket → out_fd. Ends when the peer closes or fails (the local side is
// then closed, so a local reader sees EOF) or out_fd refuses to take more.
template <class Ws>
asio::awaitable<void> ws_to_local(std::shared_ptr<websocket_client> self, Ws& ws, impl& im) {
    std::vector<char> buf(first_chunk);
    error_code ec;
    for (;;) {
        std::size_t n = co_await ws.async_read_some(asio::buffer(buf),
                                                    asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        error_code wec;
        co_await asio::async_write(*im.out, asio::buffer(buf.data(), n),
                                   asio::redirect_error(asio::use_awaitable, wec));
        if (wec) break;  // the local reader went away: nothing more to do
        grow_when_full(buf, n);
    }
    if (ec) {
        im.ws_error = ec;
        if (ec == websocket::error::closed) {
            const auto& why = ws.reason();
            if (!why.reason.empty())
                im.close_reason = printable(std::string_view(why.reason.data(), why.reason.size()));
            else if (why.code != websocket::close_code::normal &&
                     why.code != websocket::close_code::none)
                im.close_reason = fmt::format("close code {}", static_cast<unsigned>(why.code));
        }
    }
    close_local(im);
    if (!ec) self->stop();  // local side failed: cut the WebSocket too
    finish(im);
}

// in_fd → WebSocket, one binary message per local read. End of input closes
// the WebSocket normally.
template <class Ws>
asio::awaitable<void> local_to_ws(std::shared_ptr<websocket_client> self, Ws& ws, impl& im) {
    (void)self;  // keeps the client alive while this runs
    std::vector<char> buf(first_chunk);
    error_code ec;
    for (;;) {
        std::size_t n = co_await im.in->async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        error_code wec;
        co_await ws.async_write(asio::buffer(buf.data(), n),
                                asio::redirect_error(asio::use_awaitable, wec));
        if (wec) break;
        grow_when_full(buf, n);
    }
    if (ec == asio::error::eof && !im.stopped && ws.is_open()) {
        error_code cec;
        co_await ws.async_close(websocket::close_code::normal,
                                asio::redirect_error(asio::use_awaitable, cec));
    }
    finish(im);
}

template <class Ws>
void start_pumps(std::shared_ptr<websocket_client> self, Ws& ws, impl& im) {
    auto ex = im.tcp().get_executor();
    core::spawn(ex, ws_to_local(self, ws, im), "websocket client ws->local pump");
    core::spawn(ex, local_to_ws(self, ws, im), "websocket client local->ws pump");
}

}  // namespace

websocket_client::websocket_client(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
websocket_client::~websocket_client() = default;

const ws_attach_info& websocket_client::attach_info() const noexcept {
    return impl_->info;
}
const ws_url& websocket_client::url() const noexcept {
    return impl_->url;
}

asio::awaitable<core::result<std::shared_ptr<websocket_client>>> websocket_client::connect(
    asio::any_io_executor executor, ws_url url, ws_options options) {
    if (auto plain = check_plaintext(url, !options.token.empty(), options.allow_plaintext); !plain)
        co_return tl::unexpected(plain.error());
    const auto deadline = std::chrono::steady_clock::now() + options.connect_timeout;
    auto im = std::make_unique<impl>();
    im->url = std::move(url);
    im->options = std::move(options);
    if (im->url.tls) {
        auto ctx = make_tls_context(im->options);
        if (!ctx) co_return tl::unexpected(ctx.error());
        im->tls_context = std::move(*ctx);
        im->secure = std::make_unique<tls_ws>(executor, *im->tls_context);
        auto c = co_await connect_tcp(beast::get_lowest_layer(*im->secure), im->url, deadline);
        if (!c) co_return tl::unexpected(c.error());
        auto h = co_await tls_handshake(*im->secure, im->url, im->options, deadline);
        if (!h) co_return tl::unexpected(h.error());
        auto u = co_await upgrade(*im->secure, *im, deadline);
        if (!u) co_return tl::unexpected(u.error());
    } else {
        im->plain = std::make_unique<plain_ws>(executor);
        auto c = co_await connect_tcp(beast::get_lowest_layer(*im->plain), im->url, deadline);
        if (!c) co_return tl::unexpected(c.error());
        auto u = co_await upgrade(*im->plain, *im, deadline);
        if (!u) co_return tl::unexpected(u.error());
    }
    spdlog::debug("WebSocket to {} open (tenant '{}')", im->url.to_string(), im->info.tenant);
    auto lease = im->options.lease;
    auto client = std::make_shared<websocket_client>(std::move(im));
    if (lease) {
        std::lock_guard lock(lease->mutex);
        lease->current = client;
    }
    co_return client;
}

namespace {

// Closes the WebSocket with ws_release_lease (the relay releases the lease's
// names at once), then the socket; at most 500 ms.
template <class Ws>
asio::awaitable<void> close_releasing(std::shared_ptr<websocket_client> self, Ws& ws, impl& im) {
    (void)self;  // keeps the client alive while this runs
    auto& tcp_stream = im.tcp();
    asio::steady_timer limit(tcp_stream.get_executor());
    limit.expires_after(std::chrono::milliseconds(500));
    limit.async_wait([&tcp_stream](error_code e) {
        if (!e) tcp_stream.socket().close(e);
    });
    error_code ec;
    const websocket::close_reason why(static_cast<websocket::close_code>(ws_release_lease),
                                      "client stopped");
    co_await ws.async_close(why, asio::redirect_error(asio::use_awaitable, ec));
    limit.cancel();
    error_code ignored;
    tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp_stream.socket().close(ignored);
}

}  // namespace

void ws_lease::release_now() {
    release = true;
    std::shared_ptr<websocket_client> ws;
    {
        std::lock_guard lock(mutex);
        ws = current.lock();
    }
    if (ws) ws->stop();
}

void websocket_client::stop() {
    if (impl_->stopped) return;
    impl_->stopped = true;
    close_local(*impl_);
    auto& im = *impl_;
    if (im.options.lease && im.options.lease->release && im.running > 0) {
        auto ex = im.tcp().get_executor();
        if (im.plain && im.plain->is_open())
            return core::spawn(ex, close_releasing(shared_from_this(), *im.plain, im),
                               "websocket client lease release");
        if (im.secure && im.secure->is_open())
            return core::spawn(ex, close_releasing(shared_from_this(), *im.secure, im),
                               "websocket client lease release");
    }
    error_code ignored;
    impl_->tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    impl_->tcp().socket().close(ignored);
}

asio::awaitable<core::result<void>> websocket_client::bridge(int in_fd, int out_fd) {
    auto self = shared_from_this();
    auto& im = *impl_;
    auto ex = im.tcp().get_executor();
    im.in.emplace(ex, in_fd);
    im.out.emplace(ex, out_fd);
    im.done.emplace(ex, time_point::max());
    im.running = 2;
    if (im.plain)
        start_pumps(self, *im.plain, im);
    else
        start_pumps(self, *im.secure, im);
    while (im.running > 0) {
        error_code ec;
        co_await im.done->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    const auto ec = im.ws_error;
    // The relay's reason first: its close frame ends the local side, and the
    // SSH session above may stop() this before we get here (a race that
    // used to swallow "relay shutting down").
    if (ec == websocket::error::closed && !im.close_reason.empty())
        co_return core::fail(core::errc::disconnected,
                             fmt::format("relay {} closed the connection: {}", im.url.host_header(),
                                         im.close_reason));
    if (!ec || im.stopped || ec == asio::error::operation_aborted || ec == websocket::error::closed)
        co_return core::result<void>{};
    if (ec == beast::error::timeout)
        co_return core::fail(
            core::errc::disconnected,
            fmt::format("relay {} stopped answering: no data or pong for {}", im.url.host_header(),
                        core::format_duration(im.options.idle_timeout)));
    co_return core::fail(core::errc::disconnected, fmt::format("WebSocket to {} failed: {}",
                                                               im.url.host_header(), ec.message()));
}

}  // namespace tunnel::transport
