// Prometheus metrics (STYLE 12): a registry of counter, gauge and histogram
// families, each with its label names fixed at registration, exposed in the
// text format 0.0.4.
//
// Label sets are bounded: a family holds at most `max_series` label sets;
// a new set beyond that is counted in the series whose every label is
// "other", and metrics_label_overflow_total{family="<name>"} goes up.
//
//   observe::metrics_registry registry;
//   auto& requests = registry.counter("relay_requests_total", "Public requests.", {"tenant",
//   "status"}); requests.with({"acme", "200"}).inc(); auto& latency =
//   registry.histogram("relay_request_seconds", "Latency.", {}, {0.01, 0.1, 1});
//   latency.with({}).observe(0.042);
//   std::string text = registry.expose();
//
// Thread-safe: families and series may be used from any thread; references
// returned by the registry and by with() stay valid for the registry's life.
// Registering a bad name, or calling with() with the wrong number of labels,
// is a programming error and throws std::invalid_argument.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tunnel::observe {

class counter {
  public:
    void inc(double amount = 1) noexcept;  // negative amounts are ignored
    // Raises the value to `total` (never lowers it): for a counter that
    // mirrors a cumulative count kept elsewhere, e.g. a snapshot of stats.
    void advance_to(double total) noexcept;
    [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<double> value_{0};
};

class gauge {
  public:
    void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
    void inc(double amount = 1) noexcept;
    void dec(double amount = 1) noexcept { inc(-amount); }
    [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<double> value_{0};
};

class histogram {
  public:
    explicit histogram(const std::vector<double>& bounds);
    void observe(double v) noexcept;
    [[nodiscard]] std::uint64_t count() const noexcept {
        return count_.load(std::memory_order_relaxed);
    }
    [[nodiscard]] double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }
    // Non-cumulative count of bucket i (bounds.size() + 1 buckets, the last is +Inf).
    [[nodiscard]] std::uint64_t bucket(std::size_t i) const noexcept {
        return buckets_[i].load(std::memory_order_relaxed);
    }
    [[nodiscard]] const std::vector<double>& bounds() const noexcept { return bounds_; }
    // Every bucket's non-cumulative count (bounds().size() + 1 of them).
    [[nodiscard]] std::vector<std::uint64_t> buckets() const;

  private:
    const std::vector<double>& bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
    std::atomic<std::uint64_t> count_{0};
    std::atomic<double> sum_{0};
};

enum class metric_type { counter, gauge, histogram };

class metrics_registry;

// The label sets of one metric name.
template <class Series>
class metric_family {
  public:
    // The series for these label values (in the order of the label names).
    Series& with(std::initializer_list<std::string_view> label_values);
    Series& with(const std::vector<std::string>& label_values);

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] std::size_t series_count() const;
    // Reads without creating a series: the value of one label set (0 when it
    // has none yet), and the sum over every series (histograms: counts).
    [[nodiscard]] double value(std::initializer_list<std::string_view> label_values) const;
    [[nodiscard]] double total() const;
    // Every series with its label values (in label-name order); the
    // pointers stay valid for the registry's life.
    [[nodiscard]] std::vector<std::pair<std::vector<std::string>, const Series*>> list() const;

  private:
    friend class metrics_registry;
    metric_family(metrics_registry& owner, std::string name, std::vector<std::string> labels,
                  std::size_t max_series, std::vector<double> bounds = {});
    Series& find_or_add(std::vector<std::string> values);
    void write(std::string& out) const;

    metrics_registry& owner_;
    std::string name_;
    std::vector<std::string> labels_;
    std::size_t max_series_;
    std::vector<double> bounds_;  // histograms only
    mutable std::mutex mutex_;
    std::map<std::vector<std::string>, std::unique_ptr<Series>> series_;
};

using counter_family = metric_family<counter>;
using gauge_family = metric_family<gauge>;
using histogram_family = metric_family<histogram>;

class metrics_registry {
  public:
    static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

    explicit metrics_registry(std::size_t max_series_per_family = 1000);
    ~metrics_registry();
    metrics_registry(const metrics_registry&) = delete;
    metrics_registry& operator=(const metrics_registry&) = delete;

    // Registering a name again with the same type and labels returns the
    // existing family; with a different type or labels it throws.
    counter_family& counter(std::string name, std::string help,
                            std::vector<std::string> labels = {});
    gauge_family& gauge(std::string name, std::string help, std::vector<std::string> labels = {});
    // `bounds`: strictly increasing finite upper bounds; +Inf is implied.
    histogram_family& histogram(std::string name, std::string help, std::vector<std::string> labels,
                                std::vector<double> bounds);

    // Every family in registration order, series sorted by label values.
    [[nodiscard]] std::string expose() const;

    // Label sets collapsed into "other" so far, over all families.
    [[nodiscard]] double overflows() const;

  private:
    template <class Series>
    friend class metric_family;
    struct entry;
    entry& add(std::string name, std::string help, metric_type type,
               std::vector<std::string> labels, std::vector<double> bounds);
    void note_overflow(const std::string& family);

    std::size_t max_series_;
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<entry>> entries_;
    counter_family* overflow_ = nullptr;
};

// Latency buckets in seconds, 1 ms .. 60 s.
[[nodiscard]] std::vector<double> default_latency_buckets();

// The q-quantile (0 <= q <= 1) of a histogram as Prometheus'
// histogram_quantile() computes it: linear interpolation inside the bucket
// where the rank falls (from 0 for the first bucket); the highest finite
// bound when it falls in +Inf. `buckets` are non-cumulative, bounds.size() + 1
// of them. NaN when there are no observations.
[[nodiscard]] double histogram_quantile(double q, const std::vector<double>& bounds,
                                        const std::vector<std::uint64_t>& buckets);

// Text-format escaping (exposed for tests): HELP escapes '\\' and newline;
// label values also '"'.
[[nodiscard]] std::string escape_help(std::string_view text);
[[nodiscard]] std::string escape_label_value(std::string_view text);
// Sample values as Prometheus reads them: "1", "0.25", "+Inf", "-Inf", "NaN".
[[nodiscard]] std::string format_sample_value(double v);

}  // namespace tunnel::observe
