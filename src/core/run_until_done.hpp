// Runs a command's top coroutine to a clean end: io_context::run() returns by
// itself, because the task and every coroutine it started have finished or
// been cancelled. Nothing is cut off half-way (a stopped context abandons
// whatever is mid-flight) and nothing is left for LeakSanitizer at exit.
//
//   asio::io_context io;
//   core::run_until_done(io, [&]() -> asio::awaitable<void> {
//       outcome = co_await runner.run(target, cmd);
//       signals.cancel();  // close what the task opened
//   });
#pragma once

#include <chrono>
#include <functional>

#include "core/asio.hpp"

namespace tunnel::core {

// Runs `task` on `io` until io.run() returns. The task closes what it opened
// (sessions, listeners, signal sets, stdin readers) before it returns. Work
// still pending `grace` after the task finished is a bug: it is logged as an
// internal error and the context is stopped, so the command still ends. An
// exception escaping the task is rethrown here.
void run_until_done(asio::io_context& io, std::function<asio::awaitable<void>()> task,
                    std::chrono::milliseconds grace = std::chrono::seconds(5));

}  // namespace tunnel::core
