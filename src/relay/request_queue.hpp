// The request queue (docs/relay.md "Leases and the request queue"): requests
// for a name that a lease holds while it has no tunnel wait here instead of
// getting 503. Per name, bounded in requests and bytes; delivered when the
// name's tunnel is back, one at a time in order: high before normal before
// low, first come first served within a class. A delivered request holds the
// name's turn until it is marked started (its head is about to enter the
// tunnel) or gives up; then the next one goes. Thread-safe: waiters live on
// any worker and are woken through the function they enqueue with (which
// posts to their worker).
#pragma once

#include <array>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "relay/lease_config.hpp"

namespace tunnel::relay {

class request_queue : public std::enable_shared_from_this<request_queue> {
  public:
    enum class state { waiting, delivered, dropped };
    struct waiter {
        std::pair<std::string, std::string> route;  // (tenant, name)
        queue_class cls = queue_class::normal;
        std::size_t bytes = 0;
        std::function<void()> wake;  // called under the queue's lock: post, never run inline
        state st = state::waiting;   // under the queue's lock
    };
    // A place in the queue, then the name's turn once delivered. Destroying
    // it leaves the queue, or passes the turn on to the next request.
    class ticket {
      public:
        ticket(std::shared_ptr<request_queue> q, std::shared_ptr<waiter> w)
            : queue_(std::move(q)), waiter_(std::move(w)) {}
        ticket(const ticket&) = delete;
        ticket& operator=(const ticket&) = delete;
        ~ticket() { queue_->leave(waiter_); }
        [[nodiscard]] state current() const { return queue_->state_of(*waiter_); }

      private:
        std::shared_ptr<request_queue> queue_;
        std::shared_ptr<waiter> waiter_;
    };
    enum class full { no, requests, bytes };
    struct entry {
        std::unique_ptr<ticket> place;  // null when full
        full why = full::no;
        std::size_t queued = 0;  // requests waiting for the name, this one included
    };

    request_queue(unsigned max_requests, std::size_t max_bytes)
        : max_requests_(max_requests), max_bytes_(max_bytes) {}

    [[nodiscard]] entry enqueue(const std::string& tenant, const std::string& name, queue_class cls,
                                std::size_t bytes, std::function<void()> wake);
    // The name's tunnel is live: deliver the waiting requests in order.
    void open(const std::string& tenant, const std::string& name);
    // The name's tunnel went (its lease holds the name): stop delivering.
    void close(const std::string& tenant, const std::string& name);
    // The name was released: every waiting request is told (dropped).
    void drop(const std::string& tenant, const std::string& name);
    // Requests waiting for, or being delivered to, the name.
    [[nodiscard]] bool busy(const std::string& tenant, const std::string& name) const;
    // Wakes every waiting request (a shutdown: they answer or are kept).
    void wake_all();
    [[nodiscard]] std::size_t waiting() const;  // over all names

    [[nodiscard]] state state_of(const waiter& w) const;
    void leave(const std::shared_ptr<waiter>& w);

  private:
    struct name_queue {
        std::array<std::deque<std::shared_ptr<waiter>>, queue_classes> classes;
        std::size_t count = 0;
        std::size_t bytes = 0;
        bool open = false;
        std::shared_ptr<waiter> delivering;  // holds the turn
    };
    using key = std::pair<std::string, std::string>;
    void deliver_next(name_queue& q);  // mutex_ held
    void forget_if_idle(std::map<key, name_queue>::iterator it);

    const unsigned max_requests_;
    const std::size_t max_bytes_;
    mutable std::mutex mutex_;
    std::map<key, name_queue> names_;
    std::size_t waiting_ = 0;
};

}  // namespace tunnel::relay
