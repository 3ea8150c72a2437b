#include "forward/local_socket.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>

#include <fmt/format.h>

namespace tunnel::forward {

namespace {

using tcp = asio::ip::tcp;

core::error listen_error(const std::string& where, const std::string& for_what,
                         const std::string& why) {
    return {core::errc::io_error,
            fmt::format("cannot listen on {} for {}: {}", where, for_what, why)};
}

uint16_t port_of(const asio::generic::stream_protocol::endpoint& ep) {
    const sockaddr* sa = ep.data();
    if (sa->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
    return 0;
}

std::string show(const tcp::endpoint& e) {
    if (e.address().is_v6()) return fmt::format("[{}]:{}", e.address().to_string(), e.port());
    return fmt::format("{}:{}", e.address().to_string(), e.port());
}

}  // namespace

core::result<std::vector<stream_acceptor>> open_listeners(asio::any_io_executor executor,
                                                          const endpoint& where,
                                                          const std::string& for_what) {
    std::vector<stream_acceptor> out;
    boost::system::error_code ec;
    if (where.is_unix()) {
        struct stat st {};
        if (::stat(where.path.c_str(), &st) == 0)
            return tl::unexpected(
                listen_error(where.path, for_what, "the path already exists; remove it first"));
        stream_acceptor a(executor);
        asio::generic::stream_protocol::endpoint ep{
            asio::local::stream_protocol::endpoint(where.path)};
        a.open(ep.protocol(), ec);
        if (!ec) a.bind(ep, ec);
        if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) return tl::unexpected(listen_error(where.path, for_what, ec.message()));
        out.push_back(std::move(a));
        return out;
    }

    std::vector<tcp::endpoint> endpoints;
    if (where.host.empty() || where.host == "localhost") {
        endpoints.emplace_back(asio::ip::make_address("127.0.0.1"), where.port);
        endpoints.emplace_back(asio::ip::make_address("::1"), where.port);
    } else if (where.host == "*") {
        endpoints.emplace_back(asio::ip::make_address("::"), where.port);
    } else {
        tcp::resolver resolver(executor);
        auto results =
            resolver.resolve(where.host, std::to_string(where.port), tcp::resolver::passive, ec);
        if (ec)
            return tl::unexpected(
                listen_error(where.to_string(), for_what,
                             fmt::format("cannot resolve \"{}\": {}", where.host, ec.message())));
        for (const auto& r : results) endpoints.push_back(r.endpoint());
    }
    uint16_t port = where.port;
    for (std::size_t i = 0; i < endpoints.size(); ++i) {
        auto ep = endpoints[i];
        if (port != 0) ep.port(port);  // port 0: the second family takes what the first got
        stream_acceptor a(executor);
        asio::generic::stream_protocol::endpoint gep(ep);
        a.open(gep.protocol(), ec);
        if (ec) {
            // ::1 on a host without IPv6 is not an error when 127.0.0.1 worked.
            if (i > 0 && where.host.empty()) continue;
            return tl::unexpected(listen_error(show(ep), for_what, ec.message()));
        }
        a.set_option(asio::socket_base::reuse_address(true), ec);
        if (ep.address().is_v6() && where.host == "*")
            ::setsockopt(a.native_handle(), IPPROTO_IPV6, IPV6_V6ONLY, "\0\0\0\0", 4);
        a.bind(gep, ec);
        if (ec) {
            if (i > 0 && where.host.empty() && ec == boost::system::errc::address_not_available)
                continue;
            return tl::unexpected(listen_error(show(ep), for_what, ec.message()));
        }
        a.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) return tl::unexpected(listen_error(show(ep), for_what, ec.message()));
        out.push_back(std::move(a));
        if (port == 0) port = listening_port(out);
    }
    if (out.empty())
        return tl::unexpected(listen_error(where.to_string(), for_what, "no usable address"));
    return out;
}

uint16_t listening_port(const std::vector<stream_acceptor>& listeners) {
    for (const auto& a : listeners) {
        boost::system::error_code ec;
        auto ep = a.local_endpoint(ec);
        if (!ec) return port_of(ep);
    }
    return 0;
}

void set_no_delay(stream_socket& socket) {
    int one = 1;
    ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one,
                 sizeof one);  // EOPNOTSUPP on Unix: fine
}

asio::awaitable<core::result<stream_socket>> connect_stream(asio::any_io_executor executor,
                                                            endpoint where,
                                                            std::chrono::milliseconds timeout) {
    boost::system::error_code ec;
    asio::steady_timer timer(executor);
    if (where.is_unix()) {
        stream_socket s(executor);
        asio::generic::stream_protocol::endpoint ep{
            asio::local::stream_protocol::endpoint(where.path)};
        co_await s.async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
        if (ec)
            co_return core::fail(core::errc::connection_failed,
                                 fmt::format("cannot connect to {}: {}", where.path, ec.message()));
        co_return s;
    }
    tcp::resolver resolver(executor);
    timer.expires_after(timeout);
    bool expired = false;
    timer.async_wait([&](boost::system::error_code e) {
        if (!e) {
            expired = true;
            resolver.cancel();
        }
    });
    // Plain locals: g++ 12 mishandles temporaries built inside a co_await expression.
    const std::string host = where.host.empty() ? std::string("localhost") : where.host;
    const std::string service = std::to_string(where.port);
    auto results = co_await resolver.async_resolve(host, service,
                                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        timer.cancel();
        co_return core::fail(core::errc::connection_failed,
                             fmt::format("cannot resolve {}: {}", where.to_string(),
                                         expired ? "timed out" : ec.message()));
    }
    tcp::socket s(executor);
    auto* sp = &s;
    timer.async_wait([sp, &expired](boost::system::error_code e) {
        if (!e) {
            expired = true;
            boost::system::error_code ignored;
            sp->close(ignored);
        }
    });
    co_await asio::async_connect(s, results, asio::redirect_error(asio::use_awaitable, ec));
    timer.cancel();
    if (ec)
        co_return core::fail(core::errc::connection_failed,
                             fmt::format("cannot connect to {}: {}", where.to_string(),
                                         expired ? "timed out" : ec.message()));
    auto protocol = s.local_endpoint(ec).protocol();
    stream_socket out(executor, asio::generic::stream_protocol(protocol), s.release());
    set_no_delay(out);
    co_return out;
}

}  // namespace tunnel::forward
