#include "ssh/channel_pump.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spawn.hpp"

namespace tunnel::ssh {

namespace {

constexpr auto forever = time_point::max();

class pump : public pump_control, public std::enable_shared_from_this<pump> {
  public:
    pump(channel ch, stream_socket socket, std::shared_ptr<pump_observer> observer,
         pump_limits limits)
        : channel_(std::move(ch)),
          socket_(std::move(socket)),
          observer_(observer ? std::move(observer) : std::make_shared<pump_observer>()),
          limits_(limits) {
        channel_.state().buffer_cap = limits_.channel_buffer;
    }

    void stop() override {
        if (stopped_) return;
        stopped_ = true;
        boost::system::error_code ignored;
        socket_.close(ignored);
        channel_.close();
        channel_.wake();  // wake our own waiters so they see stopped_
    }

    asio::awaitable<void> channel_to_socket() {
        auto self = shared_from_this();
        auto& st = channel_.state();
        std::string chunk;
        while (!stopped_) {
            channel_.drain();
            if (!st.out.empty()) {
                // Take the buffer: callbacks keep filling st.out (up to its cap)
                // while this write is in flight.
                chunk.clear();
                chunk.swap(st.out);
                boost::system::error_code ec;
                co_await asio::async_write(socket_, asio::buffer(chunk),
                                           asio::redirect_error(asio::use_awaitable, ec));
                if (ec) {
                    stop();
                    break;
                }
                observer_->on_bytes_to_socket(chunk.size());
                continue;
            }
            if (st.closed) {
                // The far end closed the channel: nothing more either way.
                finish_local_send();
                stop();
                break;
            }
            if (st.eof) {
                finish_local_send();
                break;
            }
            if (auto w = co_await channel_.wait_readable(forever); !w) {
                stop();
                break;
            }
        }
        channel_done_ = true;
        maybe_finish();
    }

    asio::awaitable<void> socket_to_channel(std::string first) {
        auto self = shared_from_this();
        if (!first.empty() && !(co_await send(first))) co_return;
        std::string buf(limits_.read_chunk, '\0');
        while (!stopped_) {
            boost::system::error_code ec;
            std::size_t n = co_await socket_.async_read_some(
                asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
                if (ec == asio::error::eof && !stopped_) {
                    channel_.send_eof();
                    channel_.owner().notify();
                } else {
                    stop();
                }
                break;
            }
            if (!(co_await send(std::string_view(buf.data(), n)))) break;
        }
        socket_done_ = true;
        maybe_finish();
    }

  private:
    asio::awaitable<bool> send(std::string_view pending) {
        auto& st = channel_.state();
        while (!pending.empty() && !stopped_) {
            if (st.closed) {
                stop();
                co_return false;
            }
            auto w = channel_.write_some(pending);
            if (!w) {
                observer_->on_channel_error(w.error().message);
                stop();
                co_return false;
            }
            pending.remove_prefix(*w);
            observer_->on_bytes_to_channel(*w);
            // (write_some itself has the socket watched for what libssh holds.)
            // Window exhausted: wait for the peer to open it again. write_some's
            // flush may already have processed the adjust (no callback): then
            // write again at once instead of waiting for a socket event that
            // may never come.
            if (!pending.empty() && (*w == 0 || channel_.window() == 0)) {
                if (auto r = co_await channel_.wait_writable(forever); !r) {
                    stop();
                    co_return false;
                }
            }
        }
        co_return !stopped_;
    }

    void finish_local_send() {
        boost::system::error_code ignored;
        socket_.shutdown(asio::socket_base::shutdown_send, ignored);
    }

    void maybe_finish() {
        if (channel_done_ && socket_done_ && !stopped_) {
            stopped_ = true;
            boost::system::error_code ignored;
            socket_.close(ignored);
            channel_.close();
        }
    }

    channel channel_;
    stream_socket socket_;
    std::shared_ptr<pump_observer> observer_;
    pump_limits limits_;
    bool stopped_ = false;
    bool channel_done_ = false;
    bool socket_done_ = false;
};

}  // namespace

std::weak_ptr<pump_control> start_channel_pump(channel ch, stream_socket socket,
                                               std::shared_ptr<pump_observer> observer,
                                               std::string to_channel_first, pump_limits limits,
                                               const char* what) {
    auto executor = ch.owner().executor();
    auto p = std::make_shared<pump>(std::move(ch), std::move(socket), std::move(observer), limits);
    core::spawn(
        executor, [p]() { return p->channel_to_socket(); },
        fmt::format("{} channel->socket", what));
    core::spawn(
        executor,
        [p, first = std::move(to_channel_first)]() mutable {
            return p->socket_to_channel(std::move(first));
        },
        fmt::format("{} socket->channel", what));
    return p;
}

}  // namespace tunnel::ssh
