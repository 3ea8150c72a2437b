// Server-Sent Events fan-out for the admin listener (the relay's dashboard):
// a publisher on any thread queues events for every subscriber; each
// subscriber is one admin connection that writes its queue out.
//
//   auto events = std::make_shared<observe::event_stream>(observe::event_stream_options{});
//   auto sub = events->subscribe();           // nullptr: max_subscribers are connected
//   events->publish("snapshot", json_text);   // any thread
//   auto text = co_await sub->next(15s);      // on the connection's executor
//
// Limits: at most max_subscribers at once (the admin endpoint answers 503
// beyond it), and at most max_queued_bytes waiting for one subscriber. A
// subscriber that falls that far behind (a slow or stalled reader) is
// dropped: its queue is freed, next() returns nullopt and the connection is
// closed; nothing is ever buffered without limit. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"

namespace tunnel::observe {

struct event_stream_options {
    std::size_t max_subscribers = 8;
    std::size_t max_queued_bytes = 1024 * 1024;
};

// "event: NAME\ndata: LINE\n...\n\n": one data line per line of `data`
// (a lone "\r" or "\r\n" ends a line too, as the SSE grammar says).
[[nodiscard]] std::string format_event(std::string_view name, std::string_view data);

class event_stream;

class event_subscriber {
  public:
    ~event_subscriber();
    event_subscriber(const event_subscriber&) = delete;
    event_subscriber& operator=(const event_subscriber&) = delete;

    // The text queued since the last call, or after `keepalive` with nothing
    // queued an SSE comment (": keepalive\n\n"); nullopt once the subscriber
    // was dropped (too slow) or closed. Call from one coroutine at a time;
    // its executor must not run handlers concurrently.
    [[nodiscard]] asio::awaitable<std::optional<std::string>> next(
        std::chrono::milliseconds keepalive);
    // Ends the subscription: a waiting next() returns nullopt. Any thread.
    void close();
    [[nodiscard]] bool dropped() const;

  private:
    friend class event_stream;
    struct private_tag {};

  public:
    event_subscriber(private_tag, std::weak_ptr<event_stream> owner);

  private:
    // Under mutex_: false when the text would pass `limit` (then dropped).
    bool push(const std::string& text, std::size_t limit);
    void wake_locked();

    std::weak_ptr<event_stream> owner_;
    mutable std::mutex mutex_;
    std::string queue_;
    bool closed_ = false;
    bool dropped_ = false;
    std::optional<asio::any_io_executor> executor_;  // next()'s, once it waited
    std::shared_ptr<asio::steady_timer> timer_;      // next() waits on it
};

class event_stream : public std::enable_shared_from_this<event_stream> {
  public:
    explicit event_stream(event_stream_options options);

    // A new subscriber, or nullptr when max_subscribers are subscribed.
    [[nodiscard]] std::shared_ptr<event_subscriber> subscribe();
    // Queues the event for every subscriber; drops those past max_queued_bytes.
    void publish(std::string_view name, std::string_view data);
    // Closes every subscriber (shutdown).
    void close_all();

    [[nodiscard]] std::size_t subscribers() const;
    [[nodiscard]] std::uint64_t dropped_total() const noexcept { return dropped_.load(); }
    [[nodiscard]] std::uint64_t refused_total() const noexcept { return refused_.load(); }
    [[nodiscard]] const event_stream_options& options() const noexcept { return options_; }

  private:
    friend class event_subscriber;
    void forget(const event_subscriber* s);

    event_stream_options options_;
    mutable std::mutex mutex_;
    std::vector<std::weak_ptr<event_subscriber>> subscribers_;
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> refused_{0};
};

}  // namespace tunnel::observe
