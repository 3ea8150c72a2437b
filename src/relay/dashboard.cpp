#include "relay/dashboard.hpp"

#include <cmath>
#include <map>

#include <fmt/format.h>

#include "core/spawn.hpp"
#include "core/utc_time.hpp"
#include "relay/dashboard_assets.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

using observe::admin_request;
using observe::admin_response;
using steady = std::chrono::steady_clock;
using json = nlohmann::json;

using core::utc_iso8601;

// "203.0.113.7:51234" -> "203.0.113.7"; "::1:51234" -> "::1".
std::string client_ip(const std::string& peer) {
    const auto colon = peer.rfind(':');
    std::string ip = colon == std::string::npos ? peer : peer.substr(0, colon);
    if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
    return ip;
}

json number_or_null(double v) {
    return std::isfinite(v) ? json(v) : json(nullptr);
}

// count, p50, p95, p99 of non-cumulative buckets (histogram_quantile).
json percentiles(const std::vector<double>& bounds, const std::vector<std::uint64_t>& buckets) {
    std::uint64_t count = 0;
    for (auto b : buckets) count += b;
    return {{"count", count},
            {"p50", number_or_null(observe::histogram_quantile(0.50, bounds, buckets))},
            {"p95", number_or_null(observe::histogram_quantile(0.95, bounds, buckets))},
            {"p99", number_or_null(observe::histogram_quantile(0.99, bounds, buckets))}};
}

struct merged_histogram {
    std::vector<double> bounds;
    std::vector<std::uint64_t> buckets;
    void add(const observe::histogram& h) {
        auto b = h.buckets();
        if (buckets.empty()) {
            bounds = h.bounds();
            buckets.assign(b.size(), 0);
        }
        for (std::size_t i = 0; i < b.size() && i < buckets.size(); ++i) buckets[i] += b[i];
    }
    [[nodiscard]] json summary() const {
        return buckets.empty()
                   ? json{{"count", 0}, {"p50", nullptr}, {"p95", nullptr}, {"p99", nullptr}}
                   : percentiles(bounds, buckets);
    }
};

struct tenant_totals {
    double requests = 0;
    double bytes_to_origin = 0;
    double bytes_from_origin = 0;
    unsigned tunnels = 0;
    merged_histogram latency;
    merged_histogram ttfb;
};

// Every series of a counter family, for the "limits hit" table: the metric
// name, its label and value, so the page names exactly what /metrics has.
void add_limits(json& out, const observe::counter_family& family, const std::string& label) {
    for (const auto& [values, series] : family.list()) {
        if (series->value() <= 0) continue;
        out.push_back({{"metric", family.name()},
                       {"label", label},
                       {"value", values.empty() ? std::string() : values.back()},
                       {"count", static_cast<std::uint64_t>(series->value())}});
    }
}

admin_response secured(admin_response r) {
    r.headers.emplace_back("Content-Security-Policy", std::string(dashboard_csp()));
    r.headers.emplace_back("X-Frame-Options", "DENY");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    r.headers.emplace_back("Cross-Origin-Resource-Policy", "same-origin");
    return r;
}

admin_response asset(std::string_view name) {
    for (const auto& a : dashboard_assets())
        if (a.name == name)
            return secured({200, std::string(a.content_type), std::string(a.body), {}});
    return admin_response::error(404, "not_found", "no such dashboard file");
}

}  // namespace

std::string_view dashboard_csp() noexcept {
    return "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
           "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
}

dashboard_feed::dashboard_feed(asio::any_io_executor executor, dashboard_options options)
    : executor_(std::move(executor)),
      options_(options),
      events_(std::make_shared<observe::event_stream>(
          observe::event_stream_options{options.max_subscribers, options.max_queued_bytes})),
      timer_(executor_) {}

void dashboard_feed::start(std::weak_ptr<relay_state> state) {
    core::spawn(
        executor_,
        [self = shared_from_this(), state = std::move(state)] { return self->run(state); },
        "dashboard feed");
}

void dashboard_feed::close() {
    closed_ = true;
    asio::post(executor_, [self = shared_from_this()] { self->timer_.cancel(); });
    events_->close_all();
}

void dashboard_feed::nudge() {
    if (closed_ || nudged_.exchange(true)) return;
    asio::post(executor_, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->timer_.cancel();
    });
}

void dashboard_feed::note_audit(const std::string& event, const json& fields) {
    {
        std::lock_guard lock(mutex_);
        audit_.push_front({{"time", utc_iso8601(std::chrono::system_clock::now())},
                           {"event", event},
                           {"fields", fields}});
        while (audit_.size() > options_.recent_audit) audit_.pop_back();
    }
    if (events_->subscribers() > 0) nudge();
}

json dashboard_feed::recent_audit() const {
    std::lock_guard lock(mutex_);
    return json(std::vector<json>(audit_.begin(), audit_.end()));
}

