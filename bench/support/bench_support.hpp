// What every benchmark driver in bench/ shares (shared/PEERS.md): medians,
// command-line numbers, child processes with their logs in one directory,
// and the load generator `wrk` with its output parsed.
#pragma once

#include <chrono>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace tunnel::bench {

// The median of `v` (the upper one for an even count); 0 when empty.
[[nodiscard]] double median(std::vector<double> v);

// The `p` quantile (nearest rank) of `v`; 0 when empty.
[[nodiscard]] double quantile(std::vector<double> v, double p);
// Milliseconds since `t`.
[[nodiscard]] double ms_since(std::chrono::steady_clock::time_point t);
// Runs argv (looked up in PATH) to completion with stdin, stdout and stderr on
// /dev/null; its wall time in milliseconds, or -1 when it could not start or
// did not exit 0.
[[nodiscard]] double time_process(const std::vector<std::string>& argv);

// `--name N` from argv, or `def`.
[[nodiscard]] int arg_int(int argc, char** argv, const char* name, int def);
// `--name TEXT` from argv, or `def`.
[[nodiscard]] std::string arg_text(int argc, char** argv, const char* name, std::string def);
// `--name "CMD ARGS"` from argv split on spaces (a command to run another
// under, e.g. "valgrind --tool=callgrind"), or nothing.
[[nodiscard]] std::vector<std::string> arg_words(int argc, char** argv, const char* name);
// Whether the flag `--name` is present.
[[nodiscard]] bool arg_flag(int argc, char** argv, const char* name);

// A file's text, or "(no log)".
[[nodiscard]] std::string log_of(const std::string& path);

// Background processes whose stdout and stderr go to DIR/<log>; killed (in
// reverse order) when this goes away.
class children {
  public:
    explicit children(const test::temp_dir& dir) : dir_(dir) {}
    children(const children&) = delete;
    children& operator=(const children&) = delete;
    ~children() { clear(); }
    // Starts argv; false (and a message on stderr) when it cannot start.
    bool start(std::vector<std::string> argv, const std::string& log);
    // Waits until `re` matches the log; the first group of the match, or
    // nullopt (with the log on stderr) when `timeout` passed first.
    [[nodiscard]] std::optional<std::string> wait_log(const std::string& log, const std::regex& re,
                                                      std::chrono::milliseconds timeout) const;
    [[nodiscard]] int pid(std::size_t i) const { return procs_.at(i).pid(); }
    void clear();

  private:
    const test::temp_dir& dir_;
    std::vector<test::child_process> procs_;
};

// CPU time (user + system) a process has used so far, in seconds; -1 when
// it is gone.
[[nodiscard]] double cpu_seconds(int pid);
// Resident set size of a process in KiB (VmRSS); -1 when it is gone.
[[nodiscard]] long rss_kib(int pid);

// One `wrk` run and what it printed.
struct wrk_result {
    double requests_per_second = 0;
    double p50_ms = 0, p99_ms = 0;
    long long requests = 0;
    long long non_2xx = 0;        // "Non-2xx or 3xx responses"
    long long socket_errors = 0;  // connect + read + write + timeout
    std::string output;
    [[nodiscard]] bool clean() const { return requests > 0 && non_2xx == 0 && socket_errors == 0; }
};

struct wrk_options {
    int threads = 2;
    int connections = 32;
    std::chrono::seconds duration{4};
    std::vector<std::string> headers;  // "Name: value"
    std::string script;                // -s FILE (e.g. a pacing script)
};

// Runs wrk --latency against `url`; nullopt when wrk could not run or its
// output could not be read (the output is printed on stderr then).
[[nodiscard]] std::optional<wrk_result> run_wrk(const std::string& url, const wrk_options& o);

// Parses wrk --latency output (exposed for tests of the parser).
[[nodiscard]] std::optional<wrk_result> parse_wrk(const std::string& out);

// nginx (Debian's nginx-light) serving DIR/www on 127.0.0.1:port, one
// worker, no access log, keep-alive without a request cap.
class nginx_server {
  public:
    // Starts nginx with files `files` (name -> content) under DIR/www.
    [[nodiscard]] static std::optional<nginx_server> start(
        const test::temp_dir& dir, children& procs,
        const std::vector<std::pair<std::string, std::string>>& files);
    [[nodiscard]] std::uint16_t port() const { return port_; }

  private:
    std::uint16_t port_ = 0;
};

// GET `path` on 127.0.0.1:port until a 200 comes (or `timeout`).
[[nodiscard]] bool wait_http_ok(std::uint16_t port, const std::string& path,
                                std::chrono::milliseconds timeout);

}  // namespace tunnel::bench
