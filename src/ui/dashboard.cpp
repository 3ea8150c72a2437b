#include "ui/dashboard.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace tunnel::ui {

namespace {

nlohmann::json parse_object(const std::string& line) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    return j.is_object() ? j : nlohmann::json();
}

// "tcp#1" for the preferred transport of a `switch` reply's link.
std::string preferred_of(const nlohmann::json& reply) {
    const auto l = reply.value("link", nlohmann::json::object());
    const auto p = l.value("preferred", nlohmann::json::object());
    return fmt::format("{}#{}", sanitize(p.value("name", std::string("?")), 64),
                       p.value("index", 0));
}

}  // namespace

core::result<dashboard> dashboard::connect(std::string path, dashboard_timing timing) {
    auto requests = control_stream::open(path);
    if (!requests) return tl::unexpected(requests.error());
    auto events = control_stream::open(path);
    if (!events) return tl::unexpected(events.error());
    if (auto s = events->send({{"cmd", "events"}}); !s) return tl::unexpected(s.error());
    return dashboard(std::move(path), timing, std::move(*requests), std::move(*events));
}

dashboard::dashboard(std::string path, dashboard_timing timing, control_stream requests,
                     control_stream events)
    : path_(std::move(path)),
      timing_(timing),
      requests_(std::move(requests)),
      events_(std::move(events)) {
    view_.socket = path_;
}

std::vector<pollfd> dashboard::poll_entries() const {
    std::vector<pollfd> out;
    for (const auto* s : {&requests_, &events_})
        out.push_back(*s && (*s)->is_open() ? (*s)->poll_entry() : pollfd{-1, 0, 0});
    return out;
}

int dashboard::timeout_ms(clock::time_point now) const {
    auto next = now + std::chrono::milliseconds(250);
    if (view_.connected) {
        if (!ls_sent_) next = std::min(next, next_ls_);
    } else {
        next = std::min(next, next_reconnect_);
    }
    if (status_until_) next = std::min(next, *status_until_);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
    return static_cast<int>(std::max<std::int64_t>(ms, 0));
}

void dashboard::on_ready(const std::vector<pollfd>& ready, clock::time_point now) {
    if (!view_.connected) return;
    std::vector<std::string> lines;
    if (ready.size() > 0 && ready[0].revents && requests_) {
        auto r = requests_->on_ready(ready[0].revents, lines);
        for (const auto& l : lines) on_reply(l, now);
        if (!r) return disconnect(r.error().message, now);
    }
    lines.clear();
    if (ready.size() > 1 && ready[1].revents && events_) {
        auto r = events_->on_ready(ready[1].revents, lines);
        for (const auto& l : lines) on_event(l, now);
        if (!r) return disconnect(r.error().message, now);
    }
}

void dashboard::tick(clock::time_point now) {
    if (status_until_ && now >= *status_until_) {
        status_until_.reset();
        view_.status.clear();
        dirty_ = true;
    }
    if (!view_.connected) {
        if (now < next_reconnect_) return;
        next_reconnect_ = now + timing_.reconnect;
        auto requests = control_stream::open(path_);
        if (!requests) return;
        auto events = control_stream::open(path_);
        if (!events || !events->send({{"cmd", "events"}})) return;
        requests_.emplace(std::move(*requests));
        events_.emplace(std::move(*events));
        model_.clear_events();
        view_.connected = true;
        next_ls_ = now;
        show("connected to the manager again", false, now);
    }
    if (ls_sent_ && now - *ls_sent_ > timing_.reply_timeout)
        return disconnect(
            fmt::format("the manager did not answer `ls` in {} ms", timing_.reply_timeout.count()),
            now);
    if (!ls_sent_ && now >= next_ls_) {
        if (send(request_kind::ls, {{"cmd", "ls"}}, "", now)) ls_sent_ = now;
        next_ls_ = now + timing_.refresh;
    }
}

