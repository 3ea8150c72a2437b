#include "core/close_registry.hpp"

#include <utility>

#include <fmt/format.h>

namespace tunnel::core {

close_registry::handle::handle(handle&& other) noexcept
    : owner_(std::move(other.owner_)), id_(std::exchange(other.id_, 0)) {}

close_registry::handle& close_registry::handle::operator=(handle&& other) noexcept {
    if (this != &other) {
        reset();
        owner_ = std::move(other.owner_);
        id_ = std::exchange(other.id_, 0);
    }
    return *this;
}

close_registry::handle::~handle() {
    reset();
}

void close_registry::handle::reset() noexcept {
    if (id_ == 0) return;
    if (auto owner = owner_.lock()) {
        // Taken out under the lock, destroyed outside it (a close function
        // may own the last reference to something that drops a handle).
        std::function<void()> dropped;
        {
            std::lock_guard lock(owner->mutex);
            if (auto it = owner->map.find(id_); it != owner->map.end()) {
                dropped = std::move(it->second.close);
                owner->map.erase(it);
            }
        }
    }
    owner_.reset();
    id_ = 0;
}

bool close_registry::handle::active() const noexcept {
    if (id_ == 0) return false;
    auto owner = owner_.lock();
    if (!owner) return false;
    std::lock_guard lock(owner->mutex);
    return owner->map.count(id_) > 0;
}

close_registry::close_registry() : entries_(std::make_shared<entries>()) {}

close_registry::handle close_registry::add(std::string what, std::function<void()> close) {
    std::unique_lock lock(entries_->mutex);
    if (entries_->closing) {
        lock.unlock();
        if (close) close();
        return {};
    }
    const auto id = entries_->next_id++;
    entries_->map.emplace(id, entry{std::move(what), std::move(close)});
    return handle(entries_, id);
}

void close_registry::close_all() {
    // Kept alive here: a close function may destroy the registry's owner.
    auto keep = entries_;
    for (;;) {
        std::function<void()> close;
        {
            std::lock_guard lock(keep->mutex);
            keep->closing = true;
            if (keep->map.empty()) break;
            auto it = keep->map.begin();
            close = std::move(it->second.close);
            keep->map.erase(it);
        }
        if (close) close();
    }
}

bool close_registry::closing() const noexcept {
    std::lock_guard lock(entries_->mutex);
    return entries_->closing;
}

std::size_t close_registry::size() const noexcept {
    std::lock_guard lock(entries_->mutex);
    return entries_->map.size();
}

std::size_t close_registry::count(std::string_view what) const noexcept {
    std::lock_guard lock(entries_->mutex);
    std::size_t n = 0;
    for (const auto& [id, e] : entries_->map) n += e.what == what;
    return n;
}

std::string close_registry::describe() const {
    std::lock_guard lock(entries_->mutex);
    std::map<std::string, std::size_t> kinds;
    for (const auto& [id, e] : entries_->map) ++kinds[e.what];
    std::string out;
    for (const auto& [what, n] : kinds) {
        if (!out.empty()) out += ", ";
        out += fmt::format("{} {}", n, what);
    }
    return out.empty() ? std::string("nothing") : out;
}

}  // namespace tunnel::core
