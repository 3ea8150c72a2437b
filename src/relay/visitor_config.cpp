#include "relay/visitor_config.hpp"

#include <memory>

#include <fmt/format.h>

#include "relay/public_route.hpp"

namespace tunnel::relay {

namespace {

constexpr std::size_t max_configured_names = 10000;

void read_name(core::yaml_reader& r, const std::string& key, const YAML::Node& node,
               const std::string& path, visitor_config& out) {
    const auto slash = key.find('/');
    auto tenant = normalize_label(key.substr(0, slash), "tenant");
    auto name = slash == std::string::npos ? core::result<std::string>(tenant)
                                           : normalize_label(key.substr(slash + 1), "service name");
    if (slash == std::string::npos || !tenant || !name) {
        r.error(path, slash == std::string::npos
                          ? "write the key as TENANT/NAME, e.g. acme/llm"
                          : (!tenant ? tenant.error().message : name.error().message));
        return;
    }
    if (!r.expect_map(node, path, {"access", "htpasswd_file", "allow_ips"})) return;
    if (!node["access"]) {
        r.error(path + ".access", "required: public, token, basic or ip");
        return;
    }
    auto mode_text = r.string(node["access"], path + ".access");
    if (!mode_text) return;
    auto mode = parse_access_mode(*mode_text);
    if (!mode) {
        r.error(path + ".access", mode.error().message);
        return;
    }
    access_policy policy;
    policy.mode = *mode;
    const auto id = std::make_pair(*tenant, *name);
    if (node["htpasswd_file"] && *mode != access_mode::basic)
        r.error(path + ".htpasswd_file", "is for access: basic only");
    if (node["allow_ips"] && *mode != access_mode::ip)
        r.error(path + ".allow_ips", "is for access: ip only");
    if (*mode == access_mode::basic) {
        if (!node["htpasswd_file"]) {
            r.error(path + ".htpasswd_file",
                    "required with access: basic (a file of user:hash lines)");
            return;
        }
        auto file = r.string(node["htpasswd_file"], path + ".htpasswd_file");
        if (!file) return;
        auto list = htpasswd::load(*file);
        if (!list) {
            r.error(path + ".htpasswd_file", list.error().message);
            return;
        }
        policy.users = std::make_shared<const htpasswd>(std::move(*list));
        out.htpasswd_files[id] = *file;
    }
    if (*mode == access_mode::ip) {
        if (!node["allow_ips"]) {
            r.error(path + ".allow_ips", "required with access: ip, e.g. [10.0.0.0/8]");
            return;
        }
        auto cidrs = r.string_list(node["allow_ips"], path + ".allow_ips");
        if (!cidrs) return;
        auto list = ip_allow_list::parse(*cidrs);
        if (!list) {
            r.error(path + ".allow_ips", list.error().message);
            return;
        }
        policy.allow_ips = std::move(*list);
    }
    if (out.names.count(id)) {
        r.error(path, fmt::format("{}/{} is listed twice", id.first, id.second));
        return;
    }
    out.names.emplace(id, std::move(policy));
}

}  // namespace

void read_visitor_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                         visitor_config& out) {
    if (!node || node.IsNull()) return;
    if (!r.expect_map(node, path, {"secret_file", "names"})) return;
    if (node["secret_file"]) {
        if (auto s = r.string(node["secret_file"], path + ".secret_file")) {
            if (s->empty())
                r.error(path + ".secret_file", "must not be empty");
            else
                out.secret_file = *s;
        }
    }
    const auto names = node["names"];
    if (!names || names.IsNull()) return;
    if (!names.IsMap()) {
        r.error(path + ".names", "must be a map of TENANT/NAME: {access: ...}");
        return;
    }
    if (names.size() > max_configured_names) {
        r.error(path + ".names", fmt::format("at most {} names", max_configured_names));
        return;
    }
    for (const auto& entry : names) {
        const auto key = entry.first.IsScalar() ? entry.first.Scalar() : std::string();
        read_name(r, key, entry.second, path + ".names." + key, out);
    }
    bool needs_secret = false;
    for (const auto& [id, policy] : out.names)
        needs_secret = needs_secret || policy.mode == access_mode::token;
    if (needs_secret && out.secret_file.empty())
        r.error(path + ".secret_file",
                "required when a name has access: token (the key visitor tokens are signed with: "
                "tunnel token --visitor --secret-file FILE)");
}

const access_policy* configured_access(const visitor_config& config, std::string_view tenant,
                                       std::string_view name) {
    auto it = config.names.find(std::make_pair(std::string(tenant), std::string(name)));
    return it == config.names.end() ? nullptr : &it->second;
}

std::vector<std::string> describe(const visitor_config& config) {
    std::vector<std::string> out;
    if (!config.secret_file.empty())
        out.push_back(fmt::format("visitors.secret_file: {}", config.secret_file));
    for (const auto& [id, policy] : config.names) {
        auto line = fmt::format("visitors.names.{}/{}: {}", id.first, id.second, policy.describe());
        if (auto f = config.htpasswd_files.find(id); f != config.htpasswd_files.end())
            line += " from " + f->second;
        out.push_back(std::move(line));
    }
    return out;
}

}  // namespace tunnel::relay