void dashboard_feed::sample(relay_state& st) {
    const auto now = steady::now();
    sample_point p{now, st.metrics.requests.total(), st.metrics.bytes.total()};
    std::lock_guard lock(mutex_);
    samples_.push_back(p);
    while (samples_.size() > 2 && now - samples_.front().at > options_.rate_window)
        samples_.pop_front();
}

json dashboard_feed::rate() const {
    std::lock_guard lock(mutex_);
    if (samples_.size() < 2) return nullptr;
    const auto& a = samples_.front();
    const auto& b = samples_.back();
    const double seconds = std::chrono::duration<double>(b.at - a.at).count();
    if (seconds <= 0) return nullptr;
    return {{"window_seconds", seconds},
            {"requests_per_second", (b.requests - a.requests) / seconds},
            {"bytes_per_second", (b.bytes - a.bytes) / seconds}};
}

asio::awaitable<void> dashboard_feed::run(std::weak_ptr<relay_state> weak) {
    auto self = shared_from_this();
    auto last = steady::now() - options_.interval;
    // The feed's own families (STYLE 12), mirrored from the event stream each tick.
    observe::gauge_family* subscribers = nullptr;
    observe::counter_family* dropped = nullptr;
    observe::counter_family* refused = nullptr;
    if (auto st = weak.lock()) {
        subscribers = &st->registry.gauge("relay_dashboard_subscribers",
                                          "Dashboards connected to /dashboard/events.");
        dropped = &st->registry.counter(
            "relay_dashboard_subscribers_dropped_total",
            "Dashboard subscribers dropped: they fell max_queued_bytes behind.");
        refused = &st->registry.counter(
            "relay_dashboard_subscribers_refused_total",
            "Dashboard subscriptions refused (503): max_subscribers were connected.");
    }
    while (!closed_) {
        const auto wait = nudged_ ? options_.min_spacing : options_.interval;
        timer_.expires_at(last + wait);
        boost::system::error_code ec;
        co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (closed_) break;
        if (ec && steady::now() < last + options_.min_spacing) continue;  // nudged: not yet
        nudged_ = false;
        last = steady::now();
        auto st = weak.lock();
        if (!st) break;
        sample(*st);
        if (subscribers) {
            subscribers->with({}).set(static_cast<double>(events_->subscribers()));
            dropped->with({}).advance_to(static_cast<double>(events_->dropped_total()));
            refused->with({}).advance_to(static_cast<double>(events_->refused_total()));
        }
        if (events_->subscribers() == 0) continue;
        json snapshot = dashboard_snapshot(*st);
        snapshot["rate"] = rate();
        snapshot["audit"] = recent_audit();
        events_->publish("snapshot", snapshot.dump(-1, ' ', false, json::error_handler_t::replace));
    }
}

