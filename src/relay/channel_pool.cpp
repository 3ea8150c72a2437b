#include "relay/channel_pool.hpp"

#include <utility>

namespace tunnel::relay {

channel_pool::channel_pool(const asio::any_io_executor& ex, channel_pool_options o)
    : options_(o), timer_(ex) {}

channel_pool::~channel_pool() {
    *alive_ = false;
}

bool channel_pool::usable(const ssh::server_channel& ch) noexcept {
    return !ch.closed() && !ch.eof() && ch.readable().empty();
}

std::unique_ptr<ssh::server_channel> channel_pool::take(const std::string& name) {
    auto it = idle_.find(name);
    if (it == idle_.end()) return nullptr;
    auto& q = it->second;
    const auto now = clock::now();
    while (!q.empty()) {
        entry e = std::move(q.back());
        q.pop_back();
        --count_;
        if (usable(*e.channel) && now - e.since < options_.idle_timeout) {
            if (q.empty()) idle_.erase(it);
            return std::move(e.channel);
        }
    }
    idle_.erase(it);
    return nullptr;
}

void channel_pool::put(const std::string& name, std::unique_ptr<ssh::server_channel> ch) {
    if (!ch || !usable(*ch) || options_.per_name == 0 ||
        options_.idle_timeout <= std::chrono::milliseconds::zero())
        return;
    auto& q = idle_[name];
    if (q.size() >= options_.per_name) {
        q.pop_front();  // the one idle longest
        --count_;
    }
    q.push_back({std::move(ch), clock::now()});
    ++count_;
    arm();
}

std::vector<std::unique_ptr<ssh::server_channel>> channel_pool::release(const std::string& name) {
    std::vector<std::unique_ptr<ssh::server_channel>> out;
    auto it = idle_.find(name);
    if (it == idle_.end()) return out;
    for (auto& e : it->second) out.push_back(std::move(e.channel));
    count_ -= it->second.size();
    idle_.erase(it);
    return out;
}

std::vector<std::unique_ptr<ssh::server_channel>> channel_pool::release_all() {
    std::vector<std::unique_ptr<ssh::server_channel>> out;
    for (auto& [name, q] : idle_)
        for (auto& e : q) out.push_back(std::move(e.channel));
    idle_.clear();
    count_ = 0;
    timer_.cancel();
    return out;
}

void channel_pool::sweep(clock::time_point now) {
    for (auto it = idle_.begin(); it != idle_.end();) {
        auto& q = it->second;
        // Oldest first at the front; unusable ones anywhere.
        for (auto e = q.begin(); e != q.end();) {
            if (now - e->since >= options_.idle_timeout || !usable(*e->channel)) {
                e = q.erase(e);
                --count_;
            } else {
                ++e;
            }
        }
        it = q.empty() ? idle_.erase(it) : std::next(it);
    }
}

void channel_pool::arm() {
    if (armed_ || count_ == 0) return;
    armed_ = true;
    // Every half idle_timeout while something is idle: a channel outlives its
    // timeout by at most half of it.
    timer_.expires_after(options_.idle_timeout / 2);
    timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
        if (!*alive) return;
        armed_ = false;
        if (ec) return;
        sweep(clock::now());
        arm();
    });
}

}  // namespace tunnel::relay
