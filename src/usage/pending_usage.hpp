// The usage a relay of a cluster has counted and not yet added to Redis
// (docs/cluster.md "Usage analytics"), bounded: while Redis is away it
// waits here, and keys beyond `max_keys` are dropped (and counted); counts
// for a key already waiting still add up, so the bound is on memory, not
// on traffic.
//
// Exactly-once: the batch in flight carries a sequence number that each
// Redis hash remembers per relay (seq:<node>), so a batch whose answer was
// lost (a timeout, a dropped connection) is sent again without being
// counted twice. Nothing joins the batch in flight: new counts wait beside
// it until every key of it was delivered.
#pragma once

#include <cstddef>
#include <cstdint>

#include "usage/usage_counts.hpp"

namespace tunnel::usage {

class pending_usage {
  public:
    struct flight {
        std::uint64_t seq = 0;
        usage_batch batch;
    };

    explicit pending_usage(std::size_t max_keys) : max_keys_(max_keys) {}

    // Adds counts; returns how many new keys were dropped for the bound.
    std::size_t add(const usage_batch& batch);
    // The batch to send: the one in flight, or (none left) everything
    // waiting, numbered max(next_seq, the last number + 1).
    [[nodiscard]] flight& in_flight(std::uint64_t next_seq);
    // A key of the batch in flight reached Redis.
    void delivered(const usage_key& key);

    // Keys waiting and in flight.
    [[nodiscard]] std::size_t keys() const noexcept {
        return waiting_.size() + flight_.batch.size();
    }
    [[nodiscard]] bool empty() const noexcept { return keys() == 0; }
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }

  private:
    std::size_t max_keys_;
    usage_batch waiting_;
    flight flight_;
    std::uint64_t last_seq_ = 0;
    std::uint64_t dropped_ = 0;
};

}  // namespace tunnel::usage
