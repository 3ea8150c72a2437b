// Spans leave the process here (docs/relay.md "Tracing"): record() queues
// them and returns at once; a thread of the exporter's own logs them (when
// asked) and POSTs them in batches to an OTLP/HTTP collector in the JSON
// encoding (otlp_json.hpp). Nothing on a request's path waits for it:
//
//   - the queue is bounded (max_queue spans); a span that does not fit is
//     dropped and counted (outcome "dropped"), never waited for;
//   - a batch goes when it has max_batch spans or `interval` passed;
//   - a POST that fails (no collector, timeout, non-2xx) drops its batch,
//     counted ("failed") and logged at most once a minute;
//   - stop() (and the destructor) sends what is queued, for at most
//     flush_timeout, then joins the thread. It runs on no io_context: the
//     relay's workers' run() returns without waiting for it.
//
// Only http:// endpoints (a collector or agent next to the relay); TLS to a
// remote collector is the collector's job.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "observe/metrics.hpp"
#include "observe/span_record.hpp"

namespace tunnel::observe {

// An OTLP/HTTP traces endpoint: http://HOST[:PORT][/PATH]; port 4318 and
// path /v1/traces when absent.
struct otlp_endpoint {
    std::string host;
    std::uint16_t port = 4318;
    std::string target = "/v1/traces";
    [[nodiscard]] std::string to_string() const;  // "http://host:port/target"
};
[[nodiscard]] core::result<otlp_endpoint> parse_otlp_endpoint(std::string_view url);

struct span_exporter_options {
    std::optional<otlp_endpoint> otlp;  // none: spans are only logged
    std::string service_name = "tunnel";
    bool log_spans = false;  // one info line per span (JSON with --log-format json)
    std::size_t max_queue = 4096;
    std::size_t max_batch = 512;
    std::chrono::milliseconds interval{1000};
    std::chrono::milliseconds post_timeout{5000};
    std::chrono::milliseconds flush_timeout{3000};
    // {outcome}: exported, dropped, failed (may be null).
    counter_family* spans = nullptr;
};

class span_exporter {
  public:
    explicit span_exporter(span_exporter_options options);
    span_exporter(const span_exporter&) = delete;
    span_exporter& operator=(const span_exporter&) = delete;
    ~span_exporter();

    // Queues the spans of one request; never blocks on I/O.
    void record(std::vector<span_record>&& spans) noexcept;
    // Sends what is queued (up to flush_timeout) and joins. Idempotent.
    void stop();

    [[nodiscard]] const span_exporter_options& options() const noexcept { return options_; }
    [[nodiscard]] std::uint64_t exported() const noexcept;
    [[nodiscard]] std::uint64_t dropped() const noexcept;  // queue full, or not sent by stop()
    [[nodiscard]] std::uint64_t failed() const noexcept;   // in batches the collector did not take

  private:
    void run();
    void send(std::vector<span_record>& batch, std::chrono::steady_clock::time_point deadline);
    void count(const char* outcome, std::size_t n) noexcept;

    span_exporter_options options_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<span_record> queue_;
    bool stopping_ = false;
    std::chrono::steady_clock::time_point stop_deadline_{};
    std::uint64_t exported_ = 0;
    std::uint64_t dropped_ = 0;
    std::uint64_t failed_ = 0;
    std::chrono::steady_clock::time_point last_warning_{};
    std::thread thread_;  // last: started after everything above
};

}  // namespace tunnel::observe