bool dashboard::on_key(key k, clock::time_point now) {
    switch (k) {
        case key::quit:
            return false;
        case key::up:
            model_.select_previous();
            break;
        case key::down:
            model_.select_next();
            break;
        case key::log:
            view_.shown = view_.shown == view_state::mode::log ? view_state::mode::links
                                                               : view_state::mode::log;
            break;
        case key::back:
            view_.shown = view_state::mode::links;
            break;
        case key::restart: {
            auto req = model_.restart_request();
            if (!req) {
                show("no link selected", true, now);
            } else {
                const auto name = (*req)["link"].get<std::string>();
                if (send(request_kind::restart, *req, name, now))
                    show(fmt::format("restarting {} ...", name), false, now);
            }
            break;
        }
        case key::switch_transport: {
            auto req = model_.switch_request();
            const auto* l = model_.selected();
            if (!req) {
                show(l ? fmt::format("{} has no other transport to switch to", l->name)
                       : "no link selected",
                     true, now);
            } else {
                const auto name = (*req)["link"].get<std::string>();
                if (send(request_kind::switch_transport, *req, name, now))
                    show(fmt::format("switching {} to transport #{} ...", name,
                                     (*req)["transport"].get<std::string>()),
                         false, now);
            }
            break;
        }
        case key::none:
            return true;
    }
    dirty_ = true;
    return true;
}

bool dashboard::send(request_kind kind, nlohmann::json request, std::string link,
                     clock::time_point now) {
    if (!view_.connected || !requests_) {
        if (kind != request_kind::ls) show("not connected to the manager", true, now);
        return false;
    }
    const auto id = next_id_++;
    request["id"] = id;
    if (auto s = requests_->send(request); !s) {
        disconnect(s.error().message, now);
        return false;
    }
    pending_[id] = {kind, std::move(link)};
    return true;
}

void dashboard::on_reply(const std::string& line, clock::time_point now) {
    const auto reply = parse_object(line);
    const auto id = reply.value("id", nlohmann::json());
    if (!id.is_number_integer()) {
        if (!reply.is_null() && !reply.value("ok", true))
            show("manager: " + sanitize(reply.value("error", std::string("error"))), true, now);
        return;
    }
    auto it = pending_.find(id.get<std::int64_t>());
    if (it == pending_.end()) return;
    const auto p = it->second;
    pending_.erase(it);
    const bool ok = reply.value("ok", false);
    const auto error = sanitize(reply.value("error", std::string("refused")));
    switch (p.kind) {
        case request_kind::ls:
            ls_sent_.reset();
            if (model_.apply_ls(reply, now))
                dirty_ = true;
            else
                show("ls: " + error, true, now);
            return;
        case request_kind::restart:
            if (ok)
                show(fmt::format("restarted {}: it connects again", p.link), false, now);
            else
                show(fmt::format("restart {}: {}", p.link, error), true, now);
            break;
        case request_kind::switch_transport:
            if (ok)
                show(fmt::format("{} now prefers {}", p.link, preferred_of(reply)), false, now);
            else
                show(fmt::format("switch {}: {}", p.link, error), true, now);
            break;
    }
    next_ls_ = std::min(next_ls_, now);
}

void dashboard::on_event(const std::string& line, clock::time_point now) {
    const auto e = parse_object(line);
    if (e.is_null()) return;
    model_.apply_event(e);
    next_ls_ = std::min(next_ls_, now + timing_.after_event);
    dirty_ = true;
}

void dashboard::disconnect(const std::string& why, clock::time_point now) {
    requests_.reset();
    events_.reset();
    pending_.clear();
    ls_sent_.reset();
    view_.connected = false;
    next_reconnect_ = now + timing_.reconnect;
    view_.status =
        fmt::format("{}; retrying every {} ms (q: quit)", sanitize(why), timing_.reconnect.count());
    view_.status_is_error = true;
    status_until_.reset();  // shown until connected again
    dirty_ = true;
}

void dashboard::show(std::string message, bool error, clock::time_point now) {
    view_.status = std::move(message);
    view_.status_is_error = error;
    status_until_ = now + timing_.status_shown;
    dirty_ = true;
}

}  // namespace tunnel::ui
