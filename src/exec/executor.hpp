// Runs commands on remote hosts over pooled sessions: streaming output as
// events, timeouts that leave nothing running, retries only where nothing can
// have started, a circuit breaker per host and allow/deny rules.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/backoff.hpp"
#include "core/error.hpp"
#include "exec/command.hpp"
#include "exec/command_rules.hpp"
#include "exec/pooled_runner.hpp"
#include "pool/circuit_breaker.hpp"
#include "pool/session_pool.hpp"
#include "ssh/connect_options.hpp"

namespace tunnel::exec {

struct exec_result {
    std::string destination;
    int exit_status = -1;               // remote status; -1 when killed by a signal
    std::optional<std::string> signal;  // "TERM", "KILL", ... when the command died of one
    bool timed_out = false;
    std::string out;  // captured stdout (only when run_options::capture)
    std::string err;  // captured stderr (only when run_options::capture)
    std::chrono::milliseconds duration{0};
    unsigned attempts = 0;

    // The exit code a CLI should use: status, 128+N for signal N, 124 on timeout.
    [[nodiscard]] int exit_code() const;
};

// Live output. Called on the executor's strand, in arrival order per stream.
struct exec_events {
    std::function<void(std::string_view)> on_stdout;
    std::function<void(std::string_view)> on_stderr;
    std::function<void(unsigned attempt, const core::error&, std::chrono::milliseconds delay)>
        on_retry;
};

// Supplies the command's stdin. `read` returns the next chunk, an empty
// string at EOF, or an error.
struct input_source {
    virtual ~input_source() = default;
    virtual asio::awaitable<core::result<std::string>> read() = 0;
    // Abandons a pending read (the command finished first).
    virtual void cancel() {}
};

// Standard input from a file path, or "-" for this process's stdin.
[[nodiscard]] core::result<std::unique_ptr<input_source>> open_input(asio::any_io_executor executor,
                                                                     const std::string& path);

struct run_options {
    unsigned retries = 0;  // extra attempts for failures before the command started
    core::backoff_policy backoff{std::chrono::milliseconds(250), std::chrono::seconds(10), 0};
    core::random_source random;  // injectable for tests; default: random_device
    bool capture = false;        // keep output in the result as well as streaming it
    // Asked for the sudo password when command::sudo_password is set.
    std::function<std::optional<std::string>()> sudo_password;
    std::unique_ptr<input_source> input;
};

class executor {
  public:
    executor(pool::session_pool& pool, pool::breaker_registry& breakers, command_rules rules = {});

    asio::awaitable<core::result<exec_result>> run(const ssh::connect_options& target,
                                                   const command& cmd, exec_events events = {},
                                                   run_options options = {});

    // Commands go to `pooled` first (the link manager's sessions); those it
    // declines, and those with a pty, a sudo password or agent forwarding, run
    // on this executor's own pool.
    void use_pooled(std::shared_ptr<pooled_runner> pooled) { pooled_ = std::move(pooled); }

  private:
    std::shared_ptr<pooled_runner> pooled_;
    pool::session_pool& pool_;
    pool::breaker_registry& breakers_;
    command_rules rules_;
};

}  // namespace tunnel::exec
