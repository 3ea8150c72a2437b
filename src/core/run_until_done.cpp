#include "core/run_until_done.hpp"

#include <exception>

#include <spdlog/spdlog.h>

namespace tunnel::core {

// Single-threaded: no watchdog thread. Starting one and joining it at the end
// cost every short command a thread start and, at exit, a wait until the
// scheduler ran that thread again (up to tens of ms on a loaded machine).
void run_until_done(asio::io_context& io, std::function<asio::awaitable<void>()> task,
                    std::chrono::milliseconds grace) {
    bool task_done = false;
    std::exception_ptr failure;
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
        failure = e;
        task_done = true;
    });
    // Until the task ends: run_one() returns 0 only once the context ran out
    // of work or was stopped.
    while (!task_done)
        if (io.run_one() == 0) break;
    if (task_done && !io.stopped()) {
        // Work left `grace` after the task is a bug (a coroutine nobody
        // closes): say so, and stop the context so that the command still ends.
        // run_one_until() returns 0 when the context ran out of work (it is
        // stopped then) or when the deadline passed (it is not).
        const auto until = std::chrono::steady_clock::now() + grace;
        while (io.run_one_until(until) > 0) {
        }
        if (!io.stopped()) {
            spdlog::error(
                "internal: work still pending {} ms after the command finished; stopping it "
                "(please report this)",
                grace.count());
            io.stop();
        }
    }
    if (failure) std::rethrow_exception(failure);
}

}  // namespace tunnel::core
