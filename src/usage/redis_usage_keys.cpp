#include "usage/redis_usage_keys.hpp"

#include <charconv>

#include <fmt/format.h>

namespace tunnel::usage {

namespace {

constexpr std::string_view latency_prefix = "lat:";

std::optional<std::uint64_t> parse_count(std::string_view s) {
    std::uint64_t v = 0;
    if (s.empty()) return std::nullopt;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

}  // namespace

std::string usage_hash_key(std::string_view prefix, const usage_key& key) {
    return fmt::format("{}usage:{}:{}/{}", prefix, key.hour, key.tenant, key.name);
}

std::string usage_index_key(std::string_view prefix, std::string_view tenant) {
    return fmt::format("{}usage:index:{}", prefix, tenant);
}

std::string usage_tenants_key(std::string_view prefix) {
    return fmt::format("{}usage:tenants", prefix);
}

std::string usage_index_member(const usage_key& key) {
    return fmt::format("{}:{}", key.hour, key.name);
}

std::optional<std::pair<std::int64_t, std::string>> parse_usage_index_member(
    std::string_view member) {
    const auto colon = member.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == member.size())
        return std::nullopt;
    std::int64_t hour = 0;
    const auto [end, ec] = std::from_chars(member.data(), member.data() + colon, hour);
    if (ec != std::errc() || end != member.data() + colon || hour_of(hour) != hour)
        return std::nullopt;
    return std::pair{hour, std::string(member.substr(colon + 1))};
}

std::string usage_seq_field(std::string_view node) {
    return fmt::format("seq:{}", node);
}

std::vector<std::string> usage_fields(const usage_counts& c) {
    std::vector<std::string> out;
    auto add = [&](std::string field, std::uint64_t v) {
        if (v == 0) return;
        out.push_back(std::move(field));
        out.push_back(std::to_string(v));
    };
    add("requests", c.requests);
    add("bytes_in", c.bytes_in);
    add("bytes_out", c.bytes_out);
    add("errors", c.errors);
    add("tunnel_ms", c.tunnel_ms);
    for (const auto& [bucket, n] : c.latency) add(fmt::format("{}{}", latency_prefix, bucket), n);
    return out;
}

usage_counts parse_usage_fields(const std::vector<std::string>& flat) {
    usage_counts c;
    for (std::size_t i = 0; i + 1 < flat.size(); i += 2) {
        const std::string_view field = flat[i];
        const auto v = parse_count(flat[i + 1]);
        if (!v) continue;
        if (field == "requests")
            c.requests = *v;
        else if (field == "bytes_in")
            c.bytes_in = *v;
        else if (field == "bytes_out")
            c.bytes_out = *v;
        else if (field == "errors")
            c.errors = *v;
        else if (field == "tunnel_ms")
            c.tunnel_ms = *v;
        else if (field.starts_with(latency_prefix)) {
            const auto b = parse_count(field.substr(latency_prefix.size()));
            if (b && *b < static_cast<std::uint64_t>(latency_bucket_count) && *v > 0)
                c.latency[static_cast<int>(*b)] += *v;
        }
    }
    return c;
}

}  // namespace tunnel::usage
