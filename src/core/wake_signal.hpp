// A one-waiter wake-up flag for coroutines on one executor: the producer
// calls notify(), the consumer co_awaits wait(deadline) and then re-checks
// its own state. A notify() that comes while nobody waits is kept, so a
// wake-up is never lost between the consumer's check and its wait.
#pragma once

#include "core/asio.hpp"

namespace tunnel::core {

class wake_signal {
  public:
    explicit wake_signal(asio::any_io_executor executor) : timer_(std::move(executor)) {}

    void notify() {
        pending_ = true;
        timer_.cancel();
    }

    // True when notified, false when `deadline` passed first.
    asio::awaitable<bool> wait(std::chrono::steady_clock::time_point deadline) {
        if (pending_) {
            pending_ = false;
            co_return true;
        }
        timer_.expires_at(deadline);
        boost::system::error_code ec;
        co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (pending_) {
            pending_ = false;
            co_return true;
        }
        co_return ec == asio::error::operation_aborted;
    }

  private:
    asio::steady_timer timer_;
    bool pending_ = false;
};

}  // namespace tunnel::core
