#include "usage/usage_store.hpp"

#include <fmt/format.h>

namespace tunnel::usage {

namespace {

// The bucket layout the database was written with (latency_buckets.hpp).
constexpr const char* bucket_layout = "0.1ms*2^(i/4),88";

constexpr const char* schema = R"sql(
CREATE TABLE IF NOT EXISTS usage_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS usage_hourly(
  tenant TEXT NOT NULL, name TEXT NOT NULL, hour INTEGER NOT NULL,
  requests INTEGER NOT NULL DEFAULT 0, bytes_in INTEGER NOT NULL DEFAULT 0,
  bytes_out INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
  tunnel_ms INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(tenant, name, hour)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_hourly_by_hour ON usage_hourly(hour);
CREATE TABLE IF NOT EXISTS usage_latency(
  tenant TEXT NOT NULL, name TEXT NOT NULL, hour INTEGER NOT NULL,
  bucket INTEGER NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY(tenant, name, hour, bucket)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_latency_by_hour ON usage_latency(hour);
)sql";

std::int64_t i64(std::uint64_t v) {
    return static_cast<std::int64_t>(v);
}
std::uint64_t u64(std::int64_t v) {
    return v < 0 ? 0 : static_cast<std::uint64_t>(v);
}

}  // namespace

core::result<usage_store> usage_store::open(const std::string& path) {
    auto db = sqlite_db::open(path);
    if (!db) return tl::unexpected(db.error());
    if (auto r = db->exec(schema); !r) return tl::unexpected(r.error());
    auto get = db->prepare("SELECT value FROM usage_meta WHERE key = 'latency_buckets'");
    if (!get) return tl::unexpected(get.error());
    auto row = get->step();
    if (!row) return tl::unexpected(row.error());
    if (*row) {
        if (const auto layout = get->column_text(0); layout != bucket_layout)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("{}: written with latency buckets {:?}, this relay uses "
                                          "{:?}; point usage.database at a new file",
                                          path, layout, bucket_layout));
    } else {
        auto put = db->prepare("INSERT INTO usage_meta(key, value) VALUES('latency_buckets', ?1)");
        if (!put) return tl::unexpected(put.error());
        put->bind(1, std::string_view(bucket_layout));
        if (auto r = put->run(); !r) return tl::unexpected(r.error());
    }
    return usage_store(std::move(*db));
}

core::result<void> usage_store::add(const usage_batch& batch) {
    if (batch.empty()) return {};
    auto hourly = db_.prepare(
        "INSERT INTO usage_hourly(tenant, name, hour, requests, bytes_in, bytes_out, errors, "
        "tunnel_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(tenant, name, hour) DO "
        "UPDATE SET requests = requests + excluded.requests, bytes_in = bytes_in + "
        "excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out, errors = errors + "
        "excluded.errors, tunnel_ms = tunnel_ms + excluded.tunnel_ms");
    if (!hourly) return tl::unexpected(hourly.error());
    auto latency = db_.prepare(
        "INSERT INTO usage_latency(tenant, name, hour, bucket, count) VALUES(?1, ?2, ?3, ?4, ?5) "
        "ON CONFLICT(tenant, name, hour, bucket) DO UPDATE SET count = count + excluded.count");
    if (!latency) return tl::unexpected(latency.error());
    if (auto r = db_.exec("BEGIN IMMEDIATE"); !r) return r;
    auto fail = [&](const core::error& e) {
        (void)db_.exec("ROLLBACK");
        return tl::unexpected(e);
    };
    for (const auto& [key, c] : batch) {
        hourly->reset();
        hourly->bind(1, std::string_view(key.tenant));
        hourly->bind(2, std::string_view(key.name));
        hourly->bind(3, key.hour);
        hourly->bind(4, i64(c.requests));
        hourly->bind(5, i64(c.bytes_in));
        hourly->bind(6, i64(c.bytes_out));
        hourly->bind(7, i64(c.errors));
        hourly->bind(8, i64(c.tunnel_ms));
        if (auto r = hourly->run(); !r) return fail(r.error());
        for (const auto& [bucket, n] : c.latency) {
            if (n == 0) continue;
            latency->reset();
            latency->bind(1, std::string_view(key.tenant));
            latency->bind(2, std::string_view(key.name));
            latency->bind(3, key.hour);
            latency->bind(4, std::int64_t{bucket});
            latency->bind(5, i64(n));
            if (auto r = latency->run(); !r) return fail(r.error());
        }
    }
    if (auto r = db_.exec("COMMIT"); !r) return fail(r.error());
    return {};
}

core::result<std::uint64_t> usage_store::prune(std::int64_t cutoff_hour) {
    auto latency = db_.prepare("DELETE FROM usage_latency WHERE hour < ?1");
    if (!latency) return tl::unexpected(latency.error());
    latency->bind(1, cutoff_hour);
    if (auto r = latency->run(); !r) return tl::unexpected(r.error());
    auto hourly = db_.prepare("DELETE FROM usage_hourly WHERE hour < ?1 RETURNING hour");
    if (!hourly) return tl::unexpected(hourly.error());
    hourly->bind(1, cutoff_hour);
    std::uint64_t deleted = 0;
    for (;;) {
        auto r = hourly->step();
        if (!r) return tl::unexpected(r.error());
        if (!*r) break;
        ++deleted;
    }
    return deleted;
}

core::result<std::vector<usage_row>> usage_store::rows(const std::string& tenant, std::int64_t from,
                                                       std::int64_t to, std::size_t limit) {
    const char* filter = tenant.empty() ? "?1 = '' AND" : "tenant = ?1 AND";
    auto hourly = db_.prepare(fmt::format(
        "SELECT tenant, name, hour, requests, bytes_in, bytes_out, errors, tunnel_ms FROM "
        "usage_hourly WHERE {} hour >= ?2 AND hour < ?3 ORDER BY tenant, name, hour LIMIT ?4",
        filter));
    if (!hourly) return tl::unexpected(hourly.error());
    hourly->bind(1, std::string_view(tenant));
    hourly->bind(2, hour_of(from));
    hourly->bind(3, to);
    hourly->bind(4, static_cast<std::int64_t>(limit + 1));
    std::vector<usage_row> out;
    std::map<usage_key, std::size_t> index;
    for (;;) {
        auto r = hourly->step();
        if (!r) return tl::unexpected(r.error());
        if (!*r) break;
        usage_row row;
        row.key = {hourly->column_text(0), hourly->column_text(1), hourly->column_int64(2)};
        row.counts.requests = u64(hourly->column_int64(3));
        row.counts.bytes_in = u64(hourly->column_int64(4));
        row.counts.bytes_out = u64(hourly->column_int64(5));
        row.counts.errors = u64(hourly->column_int64(6));
        row.counts.tunnel_ms = u64(hourly->column_int64(7));
        index[row.key] = out.size();
        out.push_back(std::move(row));
    }
    if (out.empty() || out.size() > limit) return out;
    auto latency = db_.prepare(fmt::format(
        "SELECT tenant, name, hour, bucket, count FROM usage_latency WHERE {} hour >= ?2 AND "
        "hour < ?3",
        filter));
    if (!latency) return tl::unexpected(latency.error());
    latency->bind(1, std::string_view(tenant));
    latency->bind(2, hour_of(from));
    latency->bind(3, to);
    for (;;) {
        auto r = latency->step();
        if (!r) return tl::unexpected(r.error());
        if (!*r) break;
        const usage_key key{latency->column_text(0), latency->column_text(1),
                            latency->column_int64(2)};
        const auto it = index.find(key);
        const auto bucket = latency->column_int64(3);
        if (it == index.end() || bucket < 0 || bucket >= latency_bucket_count) continue;
        out[it->second].counts.latency[static_cast<int>(bucket)] += u64(latency->column_int64(4));
    }
    return out;
}

core::result<std::map<std::int64_t, std::uint64_t>> usage_store::requests_by_hour(
    const std::string& tenant, std::int64_t from, std::int64_t to) {
    auto st = db_.prepare(
        "SELECT hour, SUM(requests) FROM usage_hourly WHERE tenant = ?1 AND hour >= ?2 AND hour "
        "< ?3 GROUP BY hour ORDER BY hour");
    if (!st) return tl::unexpected(st.error());
    st->bind(1, std::string_view(tenant));
    st->bind(2, from);
    st->bind(3, to);
    std::map<std::int64_t, std::uint64_t> out;
    for (;;) {
        auto r = st->step();
        if (!r) return tl::unexpected(r.error());
        if (!*r) break;
        out[st->column_int64(0)] = u64(st->column_int64(1));
    }
    return out;
}

core::result<std::optional<std::int64_t>> usage_store::oldest_hour() {
    auto st = db_.prepare("SELECT MIN(hour), COUNT(*) FROM usage_hourly");
    if (!st) return tl::unexpected(st.error());
    auto r = st->step();
    if (!r) return tl::unexpected(r.error());
    if (!*r || st->column_int64(1) == 0) return std::optional<std::int64_t>{};
    return std::optional<std::int64_t>{st->column_int64(0)};
}

}  // namespace tunnel::usage
