#include "observe/event_stream.hpp"

#include <algorithm>

namespace tunnel::observe {

std::string format_event(std::string_view name, std::string_view data) {
    std::string out;
    out.reserve(name.size() + data.size() + 16);
    if (!name.empty()) {
        out += "event: ";
        // A name is one line: anything after a line break is not sent.
        out += name.substr(0, name.find_first_of("\r\n"));
        out += '\n';
    }
    std::size_t start = 0;
    for (;;) {
        const auto end = data.find_first_of("\r\n", start);
        out += "data: ";
        out += data.substr(start, end == std::string_view::npos ? end : end - start);
        out += '\n';
        if (end == std::string_view::npos) break;
        start = end + 1;
        if (data[end] == '\r' && start < data.size() && data[start] == '\n') ++start;
        if (start >= data.size()) break;
    }
    out += '\n';
    return out;
}

event_subscriber::event_subscriber(private_tag, std::weak_ptr<event_stream> owner)
    : owner_(std::move(owner)) {}

event_subscriber::~event_subscriber() {
    if (auto owner = owner_.lock()) owner->forget(this);
}

void event_subscriber::wake_locked() {
    // The timer belongs to next()'s executor: cancel it there. A wake posted
    // while next() is between its check and its wait runs after the wait
    // started (that executor runs one handler at a time).
    if (executor_ && timer_) asio::post(*executor_, [t = timer_] { t->cancel(); });
}

bool event_subscriber::push(const std::string& text, std::size_t limit) {
    std::lock_guard lock(mutex_);
    if (closed_ || dropped_) return true;
    if (queue_.size() + text.size() > limit) {
        dropped_ = true;
        std::string().swap(queue_);
        wake_locked();
        return false;
    }
    queue_ += text;
    wake_locked();
    return true;
}

void event_subscriber::close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    std::string().swap(queue_);
    wake_locked();
}

bool event_subscriber::dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
}

asio::awaitable<std::optional<std::string>> event_subscriber::next(
    std::chrono::milliseconds keepalive) {
    auto ex = co_await asio::this_coro::executor;
    std::shared_ptr<asio::steady_timer> timer;
    {
        std::lock_guard lock(mutex_);
        if (!executor_) {
            executor_ = ex;
            timer_ = std::make_shared<asio::steady_timer>(ex);
        }
        timer = timer_;
        if (closed_ || dropped_) co_return std::nullopt;
        if (!queue_.empty()) {
            std::string out;
            out.swap(queue_);
            co_return out;
        }
        timer->expires_after(keepalive);
    }
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    {
        std::lock_guard lock(mutex_);
        if (closed_ || dropped_) co_return std::nullopt;
        if (!queue_.empty()) {
            std::string out;
            out.swap(queue_);
            co_return out;
        }
    }
    if (ec) co_return std::string();  // woken for nothing: the caller asks again
    co_return std::string(": keepalive\n\n");
}

event_stream::event_stream(event_stream_options options) : options_(options) {
    options_.max_subscribers = std::max<std::size_t>(1, options_.max_subscribers);
    options_.max_queued_bytes = std::max<std::size_t>(1024, options_.max_queued_bytes);
}

std::shared_ptr<event_subscriber> event_stream::subscribe() {
    std::lock_guard lock(mutex_);
    std::erase_if(subscribers_, [](const auto& w) { return w.expired(); });
    if (subscribers_.size() >= options_.max_subscribers) {
        ++refused_;
        return nullptr;
    }
    auto s = std::make_shared<event_subscriber>(event_subscriber::private_tag{}, weak_from_this());
    subscribers_.push_back(s);
    return s;
}

void event_stream::publish(std::string_view name, std::string_view data) {
    const std::string text = format_event(name, data);
    std::vector<std::shared_ptr<event_subscriber>> live;
    {
        std::lock_guard lock(mutex_);
        for (const auto& w : subscribers_)
            if (auto s = w.lock()) live.push_back(std::move(s));
    }
    for (const auto& s : live)
        if (!s->push(text, options_.max_queued_bytes)) ++dropped_;
}

void event_stream::close_all() {
    std::vector<std::shared_ptr<event_subscriber>> live;
    {
        std::lock_guard lock(mutex_);
        for (const auto& w : subscribers_)
            if (auto s = w.lock()) live.push_back(std::move(s));
    }
    for (const auto& s : live) s->close();
}

std::size_t event_stream::subscribers() const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count_if(subscribers_.begin(), subscribers_.end(),
                                                  [](const auto& w) { return !w.expired(); }));
}

void event_stream::forget(const event_subscriber*) {
    std::lock_guard lock(mutex_);
    std::erase_if(subscribers_, [](const auto& w) { return w.expired(); });
}

}  // namespace tunnel::observe
