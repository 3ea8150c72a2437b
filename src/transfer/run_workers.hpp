// Runs one piece of work on several coroutines of the current executor and
// waits for all of them (the SFTP channels of a copy work side by side).
#pragma once

#include <functional>

#include "core/asio.hpp"

namespace tunnel::transfer {

// Runs `work(slot)` for slot 0..n-1 concurrently and returns when all have
// finished; the first exception any of them threw is rethrown then.
asio::awaitable<void> run_workers(unsigned n, std::function<asio::awaitable<void>(unsigned)> work);

}  // namespace tunnel::transfer
