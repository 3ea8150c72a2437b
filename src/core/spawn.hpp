// The one way to start a coroutine that nobody awaits. `asio::detached`
// swallows exceptions in Boost 1.74 (ARCHITECTURE §3); spawn() logs them with
// what the coroutine was doing, so a failure is never silent.
//
//   core::spawn(ex, serve_socket(state, std::move(sock)), "relay public connection");
//   core::spawn(ex, [p] { return p->pump(); }, "forward pump");
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "core/asio.hpp"

namespace tunnel::core {

// Logs an exception that escaped a spawned coroutine (error level, with `what`).
void report_spawn_failure(std::string_view what, std::exception_ptr error) noexcept;

template <typename Executor, typename Work>
void spawn(Executor&& executor, Work&& work, std::string_view what) {
    asio::co_spawn(std::forward<Executor>(executor), std::forward<Work>(work),
                   [name = std::string(what)](std::exception_ptr error) {
                       if (error) report_spawn_failure(name, error);
                   });
}

}  // namespace tunnel::core
