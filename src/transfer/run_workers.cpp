#include "transfer/run_workers.hpp"

#include <exception>

namespace tunnel::transfer {

asio::awaitable<void> run_workers(unsigned n, std::function<asio::awaitable<void>(unsigned)> work) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer done(ex, asio::steady_timer::time_point::max());
    unsigned left = n;
    std::exception_ptr failure;
    for (unsigned i = 0; i < n; ++i)
        asio::co_spawn(ex, work(i), [&](std::exception_ptr e) {
            if (e && !failure) failure = e;
            if (--left == 0) done.cancel();
        });
    boost::system::error_code ec;
    co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (failure) std::rethrow_exception(failure);
}

}  // namespace tunnel::transfer
