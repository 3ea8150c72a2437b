#include "relay/relay_failover.hpp"

#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/beast.hpp"

namespace tunnel::relay {

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using tcp = asio::ip::tcp;
namespace ssl = asio::ssl;

bool is_ip_literal(const std::string& host) {
    boost::system::error_code ec;
    (void)asio::ip::make_address(host, ec);
    return !ec;
}

core::error bad(std::string message) {
    return core::error{core::errc::invalid_argument, std::move(message)};
}

// The first line of an HTTP answer: its status, or 0.
int status_of(std::string_view head) {
    // "HTTP/1.1 404 Not Found"
    if (head.size() < 12 || head.substr(0, 5) != "HTTP/") return 0;
    const auto sp = head.find(' ');
    if (sp == std::string_view::npos || sp + 4 > head.size()) return 0;
    int s = 0;
    for (std::size_t i = sp + 1; i < sp + 4; ++i) {
        if (head[i] < '0' || head[i] > '9') return 0;
        s = s * 10 + (head[i] - '0');
    }
    return s;
}

template <class Stream>
asio::awaitable<core::result<void>> ask(Stream& stream, const transport::ws_url& url) {
    const std::string request = fmt::format(
        "GET / HTTP/1.1\r\nHost: {}\r\nUser-Agent: tunnel-connect-probe\r\nConnection: "
        "close\r\n\r\n",
        url.host_header());
    boost::system::error_code ec;
    co_await asio::async_write(stream, asio::buffer(request),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return core::fail(core::errc::connection_failed, "write: " + ec.message());
    std::string in(512, '\0');
    std::size_t have = 0;
    while (have < in.size()) {
        const auto n =
            co_await stream.async_read_some(asio::buffer(in.data() + have, in.size() - have),
                                            asio::redirect_error(asio::use_awaitable, ec));
        have += n;
        if (std::string_view(in.data(), have).find("\r\n") != std::string_view::npos) break;
        if (ec) break;
    }
    const int status = status_of(std::string_view(in.data(), have));
    if (status == 0)
        co_return core::fail(core::errc::protocol_error,
                             ec ? "no answer: " + ec.message() : "not an HTTP answer");
    if (status >= 500)
        co_return core::fail(core::errc::connection_failed,
                             fmt::format("it answers {} (shutting down or overloaded)", status));
    co_return core::result<void>{};
}

}  // namespace

core::result<std::vector<transport::ws_url>> parse_relays(const std::string& url,
                                                          const std::vector<std::string>& more,
                                                          bool allow_plaintext) {
    std::vector<transport::ws_url> out;
    std::set<std::string> seen;
    for (std::size_t i = 0; i <= more.size(); ++i) {
        const std::string& text = i == 0 ? url : more[i - 1];
        const std::string what = i == 0 ? "the relay URL" : fmt::format("--relay {}", text);
        if (text.empty())
            return tl::unexpected(
                bad("--relay: give a relay attach URL, e.g. wss://relay2.example.com/v1/tunnel"));
        auto u = transport::parse_ws_url(text);
        if (!u) return tl::unexpected(bad(fmt::format("{}: {}", what, u.error().message)));
        if (auto plain = transport::check_plaintext(*u, true, allow_plaintext); !plain)
            return tl::unexpected(bad(fmt::format("{}: {}", what, plain.error().message)));
        if (!seen.insert(u->to_string()).second)
            return tl::unexpected(bad(fmt::format(
                "{}: this relay is already in the list; give each relay once, the preferred "
                "first",
                what)));
        out.push_back(std::move(*u));
    }
    if (out.size() > max_relays)
        return tl::unexpected(
            bad(fmt::format("--relay: at most {} relays (the URL and {} --relay); give fewer",
                            max_relays, max_relays - 1)));
    return out;
}

std::vector<std::string> system_resolver(const std::string& host, std::uint16_t port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return {};
    std::vector<std::string> out;
    for (auto* a = res; a; a = a->ai_next) {
        char text[NI_MAXHOST];
        if (::getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0,
                          NI_NUMERICHOST) != 0)
            continue;
        if (std::find(out.begin(), out.end(), text) == out.end()) out.emplace_back(text);
    }
    ::freeaddrinfo(res);
    return out;
}

