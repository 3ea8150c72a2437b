// Usage analytics' hourly aggregates in SQLite (docs/relay.md "Usage
// analytics"): per (tenant, name, hour) the requests, bytes in and out,
// time published, errors and latency histogram buckets (latency_buckets.hpp).
// Writes add to what is stored (UPSERT), so any number of flushes of the
// same hour merge. Not thread-safe: one store per thread (the recorder's
// flusher writes through its own, the admin endpoint reads through another;
// the database is in WAL mode).
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "usage/sqlite.hpp"
#include "usage/usage_counts.hpp"
#include "usage/usage_source.hpp"

namespace tunnel::usage {

class usage_store final : public usage_source {
  public:
    // Opens or creates the database and its tables; refuses a database made
    // with another latency bucket layout.
    [[nodiscard]] static core::result<usage_store> open(const std::string& path);

    // Adds a batch in one transaction.
    [[nodiscard]] core::result<void> add(const usage_batch& batch);
    // Deletes every hour before `cutoff_hour`; returns the rows deleted.
    [[nodiscard]] core::result<std::uint64_t> prune(std::int64_t cutoff_hour);
    // Rows with from_hour <= hour < to (tenant empty: all), ordered by
    // tenant, name, hour; at most `limit` + 1 (so a caller sees there were
    // more).
    [[nodiscard]] core::result<std::vector<usage_row>> rows(const std::string& tenant,
                                                            std::int64_t from, std::int64_t to,
                                                            std::size_t limit) override;
    // Requests per hour of one tenant (all names), hours with none left out.
    [[nodiscard]] core::result<std::map<std::int64_t, std::uint64_t>> requests_by_hour(
        const std::string& tenant, std::int64_t from, std::int64_t to) override;
    // The oldest hour stored (nullopt: nothing).
    [[nodiscard]] core::result<std::optional<std::int64_t>> oldest_hour();

    [[nodiscard]] const std::string& path() const noexcept { return db_.path(); }

  private:
    explicit usage_store(sqlite_db db) : db_(std::move(db)) {}
    sqlite_db db_;
};

}  // namespace tunnel::usage
