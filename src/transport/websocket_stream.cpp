#include "transport/websocket_stream.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spawn.hpp"

namespace tunnel::transport {

namespace {

class websocket_pump : public ssh::stream_pump {
  public:
    explicit websocket_pump(std::shared_ptr<websocket_client> ws) : ws_(std::move(ws)) {}
    void stop() override { ws_->stop(); }

  private:
    std::shared_ptr<websocket_client> ws_;
};

asio::awaitable<void> run_bridge(std::shared_ptr<websocket_client> ws, int in_fd, int out_fd) {
    auto r = co_await ws->bridge(in_fd, out_fd);
    if (!r) spdlog::warn("{}", r.error().message);
}

asio::awaitable<core::result<ssh::byte_stream>> open_websocket(
    asio::any_io_executor executor, ws_url url, ws_options options,
    std::function<void(const ws_attach_info&)> on_attach,
    std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    options.connect_timeout =
        std::max(std::min(options.connect_timeout, left), std::chrono::milliseconds(1));
    if (options.token_source) {
        auto token = options.token_source();
        if (!token) co_return tl::unexpected(token.error());
        options.token = std::move(*token);
    }
    auto ws = co_await websocket_client::connect(executor, std::move(url), std::move(options));
    if (!ws) co_return tl::unexpected(ws.error());
    auto fds = ssh::open_socketpair();
    if (!fds) co_return tl::unexpected(fds.error());
    // The bridge wants two descriptors: one to read, one to write.
    const int write_end = ::fcntl(fds->first, F_DUPFD_CLOEXEC, 3);
    if (write_end < 0) {
        ::close(fds->first);
        ::close(fds->second);
        co_return core::fail(core::errc::resource_exhausted,
                             fmt::format("dup failed: {}", std::strerror(errno)));
    }
    if (on_attach) on_attach((*ws)->attach_info());
    core::spawn(executor, run_bridge(*ws, fds->first, write_end), "websocket stream bridge");
    co_return ssh::byte_stream{fds->second, std::make_shared<websocket_pump>(*ws)};
}

}  // namespace

ssh::stream_opener websocket_opener(ws_url url, ws_options options,
                                    std::function<void(const ws_attach_info&)> on_attach) {
    return [url = std::move(url), options = std::move(options), on_attach = std::move(on_attach)](
               asio::any_io_executor executor, std::chrono::steady_clock::time_point deadline) {
        return open_websocket(std::move(executor), url, options, on_attach, deadline);
    };
}

}  // namespace tunnel::transport
