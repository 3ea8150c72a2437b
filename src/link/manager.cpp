#include "link/manager.hpp"

#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"

namespace tunnel::link {

namespace {

constexpr std::size_t max_recent = 256;

std::string dump(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json fail(std::string message) {
    return {{"ok", false}, {"error", std::move(message)}};
}

}  // namespace

manager::manager(asio::any_io_executor executor) : executor_(executor), stopped_timer_(executor) {}

core::result<std::shared_ptr<manager>> manager::create(
    asio::any_io_executor executor, const links_file& file,
    std::vector<std::vector<resolved_transport>> transports) {
    auto m = std::make_shared<manager>(executor);
    std::weak_ptr<manager> weak = m;
    for (std::size_t i = 0; i < file.links.size(); ++i) {
        auto l = link::create(executor, file.links[i], std::move(transports.at(i)),
                              [weak](nlohmann::json e) {
                                  if (auto self = weak.lock()) self->publish(std::move(e));
                              });
        if (!l) {
            for (auto& made : m->links_) made->stop();
            return tl::unexpected(l.error());
        }
        m->links_.push_back(std::move(*l));
    }
    return m;
}

void manager::start() {
    publish({{"type", "manager_started"}, {"links", links_.size()}});
    for (auto& l : links_) l->start();
}

void manager::stop() {
    if (stopped_) return;
    stopped_ = true;
    for (auto& l : links_) l->stop();
    publish({{"type", "manager_stopped"}});
    stopped_timer_.cancel();
}

asio::awaitable<void> manager::wait_stopped() {
    while (!stopped_) {
        stopped_timer_.expires_after(std::chrono::hours(24));
        boost::system::error_code ec;
        co_await stopped_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

std::shared_ptr<link> manager::find(std::string_view name) const {
    for (const auto& l : links_)
        if (l->name() == name) return l;
    return nullptr;
}

std::uint64_t manager::subscribe(std::function<void(const std::string&)> fn) {
    const auto id = next_subscriber_++;
    subscribers_.emplace(id, std::move(fn));
    return id;
}

void manager::unsubscribe(std::uint64_t id) {
    subscribers_.erase(id);
}

void manager::publish(nlohmann::json event) {
    event["seq"] = ++seq_;
    event["time_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    auto line = dump(event);
    recent_.push_back(line);
    if (recent_.size() > max_recent) recent_.pop_front();
    // A subscriber may unsubscribe (itself) from inside its callback.
    std::vector<std::uint64_t> ids;
    for (const auto& [id, fn] : subscribers_) ids.push_back(id);
    for (auto id : ids)
        if (auto it = subscribers_.find(id); it != subscribers_.end()) it->second(line);
}

nlohmann::json manager::handle(const nlohmann::json& request) {
    const auto cmd = request.value("cmd", std::string());
    nlohmann::json reply;
    if (cmd == "ls") {
        auto all = nlohmann::json::array();
        for (const auto& l : links_) all.push_back(l->status());
        reply = {{"ok", true}, {"links", std::move(all)}};
    } else if (cmd == "status" || cmd == "restart" || cmd == "switch") {
        const auto name = request.value("link", std::string());
        auto l = find(name);
        if (!l) {
            std::vector<std::string> names;
            for (const auto& k : links_) names.push_back(k->name());
            reply = fail(fmt::format("no link named \"{}\" (links: {})", core::log_text(name, 64),
                                     fmt::join(names, ", ")));
        } else if (cmd == "status") {
            reply = {{"ok", true}, {"link", l->status()}};
        } else if (cmd == "restart") {
            l->restart();
            reply = {{"ok", true}, {"link", l->status()}};
        } else {
            auto r = l->prefer(request.value("transport", std::string()));
            if (!r)
                reply = fail(r.error().message);
            else
                reply = {{"ok", true}, {"link", l->status()}};
        }
    } else {
        reply = fail(fmt::format("cmd \"{}\" is not answered here", core::log_text(cmd, 40)));
    }
    if (request.contains("id")) reply["id"] = request["id"];
    return reply;
}

}  // namespace tunnel::link
