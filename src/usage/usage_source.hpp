// Where a usage report reads its hourly rows from (usage_report.hpp): the
// SQLite usage_store of a single relay, or a usage_snapshot loaded from the
// cluster's Redis (redis_usage.hpp) before the report is built.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "usage/usage_counts.hpp"

namespace tunnel::usage {

class usage_source {
  public:
    virtual ~usage_source() = default;

    // Rows with hour_of(from) <= hour < to (tenant empty: all), ordered by
    // tenant, name, hour; at most `limit` + 1 (so a caller sees there were
    // more).
    [[nodiscard]] virtual core::result<std::vector<usage_row>> rows(const std::string& tenant,
                                                                    std::int64_t from,
                                                                    std::int64_t to,
                                                                    std::size_t limit) = 0;
    // Requests per hour of one tenant (all names), from <= hour < to, hours
    // with none left out.
    [[nodiscard]] virtual core::result<std::map<std::int64_t, std::uint64_t>> requests_by_hour(
        const std::string& tenant, std::int64_t from, std::int64_t to) = 0;
};

// Rows and request series held in memory (loaded from Redis).
class usage_snapshot final : public usage_source {
  public:
    // `rows` in any order (they are sorted here).
    void set_rows(std::vector<usage_row> rows);
    void set_requests(const std::string& tenant, std::map<std::int64_t, std::uint64_t> by_hour);

    [[nodiscard]] core::result<std::vector<usage_row>> rows(const std::string& tenant,
                                                            std::int64_t from, std::int64_t to,
                                                            std::size_t limit) override;
    [[nodiscard]] core::result<std::map<std::int64_t, std::uint64_t>> requests_by_hour(
        const std::string& tenant, std::int64_t from, std::int64_t to) override;

  private:
    std::vector<usage_row> rows_;
    std::map<std::string, std::map<std::int64_t, std::uint64_t>> requests_;
};

}  // namespace tunnel::usage
