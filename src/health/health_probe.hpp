// Runs the probe script on many hosts at once (one exec per host over the
// pooled SSH session) and turns each answer into a host_report.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "exec/executor.hpp"
#include "health/health_report.hpp"
#include "health/thresholds.hpp"
#include "ssh/connect_options.hpp"

namespace tunnel::health {

struct probe_target {
    std::string name;  // inventory name
    core::result<ssh::connect_options> options;
};

struct probe_options {
    std::size_t forks = 50;
    // Caps each host's connect and the probe's run time.
    std::chrono::milliseconds timeout{std::chrono::seconds(20)};
};

// One round: every target probed and evaluated, reports in target order.
asio::awaitable<std::vector<host_report>> probe_hosts(exec::executor& runner,
                                                      const std::vector<probe_target>& targets,
                                                      const thresholds& t, probe_options options);

}  // namespace tunnel::health
