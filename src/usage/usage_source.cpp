#include "usage/usage_source.hpp"

#include <algorithm>
#include <tuple>

namespace tunnel::usage {

void usage_snapshot::set_rows(std::vector<usage_row> rows) {
    std::sort(rows.begin(), rows.end(), [](const usage_row& a, const usage_row& b) {
        return std::tie(a.key.tenant, a.key.name, a.key.hour) <
               std::tie(b.key.tenant, b.key.name, b.key.hour);
    });
    rows_ = std::move(rows);
}

void usage_snapshot::set_requests(const std::string& tenant,
                                  std::map<std::int64_t, std::uint64_t> by_hour) {
    requests_[tenant] = std::move(by_hour);
}

core::result<std::vector<usage_row>> usage_snapshot::rows(const std::string& tenant,
                                                          std::int64_t from, std::int64_t to,
                                                          std::size_t limit) {
    std::vector<usage_row> out;
    for (const auto& r : rows_) {
        if ((!tenant.empty() && r.key.tenant != tenant) || r.key.hour < hour_of(from) ||
            r.key.hour >= to)
            continue;
        out.push_back(r);
        if (out.size() > limit) break;
    }
    return out;
}

core::result<std::map<std::int64_t, std::uint64_t>> usage_snapshot::requests_by_hour(
    const std::string& tenant, std::int64_t from, std::int64_t to) {
    std::map<std::int64_t, std::uint64_t> out;
    const auto it = requests_.find(tenant);
    if (it == requests_.end()) return out;
    for (auto h = it->second.lower_bound(from); h != it->second.end() && h->first < to; ++h)
        if (h->second > 0) out.insert(*h);
    return out;
}

}  // namespace tunnel::usage
