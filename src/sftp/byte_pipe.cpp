#include "sftp/byte_pipe.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

namespace tunnel::sftp {

namespace {

// Bytes per recv(); the client takes whole packets off the inbox each step.
constexpr std::size_t read_chunk = 256u << 10;
constexpr std::size_t inbox_cap = 32u << 20;

}  // namespace

socket_pipe::socket_pipe(asio::local::stream_protocol::socket s, std::string already)
    : socket_(std::make_shared<asio::local::stream_protocol::socket>(std::move(s))),
      inbox_(std::move(already)) {
    boost::system::error_code ec;
    socket_->non_blocking(true, ec);
}

std::string channel_pipe::ended_message(std::string_view destination) const {
    return fmt::format("the SFTP server on {} closed the channel", destination);
}

std::string socket_pipe::ended_message(std::string_view) const {
    return "the link manager closed the SFTP connection (tunnel up went away?)";
}

socket_pipe::~socket_pipe() {
    close();
}

core::result<std::size_t> socket_pipe::write_some(std::string_view data) {
    if (failed_) return tl::unexpected(*failed_);
    if (!socket_->is_open())
        return core::fail(core::errc::disconnected, "the SFTP connection is closed");
    const auto n = ::send(socket_->native_handle(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
        write_blocked_ = static_cast<std::size_t>(n) < data.size();
        return static_cast<std::size_t>(n);
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        write_blocked_ = true;
        return std::size_t{0};
    }
    failed_ = core::error{core::errc::disconnected,
                          "the link manager closed the SFTP connection (tunnel up went away?)"};
    return tl::unexpected(*failed_);
}

void socket_pipe::drain() {
    if (!socket_->is_open() || ended_) return;
    if (!scratch_) scratch_ = std::make_unique_for_overwrite<char[]>(read_chunk);
    while (inbox_.size() < inbox_cap) {
        const auto n = ::recv(socket_->native_handle(), scratch_.get(), read_chunk, 0);
        if (n > 0) {
            inbox_.append(scratch_.get(), static_cast<std::size_t>(n));
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) ended_ = true;
        break;
    }
}

asio::awaitable<core::result<void>> socket_pipe::wait(ssh::time_point until) {
    if (!socket_->is_open() || ended_) co_return core::result<void>{};
    // Whichever comes first: readable, writable (when a write was cut short)
    // or the deadline. The waits hold the shared state: they may complete
    // after this coroutine returned.
    struct shared {
        explicit shared(asio::any_io_executor ex) : timer(ex) {}
        asio::steady_timer timer;
        bool woke = false;
    };
    auto st = std::make_shared<shared>(socket_->get_executor());
    st->timer.expires_at(until);
    auto wake = [st](boost::system::error_code ec) {
        if (ec == asio::error::operation_aborted) return;
        st->woke = true;
        st->timer.cancel();
    };
    socket_->async_wait(asio::local::stream_protocol::socket::wait_read, wake);
    if (write_blocked_) socket_->async_wait(asio::local::stream_protocol::socket::wait_write, wake);
    boost::system::error_code ec;
    co_await st->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    boost::system::error_code ignored;
    socket_->cancel(ignored);
    write_blocked_ = false;  // write_some says again
    if (!st->woke && !ec) co_return core::fail(core::errc::timeout, "no answer in time");
    co_return core::result<void>{};
}

void socket_pipe::close() {
    boost::system::error_code ignored;
    if (socket_->is_open()) {
        socket_->shutdown(asio::local::stream_protocol::socket::shutdown_both, ignored);
        socket_->close(ignored);
    }
}

}  // namespace tunnel::sftp
