#include "relay/request_queue.hpp"

#include <algorithm>

namespace tunnel::relay {

request_queue::entry request_queue::enqueue(const std::string& tenant, const std::string& name,
                                            queue_class cls, std::size_t bytes,
                                            std::function<void()> wake) {
    std::lock_guard lock(mutex_);
    entry e;
    auto& q = names_[key{tenant, name}];
    if (q.count >= max_requests_) {
        e.why = full::requests;
    } else if (q.bytes + bytes > max_bytes_) {
        e.why = full::bytes;
    }
    if (e.why != full::no) {
        e.queued = q.count;
        forget_if_idle(names_.find(key{tenant, name}));
        return e;
    }
    auto w = std::make_shared<waiter>();
    w->route = key{tenant, name};
    w->cls = cls;
    w->bytes = bytes;
    w->wake = std::move(wake);
    q.classes[static_cast<int>(cls)].push_back(w);
    ++q.count;
    q.bytes += bytes;
    ++waiting_;
    e.queued = q.count;
    e.place = std::make_unique<ticket>(shared_from_this(), std::move(w));
    deliver_next(q);
    return e;
}

void request_queue::deliver_next(name_queue& q) {
    if (!q.open || q.delivering) return;
    for (auto& c : q.classes) {
        if (c.empty()) continue;
        auto w = std::move(c.front());
        c.pop_front();
        --q.count;
        q.bytes -= std::min(q.bytes, w->bytes);
        --waiting_;
        w->st = state::delivered;
        q.delivering = w;
        if (w->wake) w->wake();
        return;
    }
}

void request_queue::forget_if_idle(std::map<key, name_queue>::iterator it) {
    if (it == names_.end()) return;
    if (it->second.count == 0 && !it->second.delivering) names_.erase(it);
}

void request_queue::open(const std::string& tenant, const std::string& name) {
    std::lock_guard lock(mutex_);
    auto it = names_.find(key{tenant, name});
    if (it == names_.end()) return;
    it->second.open = true;
    deliver_next(it->second);
}

void request_queue::close(const std::string& tenant, const std::string& name) {
    std::lock_guard lock(mutex_);
    if (auto it = names_.find(key{tenant, name}); it != names_.end()) it->second.open = false;
}

void request_queue::drop(const std::string& tenant, const std::string& name) {
    std::lock_guard lock(mutex_);
    auto it = names_.find(key{tenant, name});
    if (it == names_.end()) return;
    auto& q = it->second;
    q.open = false;
    for (auto& c : q.classes) {
        for (auto& w : c) {
            w->st = state::dropped;
            --waiting_;
            if (w->wake) w->wake();
        }
        c.clear();
    }
    q.count = 0;
    q.bytes = 0;
    forget_if_idle(it);
}

bool request_queue::busy(const std::string& tenant, const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = names_.find(key{tenant, name});
    return it != names_.end() && (it->second.count > 0 || it->second.delivering);
}

void request_queue::wake_all() {
    std::lock_guard lock(mutex_);
    for (auto& [k, q] : names_)
        for (auto& c : q.classes)
            for (auto& w : c)
                if (w->wake) w->wake();
}

std::size_t request_queue::waiting() const {
    std::lock_guard lock(mutex_);
    return waiting_;
}

request_queue::state request_queue::state_of(const waiter& w) const {
    std::lock_guard lock(mutex_);
    return w.st;
}

void request_queue::leave(const std::shared_ptr<waiter>& w) {
    std::lock_guard lock(mutex_);
    auto it = names_.find(w->route);
    w->wake = nullptr;
    if (it == names_.end()) return;
    auto& q = it->second;
    if (w->st == state::waiting) {
        auto& c = q.classes[static_cast<int>(w->cls)];
        if (auto pos = std::find(c.begin(), c.end(), w); pos != c.end()) {
            c.erase(pos);
            --q.count;
            q.bytes -= std::min(q.bytes, w->bytes);
            --waiting_;
        }
        w->st = state::dropped;
    } else if (q.delivering == w) {
        q.delivering.reset();
        deliver_next(q);
    }
    forget_if_idle(it);
}

}  // namespace tunnel::relay
