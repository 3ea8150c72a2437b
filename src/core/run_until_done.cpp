#include "core/run_until_done.hpp"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

namespace tunnel::core {

void run_until_done(asio::io_context& io, std::function<asio::awaitable<void>()> task,
                    std::chrono::milliseconds grace) {
    std::mutex mutex;
    std::condition_variable changed;
    bool task_done = false;
    bool io_done = false;
    std::exception_ptr failure;

    asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
        const std::lock_guard lock(mutex);
        failure = e;
        task_done = true;
        changed.notify_all();
    });
    // Work left `grace` after the task is a bug (a coroutine nobody closes):
    // say so, and stop the context so that the command still ends.
    std::thread watchdog([&] {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return task_done || io_done; });
        if (changed.wait_for(lock, grace, [&] { return io_done; })) return;
        spdlog::error(
            "internal: work still pending {} ms after the command finished; stopping it (please "
            "report this)",
            grace.count());
        io.stop();
    });
    io.run();
    {
        const std::lock_guard lock(mutex);
        io_done = true;
        changed.notify_all();
    }
    watchdog.join();
    if (failure) std::rethrow_exception(failure);
}

}  // namespace tunnel::core