json dashboard_snapshot(relay_state& st) {
    const auto& m = st.metrics;
    const auto now_sys = std::chrono::system_clock::now();
    json out;
    out["time"] = utc_iso8601(now_sys);
    out["relay"] = {
        {"uptime_seconds",
         std::chrono::duration_cast<std::chrono::seconds>(steady::now() - st.started).count()},
        {"stopping", st.stopping.load()},
        {"workers", st.workers.size()},
        {"in_flight", st.in_flight.load()},
        {"public_connections", static_cast<std::uint64_t>(m.open_connections.total())},
        {"attaches", static_cast<std::uint64_t>(m.attaches.value({"attached"}))},
        {"detaches", static_cast<std::uint64_t>(m.detaches.total())}};

    // Per tenant, from the families /metrics exposes.
    std::map<std::string, tenant_totals> tenants;
    std::map<std::string, std::uint64_t> by_class;
    double requests = 0;
    for (const auto& [labels, c] : m.requests.list()) {  // {tenant, route, status}
        tenants[labels[0]].requests += c->value();
        by_class[labels[2]] += static_cast<std::uint64_t>(c->value());
        requests += c->value();
    }
    double to_origin = 0, from_origin = 0;
    for (const auto& [labels, c] : m.bytes.list()) {  // {tenant, direction}
        auto& t = tenants[labels[0]];
        if (labels[1] == "to_origin") {
            t.bytes_to_origin += c->value();
            to_origin += c->value();
        } else {
            t.bytes_from_origin += c->value();
            from_origin += c->value();
        }
    }
    merged_histogram latency, ttfb;
    for (const auto& [labels, h] : m.latency.list()) {
        tenants[labels[0]].latency.add(*h);
        latency.add(*h);
    }
    for (const auto& [labels, h] : m.ttfb.list()) {
        tenants[labels[0]].ttfb.add(*h);
        ttfb.add(*h);
    }
    out["totals"] = {{"requests", static_cast<std::uint64_t>(requests)},
                     {"requests_by_class", by_class},
                     {"bytes_to_origin", static_cast<std::uint64_t>(to_origin)},
                     {"bytes_from_origin", static_cast<std::uint64_t>(from_origin)}};
    out["latency"] = latency.summary();
    out["ttfb"] = ttfb.summary();

    // Tunnels, their names (with access mode and breaker) from the route table.
    const auto table = st.table();
    std::map<std::uint64_t, json> names_of;
    json breakers = json::array();
    for (const auto& [key, ref] : table->routes) {
        auto t = ref.tunnel.lock();
        const auto state =
            t ? std::string(pool::to_string(t->breaker_seen.load())) : std::string("closed");
        names_of[ref.id].push_back({{"name", key.second}, {"access", ref.access}});
        breakers.push_back({{"tenant", key.first}, {"route", key.second}, {"state", state}});
    }
    const std::size_t max_tunnels = st.dashboard ? st.dashboard->options().max_tunnels : 500;
    json tunnels = json::array();
    std::size_t omitted = 0;
    for (const auto& [id, ref] : table->tunnels) {
        auto t = ref.tunnel.lock();
        if (!t) continue;
        ++tenants[t->policy.tenant].tunnels;
        if (tunnels.size() >= max_tunnels) {
            ++omitted;
            continue;
        }
        auto names = names_of.count(id) ? names_of[id] : json::array();
        tunnels.push_back(
            {{"id", t->id},
             {"tenant", t->policy.tenant},
             {"names", names},
             {"client_ip", client_ip(t->peer)},
             {"attached_at", utc_iso8601(t->attached_at)},
             {"uptime_seconds",
              std::chrono::duration_cast<std::chrono::seconds>(now_sys - t->attached_at).count()},
             {"active_streams", t->active_streams.load()},
             {"max_streams", t->policy.max_streams},
             {"requests", t->requests.load()},
             {"bytes_to_origin", t->bytes_to_origin.load()},
             {"bytes_from_origin", t->bytes_from_origin.load()},
             {"breaker", std::string(pool::to_string(t->breaker_seen.load()))}});
    }
    out["tunnels"] = tunnels;
    out["tunnels_omitted"] = omitted;
    out["breakers"] = breakers;

    json tenant_list = json::array();
    for (const auto& [name, t] : tenants)
        tenant_list.push_back(
            {{"tenant", name},
             {"tunnels", t.tunnels},
             {"requests", static_cast<std::uint64_t>(t.requests)},
             {"bytes_to_origin", static_cast<std::uint64_t>(t.bytes_to_origin)},
             {"bytes_from_origin", static_cast<std::uint64_t>(t.bytes_from_origin)},
             {"latency", t.latency.summary()},
             {"ttfb", t.ttfb.summary()}});
    out["tenants"] = tenant_list;

    json limits = json::array();
    add_limits(limits, m.limits_hit, "limit");
    add_limits(limits, m.tenant_limits, "limit");
    add_limits(limits, m.connections_refused, "cap");
    add_limits(limits, m.callers_cut_off, "why");
    add_limits(limits, m.attach_throttled, "");
    out["limits"] = limits;
    return out;
}

std::vector<observe::admin_endpoint> dashboard_endpoints(
    const std::shared_ptr<relay_state>& state) {
    std::weak_ptr<relay_state> weak = state;
    std::vector<observe::admin_endpoint> table;
    auto file = [](std::string_view name) {
        return [name](const admin_request&) { return asset(name); };
    };
    table.push_back({"/dashboard", "the dashboard (redirects to /dashboard/)",
                     [](const admin_request&) {
                         auto r = admin_response::text("see /dashboard/\n", 308);
                         r.headers.emplace_back("Location", "/dashboard/");
                         return r;
                     },
                     false, false, true});
    table.push_back({"/dashboard/",
                     "the relay's web dashboard (HTML; the admin token as the "
                     "password of the browser's login prompt)",
                     file("index.html"), false, false, true});
    for (const auto& a : dashboard_assets()) {
        if (a.name == "index.html") continue;
        table.push_back({"/dashboard/" + std::string(a.name), "a file of the dashboard",
                         file(a.name), false, false, true});
    }
    table.push_back(
        {"/dashboard/events",
         "the dashboard's live feed: Server-Sent Events, one `snapshot` (JSON) a second",
         [weak](const admin_request&) {
             auto st = weak.lock();
             if (!st || !st->dashboard)
                 return admin_response::error(503, "stopped", "the relay has stopped");
             auto sub = st->dashboard->events()->subscribe();
             if (!sub)
                 return secured(admin_response::error(
                     503, "too_many_subscribers",
                     fmt::format("{} dashboards are open on this relay (the limit); close one "
                                 "and retry",
                                 st->dashboard->options().max_subscribers)));
             st->dashboard->nudge();  // its first snapshot now, not in a second
             return secured(admin_response::event_stream(std::move(sub)));
         },
         false, false, true});
    return table;
}

}  // namespace tunnel::relay
