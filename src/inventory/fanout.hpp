// Parallel fan-out over hosts: a generic "for each host, at most N at a time,
// run this coroutine" (used by `tunnel run` and the ops plan runner), and a
// command runner on top of it that streams output per host and classifies
// each host as ok, failed or unreachable.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "exec/command.hpp"
#include "exec/executor.hpp"
#include "ssh/connect_options.hpp"

namespace tunnel::inventory {

inline constexpr std::size_t default_forks = 50;
inline constexpr std::size_t max_forks = 1000;

// Runs `work(i)` for every i in [0, count), at most `forks` at once, starting
// them in index order as slots free up, on the caller's executor. Returns when
// every call has finished. One slow call holds only its own slot. An exception
// escaping a call is rethrown once all have finished.
asio::awaitable<void> for_each_host(std::size_t count, std::size_t forks,
                                    std::function<asio::awaitable<void>(std::size_t)> work);

enum class host_status { ok, failed, unreachable };
[[nodiscard]] std::string_view to_string(host_status s) noexcept;

// Unreachable (in Ansible's sense): we never got to run the command, or lost
// the host under it: resolve, connect, host key, auth, disconnect, breaker.
[[nodiscard]] bool is_unreachable(const core::error& e) noexcept;

struct fanout_target {
    std::string name;  // inventory name, shown in output
    core::result<ssh::connect_options>
        options;  // a resolution error makes the host fail without connecting
};

struct host_result {
    std::string name;
    std::string destination;  // user@host:port, empty if it never resolved
    host_status status = host_status::unreachable;
    int exit_code = -1;  // the command's exit code (124 on timeout, 128+N on signal)
    std::optional<std::string> signal;
    bool timed_out = false;
    std::string out, err;  // captured output (fanout_options::capture)
    std::string error;     // why it failed or was unreachable, when not the command's own status
    std::chrono::milliseconds duration{0};
};

enum class output_stream { out, err };

struct fanout_events {
    // One complete line (without '\n') of a host's output; a last line without
    // newline is delivered when that host finishes.
    std::function<void(std::size_t host, output_stream, std::string_view line)> on_line;
    // A host finished (in completion order).
    std::function<void(std::size_t host, const host_result&)> on_done;
};

struct fanout_options {
    std::size_t forks = default_forks;
    bool capture = false;  // keep output in host_result as well as streaming it
    // Caps each host's connect time and command run time (the executor adds
    // its grace to report a remote kill). Nullopt: the command's own timeout.
    std::optional<std::chrono::milliseconds> timeout;
};

struct fanout_summary {
    std::size_t ok = 0, failed = 0, unreachable = 0;
    std::chrono::milliseconds duration{0};
    [[nodiscard]] std::size_t total() const noexcept { return ok + failed + unreachable; }
};

[[nodiscard]] fanout_summary summarize(const std::vector<host_result>& results,
                                       std::chrono::milliseconds duration);

// Runs `cmd` on every target through `runner` (results in target order).
asio::awaitable<std::vector<host_result>> run_on_hosts(exec::executor& runner,
                                                       std::vector<fanout_target> targets,
                                                       exec::command cmd, fanout_options options,
                                                       fanout_events events = {});

// Splits a byte stream into lines; keeps the unfinished tail for the next chunk.
class line_splitter {
  public:
    template <class F>
    void feed(std::string_view data, F&& emit) {
        while (!data.empty()) {
            auto nl = data.find('\n');
            if (nl == std::string_view::npos) {
                partial_.append(data);
                if (partial_.size() > max_line)
                    flush(emit);  // no newline for too long: emit what we have
                return;
            }
            partial_.append(data.substr(0, nl));
            emit(std::string_view(partial_));
            partial_.clear();
            data.remove_prefix(nl + 1);
        }
    }
    template <class F>
    void flush(F&& emit) {
        if (!partial_.empty()) emit(std::string_view(partial_));
        partial_.clear();
    }

  private:
    static constexpr std::size_t max_line = 64 * 1024;
    std::string partial_;
};

}  // namespace tunnel::inventory
