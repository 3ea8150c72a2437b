#include "ui/dashboard_model.hpp"

#include <algorithm>

namespace tunnel::ui {

namespace {

// A rate needs counters at least this far apart.
constexpr auto min_rate_interval = std::chrono::milliseconds(500);

std::string text(const nlohmann::json& j, const char* key, std::size_t max = 200) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? sanitize(it->get_ref<const std::string&>(), max)
                                            : std::string();
}

std::optional<double> number(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
}

std::uint64_t count(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return 0;  // unsigned ones too
    return it->is_number_unsigned()
               ? it->get<std::uint64_t>()
               : static_cast<std::uint64_t>(std::max<std::int64_t>(it->get<std::int64_t>(), 0));
}

transport_row parse_transport(const nlohmann::json& t, std::size_t preferred) {
    transport_row r;
    r.index = static_cast<std::size_t>(number(t, "index").value_or(0));
    r.name = text(t, "name", 64);
    r.type = text(t, "type", 32);
    r.state = text(t, "state", 32);
    r.active = t.value("active", false);
    r.preferred = r.index == preferred;
    r.rtt_ms = number(t, "rtt_ms");
    r.ewma_ms = number(t, "rtt_ewma_ms");
    if (auto s = number(t, "score")) r.score = static_cast<int>(*s);
    if (auto p = t.find("predicted_failure_s"); p != t.end() && p->is_object())
        r.predicted = prediction{number(*p, "in").value_or(0), number(*p, "error").value_or(0)};
    if (auto s = t.find("rtt_samples_ms"); s != t.end() && s->is_array())
        for (const auto& v : *s)
            if (v.is_number() && r.rtt_samples_ms.size() < 256)
                r.rtt_samples_ms.push_back(v.get<double>());
    r.failure_streak = static_cast<int>(number(t, "failure_streak").value_or(0));
    r.last_error = text(t, "last_error");
    return r;
}

link_row parse_link(const nlohmann::json& l) {
    link_row r;
    r.name = text(l, "name", 64);
    r.state = text(l, "state", 32);
    r.target = text(l, "target", 128);
    if (auto t = l.find("transport"); t != l.end() && t->is_object())
        if (auto i = number(*t, "index")) r.active = static_cast<std::size_t>(*i);
    if (auto p = l.find("preferred"); p != l.end() && p->is_object())
        r.preferred = static_cast<std::size_t>(number(*p, "index").value_or(0));
    r.rtt_ms = number(l, "rtt_ms");
    if (auto b = l.find("bytes"); b != l.end() && b->is_object()) {
        r.bytes_in = count(*b, "in");
        r.bytes_out = count(*b, "out");
    }
    r.switches = count(l, "switches");
    r.escalations = count(l, "escalations");
    r.recovery_step = text(l, "recovery_step", 32);
    if (auto ts = l.find("transports"); ts != l.end() && ts->is_array())
        for (const auto& t : *ts)
            if (t.is_object() && r.transports.size() < 64)
                r.transports.push_back(parse_transport(t, r.preferred));
    return r;
}

}  // namespace

const transport_row* link_row::active_transport() const {
    if (!active) return nullptr;
    for (const auto& t : transports)
        if (t.index == *active) return &t;
    return nullptr;
}

bool dashboard_model::apply_ls(const nlohmann::json& reply, clock::time_point now) {
    if (!reply.is_object() || !reply.value("ok", false)) return false;
    auto all = reply.find("links");
    if (all == reply.end() || !all->is_array()) return false;
    std::vector<link_row> next;
    std::vector<std::pair<std::string, counters>> seen;
    for (const auto& l : *all) {
        if (!l.is_object() || next.size() >= max_links) continue;
        auto row = parse_link(l);
        auto old_counters = std::find_if(previous_.begin(), previous_.end(),
                                         [&](const auto& p) { return p.first == row.name; });
        auto old_row = std::find_if(links_.begin(), links_.end(),
                                    [&](const auto& o) { return o.name == row.name; });
        counters keep{now, row.bytes_in, row.bytes_out};
        if (old_counters != previous_.end()) {
            const auto& c = old_counters->second;
            const auto dt = std::chrono::duration<double>(now - c.at).count();
            if (now - c.at >= min_rate_interval) {
                // Counters that went back (a new manager) restart the rate at 0.
                row.rate_in = row.bytes_in >= c.in ? (row.bytes_in - c.in) / dt : 0;
                row.rate_out = row.bytes_out >= c.out ? (row.bytes_out - c.out) / dt : 0;
            } else {
                keep = c;
                if (old_row != links_.end()) {
                    row.rate_in = old_row->rate_in;
                    row.rate_out = old_row->rate_out;
                }
            }
        }
        seen.emplace_back(row.name, keep);
        next.push_back(std::move(row));
    }
    links_ = std::move(next);
    previous_ = std::move(seen);
    if (!selected() && !links_.empty()) selected_ = links_.front().name;
    return true;
}

void dashboard_model::apply_event(const nlohmann::json& event) {
    if (!event.is_object()) return;
    event_row r;
    if (event.contains("ok") && !event.value("ok", true)) {
        r.type = "error";
        r.text = "error: " + text(event, "error");
    } else {
        r.type = text(event, "type", 40);
        r.link = text(event, "link", 64);
        r.text = describe_event(event);
    }
    r.time_ms = static_cast<std::int64_t>(number(event, "time_ms").value_or(0));
    events_.push_back(std::move(r));
    while (events_.size() > max_events) events_.pop_front();
}

std::vector<event_row> dashboard_model::events_of(const std::string& name, std::size_t n) const {
    std::vector<event_row> out;
    for (auto it = events_.rbegin(); it != events_.rend() && out.size() < n; ++it)
        if (it->link == name) out.push_back(*it);
    std::reverse(out.begin(), out.end());
    return out;
}

std::optional<std::size_t> dashboard_model::selected_index() const {
    for (std::size_t i = 0; i < links_.size(); ++i)
        if (links_[i].name == selected_) return i;
    return std::nullopt;
}

const link_row* dashboard_model::selected() const {
    auto i = selected_index();
    return i ? &links_[*i] : nullptr;
}

void dashboard_model::select_next() {
    if (links_.empty()) return;
    auto i = selected_index();
    selected_ = links_[i ? std::min(*i + 1, links_.size() - 1) : 0].name;
}

void dashboard_model::select_previous() {
    if (links_.empty()) return;
    auto i = selected_index();
    selected_ = links_[i && *i > 0 ? *i - 1 : 0].name;
}

std::optional<nlohmann::json> dashboard_model::restart_request() const {
    const auto* l = selected();
    if (!l) return std::nullopt;
    return nlohmann::json{{"cmd", "restart"}, {"link", l->name}};
}

std::optional<nlohmann::json> dashboard_model::switch_request() const {
    const auto* l = selected();
    if (!l || l->transports.size() < 2) return std::nullopt;
    const auto n = l->transports.size();
    std::size_t at = 0;
    for (std::size_t i = 0; i < n; ++i)
        if (l->transports[i].index == l->preferred) at = i;
    for (std::size_t step = 1; step < n; ++step) {
        const auto& t = l->transports[(at + step) % n];
        if (t.state != "unsupported")
            return nlohmann::json{
                {"cmd", "switch"}, {"link", l->name}, {"transport", std::to_string(t.index)}};
    }
    return std::nullopt;
}

}  // namespace tunnel::ui