std::vector<transport::ws_url> expand_addresses(const std::vector<transport::ws_url>& relays,
                                                const address_resolver& resolve) {
    std::vector<transport::ws_url> out;
    for (const auto& r : relays) {
        std::vector<std::string> addresses;
        if (!is_ip_literal(r.host) && r.address.empty() && resolve)
            addresses = resolve(r.host, r.port);
        if (addresses.size() < 2) {
            out.push_back(r);
        } else {
            for (auto& a : addresses) {
                auto one = r;
                one.address = std::move(a);
                out.push_back(std::move(one));
            }
        }
    }
    if (out.size() > max_relays) out.resize(max_relays);
    return out;
}

std::string describe_relay(const transport::ws_url& url) {
    return url.address.empty() ? url.to_string()
                               : fmt::format("{} (address {})", url.to_string(), url.address);
}

asio::awaitable<core::result<void>> probe_relay(const transport::ws_url& url,
                                                const transport::ws_options& ws,
                                                milliseconds timeout) {
    auto executor = co_await asio::this_coro::executor;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    tcp::resolver resolver(executor);
    boost::system::error_code ec;
    const std::string& where = url.address.empty() ? url.host : url.address;
    auto endpoints = co_await resolver.async_resolve(where, std::to_string(url.port),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return core::fail(core::errc::connection_failed, "cannot resolve: " + ec.message());
    beast::tcp_stream stream(executor);
    stream.expires_at(deadline);
    co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return core::fail(core::errc::connection_failed, "cannot connect: " + ec.message());
    if (!url.tls) co_return co_await ask(stream, url);

    ssl::context ctx(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    ctx.set_default_verify_paths(ec);
    if (ws.ca_file) ctx.load_verify_file(*ws.ca_file, ec);
    ctx.set_verify_mode(ws.insecure ? ssl::verify_none : ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> tls(std::move(stream), ctx);
    SSL* native = tls.native_handle();
    if (!is_ip_literal(url.host)) SSL_set_tlsext_host_name(native, url.host.c_str());
    if (!ws.insecure) {
        X509_VERIFY_PARAM* param = SSL_get0_param(native);
        if (is_ip_literal(url.host))
            X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str());
        else
            X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0);
    }
    co_await tls.async_handshake(ssl::stream_base::client,
                                 asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return core::fail(core::errc::connection_failed, "TLS: " + ec.message());
    co_return co_await ask(tls, url);
}

relay_failover::relay_failover(std::vector<transport::ws_url> relays, failover_options options)
    : relays_(std::move(relays)), options_(std::move(options)) {}

void relay_failover::set_openers(std::vector<ssh::stream_opener> openers) {
    openers_ = std::move(openers);
}

void relay_failover::before_connect(ssh::connect_options& target) {
    if (relays_.empty() || openers_.size() != relays_.size()) return;
    std::size_t i = 0;
    if (pinned_) {
        i = *pinned_;
    } else if (!started_) {
        i = 0;
    } else if (last_ok_) {
        i = trying_;  // the one it was on: once more first (a renewal, a restart, a blip)
    } else {
        i = (trying_ + 1) % relays_.size();  // it failed: the next in order
    }
    started_ = true;
    last_ok_ = false;
    trying_ = i;
    target.open_stream = openers_[i];
    // The relay's own name and port in known_hosts (each relay has its key).
    target.host = relays_[i].host;
    target.port = relays_[i].port;
    if (relays_.size() > 1) spdlog::debug("attaching to relay {}", describe_relay(relays_[i]));
}

void relay_failover::attached(std::size_t index) {
    last_ok_ = index == trying_;
    const auto from = attached_;
    attached_ = index;
    if (!from || *from == index) return;
    relay_switch ev;
    ev.from = *from;
    ev.to = index;
    ev.from_url = describe_relay(relays_[*from]);
    ev.to_url = describe_relay(relays_[index]);
    ev.reason = "failover";
    if (options_.on_switch) options_.on_switch(ev);
}

}  // namespace tunnel::relay
