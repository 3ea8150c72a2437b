// Polling for a condition in tests that watch other processes (STYLE 14: a
// bounded wait with a testable result, never a bare sleep), and counting the
// events a `tunnel connect --json` client logged.
#pragma once

#include <chrono>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

namespace tunnel::test {

// Polls every `poll` until `pred` holds or `timeout` passes; `pred`'s last answer.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds poll = std::chrono::milliseconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(poll);
    }
    return pred();
}

// JSON lines of `log` whose "event" is `what`.
inline int client_events(const std::string& what, const std::string& log) {
    int n = 0;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_object() && j.value("event", "") == what) ++n;
    }
    return n;
}

}  // namespace tunnel::test
