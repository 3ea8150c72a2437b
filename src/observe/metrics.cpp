#include "observe/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace tunnel::observe {

namespace {

bool valid_metric_name(std::string_view n) {
    if (n.empty()) return false;
    for (std::size_t i = 0; i < n.size(); ++i) {
        char c = n[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

bool valid_label_name(std::string_view n) {
    if (n.empty() || n.substr(0, 2) == "__" || n.find(':') != std::string_view::npos) return false;
    return valid_metric_name(n);
}

void atomic_add(std::atomic<double>& a, double v) noexcept {
    double cur = a.load(std::memory_order_relaxed);
    while (!a.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
    }
}

std::string_view type_name(metric_type t) {
    switch (t) {
        case metric_type::counter:
            return "counter";
        case metric_type::gauge:
            return "gauge";
        case metric_type::histogram:
            return "histogram";
    }
    return "untyped";
}

// `{a="x",b="y"` without the closing brace (histograms append le), or empty.
std::string label_text(const std::vector<std::string>& names,
                       const std::vector<std::string>& values) {
    std::string out;
    for (std::size_t i = 0; i < names.size(); ++i)
        out +=
            fmt::format("{}{}=\"{}\"", i == 0 ? "{" : ",", names[i], escape_label_value(values[i]));
    return out;
}

void write_sample(std::string& out, std::string_view name, const std::string& labels, double v) {
    out += name;
    if (!labels.empty()) out += labels + "}";
    out += ' ';
    out += format_sample_value(v);
    out += '\n';
}

template <class Series>
std::unique_ptr<Series> make_series(const std::vector<double>& bounds) {
    if constexpr (std::is_same_v<Series, histogram>)
        return std::make_unique<histogram>(bounds);
    else
        return std::make_unique<Series>();
}

}  // namespace

std::string escape_help(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string escape_label_value(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (c == '"')
            out += "\\\"";
        else
            out += c;
    }
    return out;
}

std::string format_sample_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    return fmt::format("{}", v);
}

std::vector<double> default_latency_buckets() {
    return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

void counter::inc(double amount) noexcept {
    if (amount > 0) atomic_add(value_, amount);
}

void counter::advance_to(double total) noexcept {
    double cur = value_.load(std::memory_order_relaxed);
    while (total > cur && !value_.compare_exchange_weak(cur, total, std::memory_order_relaxed)) {
    }
}

void gauge::inc(double amount) noexcept {
    atomic_add(value_, amount);
}

histogram::histogram(const std::vector<double>& bounds)
    : bounds_(bounds),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {}

void histogram::observe(double v) noexcept {
    if (std::isnan(v)) return;
    auto at = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                       bounds_.begin());
    buckets_[at].fetch_add(1, std::memory_order_relaxed);
    atomic_add(sum_, v);
    count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::uint64_t> histogram::buckets() const {
    std::vector<std::uint64_t> out(bounds_.size() + 1);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = bucket(i);
    return out;
}

double histogram_quantile(double q, const std::vector<double>& bounds,
                          const std::vector<std::uint64_t>& buckets) {
    if (buckets.size() != bounds.size() + 1 || std::isnan(q)) return std::nan("");
    std::uint64_t total = 0;
    for (auto b : buckets) total += b;
    if (total == 0) return std::nan("");
    q = std::clamp(q, 0.0, 1.0);
    const double rank = q * static_cast<double>(total);
    std::uint64_t below = 0;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        const auto cumulative = below + buckets[i];
        if (static_cast<double>(cumulative) >= rank && buckets[i] > 0) {
            if (i == bounds.size()) return bounds.empty() ? std::nan("") : bounds.back();
            const double lower = i == 0 ? 0.0 : bounds[i - 1];
            const double upper = bounds[i];
            const double into =
                (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
            return lower + (upper - lower) * into;
        }
        below = cumulative;
    }
    return bounds.empty() ? std::nan("") : bounds.back();
}

// ---- families

template <class Series>
metric_family<Series>::metric_family(metrics_registry& owner, std::string name,
                                     std::vector<std::string> labels, std::size_t max_series,
                                     std::vector<double> bounds)
    : owner_(owner),
      name_(std::move(name)),
      labels_(std::move(labels)),
      max_series_(max_series),
      bounds_(std::move(bounds)) {
    if (labels_.empty()) series_.emplace(std::vector<std::string>{}, make_series<Series>(bounds_));
}

template <class Series>
Series& metric_family<Series>::find_or_add(std::vector<std::string> values) {
    if (values.size() != labels_.size())
        throw std::invalid_argument(fmt::format("metric {}: {} label values for {} label names",
                                                name_, values.size(), labels_.size()));
    bool overflowed = false;
    Series* series = nullptr;
    {
        std::lock_guard lock(mutex_);
        auto it = series_.find(values);
        if (it == series_.end()) {
            if (series_.size() >= max_series_) {
                overflowed = true;
                values.assign(labels_.size(), "other");
                it = series_.find(values);
            }
            if (it == series_.end())
                it = series_.emplace(std::move(values), make_series<Series>(bounds_)).first;
        }
        series = it->second.get();
    }
    if (overflowed) owner_.note_overflow(name_);
    return *series;
}

template <class Series>
Series& metric_family<Series>::with(std::initializer_list<std::string_view> label_values) {
    return find_or_add(std::vector<std::string>(label_values.begin(), label_values.end()));
}

template <class Series>
Series& metric_family<Series>::with(const std::vector<std::string>& label_values) {
    return find_or_add(label_values);
}

template <class Series>
std::size_t metric_family<Series>::series_count() const {
    std::lock_guard lock(mutex_);
    return series_.size();
}

namespace {
template <class Series>
double reading(const Series& s) {
    if constexpr (std::is_same_v<Series, histogram>)
        return static_cast<double>(s.count());
    else
        return s.value();
}
}  // namespace

template <class Series>
double metric_family<Series>::value(std::initializer_list<std::string_view> label_values) const {
    std::vector<std::string> key(label_values.begin(), label_values.end());
    std::lock_guard lock(mutex_);
    auto it = series_.find(key);
    return it == series_.end() ? 0.0 : reading(*it->second);
}

template <class Series>
double metric_family<Series>::total() const {
    std::lock_guard lock(mutex_);
    double sum = 0;
    for (const auto& [values, s] : series_) sum += reading(*s);
    return sum;
}

template <class Series>
std::vector<std::pair<std::vector<std::string>, const Series*>> metric_family<Series>::list()
    const {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<std::vector<std::string>, const Series*>> out;
    out.reserve(series_.size());
    for (const auto& [values, s] : series_) out.emplace_back(values, s.get());
    return out;
}

template <class Series>
void metric_family<Series>::write(std::string& out) const {
    std::lock_guard lock(mutex_);
    for (const auto& [values, s] : series_) {
        auto labels = label_text(labels_, values);
        if constexpr (std::is_same_v<Series, histogram>) {
            std::uint64_t cumulative = 0;
            auto bucket_labels = [&](std::string_view le) {
                return (labels.empty() ? std::string("{") : labels + ",") +
                       fmt::format("le=\"{}\"", le);
            };
            for (std::size_t i = 0; i < bounds_.size(); ++i) {
                cumulative += s->bucket(i);
                write_sample(out, name_ + "_bucket", bucket_labels(format_sample_value(bounds_[i])),
                             static_cast<double>(cumulative));
            }
            cumulative += s->bucket(bounds_.size());
            write_sample(out, name_ + "_bucket", bucket_labels("+Inf"),
                         static_cast<double>(cumulative));
            write_sample(out, name_ + "_sum", labels, s->sum());
            write_sample(out, name_ + "_count", labels, static_cast<double>(cumulative));
        } else {
            write_sample(out, name_, labels, s->value());
        }
    }
}

template class metric_family<counter>;
template class metric_family<gauge>;
template class metric_family<histogram>;

// ---- registry

struct metrics_registry::entry {
    std::string name;
    std::string help;
    metric_type type;
    std::vector<std::string> labels;
    std::vector<double> bounds;
    std::unique_ptr<counter_family> counters;
    std::unique_ptr<gauge_family> gauges;
    std::unique_ptr<histogram_family> histograms;

    [[nodiscard]] std::size_t series() const {
        return counters ? counters->series_count()
               : gauges ? gauges->series_count()
                        : histograms->series_count();
    }
    void write(std::string& out) const {
        if (counters) counters->write(out);
        if (gauges) gauges->write(out);
        if (histograms) histograms->write(out);
    }
};

metrics_registry::metrics_registry(std::size_t max_series_per_family)
    : max_series_(std::max<std::size_t>(1, max_series_per_family)) {
    // One series per family at most: bounded by the code, not by input.
    auto& e = add(
        "metrics_label_overflow_total",
        "Label sets collapsed into the \"other\" series because a family reached its series limit.",
        metric_type::counter, {"family"}, {});
    overflow_ = e.counters.get();
    overflow_->max_series_ = static_cast<std::size_t>(-1);
}

metrics_registry::~metrics_registry() = default;

metrics_registry::entry& metrics_registry::add(std::string name, std::string help, metric_type type,
                                               std::vector<std::string> labels,
                                               std::vector<double> bounds) {
    if (!valid_metric_name(name))
        throw std::invalid_argument(fmt::format("invalid metric name \"{}\"", name));
    for (const auto& l : labels)
        if (!valid_label_name(l) || (type == metric_type::histogram && l == "le"))
            throw std::invalid_argument(
                fmt::format("metric {}: invalid label name \"{}\"", name, l));
    for (std::size_t i = 0; i < bounds.size(); ++i)
        if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
            throw std::invalid_argument(
                fmt::format("metric {}: bucket bounds must be finite and increasing", name));
    std::lock_guard lock(mutex_);
    for (auto& e : entries_)
        if (e->name == name) {
            if (e->type != type || e->labels != labels || e->bounds != bounds)
                throw std::invalid_argument(
                    fmt::format("metric {} registered twice with different shapes", name));
            return *e;
        }
    auto e = std::make_unique<entry>();
    e->name = name;
    e->help = std::move(help);
    e->type = type;
    e->labels = labels;
    e->bounds = bounds;
    switch (type) {
        case metric_type::counter:
            e->counters.reset(
                new counter_family(*this, std::move(name), std::move(labels), max_series_));
            break;
        case metric_type::gauge:
            e->gauges.reset(
                new gauge_family(*this, std::move(name), std::move(labels), max_series_));
            break;
        case metric_type::histogram:
            e->histograms.reset(new histogram_family(*this, std::move(name), std::move(labels),
                                                     max_series_, std::move(bounds)));
            break;
    }
    entries_.push_back(std::move(e));
    return *entries_.back();
}

counter_family& metrics_registry::counter(std::string name, std::string help,
                                          std::vector<std::string> labels) {
    return *add(std::move(name), std::move(help), metric_type::counter, std::move(labels), {})
                .counters;
}

gauge_family& metrics_registry::gauge(std::string name, std::string help,
                                      std::vector<std::string> labels) {
    return *add(std::move(name), std::move(help), metric_type::gauge, std::move(labels), {}).gauges;
}

histogram_family& metrics_registry::histogram(std::string name, std::string help,
                                              std::vector<std::string> labels,
                                              std::vector<double> bounds) {
    return *add(std::move(name), std::move(help), metric_type::histogram, std::move(labels),
                std::move(bounds))
                .histograms;
}

void metrics_registry::note_overflow(const std::string& family) {
    overflow_->with({family}).inc();
}

double metrics_registry::overflows() const {
    double total = 0;
    std::lock_guard lock(overflow_->mutex_);
    for (const auto& [values, s] : overflow_->series_) total += s->value();
    return total;
}

std::string metrics_registry::expose() const {
    std::vector<const entry*> snapshot;
    {
        std::lock_guard lock(mutex_);
        for (const auto& e : entries_) snapshot.push_back(e.get());
    }
    // The overflow family last, and only once something overflowed.
    std::rotate(snapshot.begin(), snapshot.begin() + 1, snapshot.end());
    std::string out;
    for (const auto* e : snapshot) {
        if (e->series() == 0) continue;
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", e->name, escape_help(e->help), e->name,
                           type_name(e->type));
        e->write(out);
    }
    return out;
}

}  // namespace tunnel::observe
