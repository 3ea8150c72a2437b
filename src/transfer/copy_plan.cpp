#include "transfer/copy_plan.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/shell_quote.hpp"
#include "transfer/location.hpp"
#include "transfer/retry_policy.hpp"
#include "transfer/target.hpp"

namespace tunnel::transfer {

core::result<copy_plan> plan_copy(const copy_request& r) {
    if (r.paths.size() < 2)
        return core::fail(core::errc::invalid_argument,
                          "cp needs at least one source and a destination");
    std::vector<location> sources;
    for (std::size_t i = 0; i + 1 < r.paths.size(); ++i) {
        auto l = parse_location(r.paths[i]);
        if (!l) return tl::unexpected(l.error());
        sources.push_back(*l);
    }
    auto dest = parse_location(r.paths.back());
    if (!dest) return tl::unexpected(dest.error());

    copy_plan plan;
    copy_options& o = plan.options;
    o.recursive = r.recursive;
    o.preserve = r.preserve;
    o.resume = r.resume;
    o.verify = r.verify;
    o.checksum = r.checksum;
    o.jobs = std::max(1u, r.jobs);
    o.streams = std::max(1u, r.streams);
    if (r.streams_given) o.stream_min_rtt = std::chrono::microseconds(0);
    auto retries = parse_retries(r.retries);
    if (!retries) return tl::unexpected(retries.error());
    plan.retries = *retries;
    // A file written over several channels cannot be resumed (its ranges
    // complete out of order): with retries, one channel, so each cut resumes.
    if (plan.retries > 0) o.streams = 1;
    if (!r.mode.empty()) {
        auto m = parse_mode(r.mode);
        if (!m) return tl::unexpected(m.error());
        o.mode = *m;
    }

    if (!r.owner.empty()) o.owner = r.owner;
    if (!r.group.empty()) o.group = r.group;
    if ((o.owner || o.group) && !r.sudo)
        return core::fail(core::errc::invalid_argument,
                          "--owner/--group change ownership with sudo on the host: add --sudo");
    for (const auto* name : {&r.owner, &r.group})
        if (name->find_first_of(":/ \t\n") != std::string::npos)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("invalid user or group name \"{}\"", *name));

    // One side local, the other one remote host.
    plan.upload = dest->remote();
    for (const auto& s : sources) {
        if (s.remote() == plan.upload)
            return core::fail(
                core::errc::invalid_argument,
                plan.upload
                    ? fmt::format("{} and {} are both remote: copy between hosts in two steps",
                                  s.display(), dest->display())
                    : fmt::format("{} and {} are both local: use cp", s.display(),
                                  dest->display()));
        if (!plan.upload) {
            if (!plan.host.empty() && *s.host != plan.host)
                return core::fail(
                    core::errc::invalid_argument,
                    fmt::format(
                        "sources on several hosts ({} and {}): copy from one host at a time",
                        plan.host, *s.host));
            plan.host = *s.host;
        }
        plan.sources.push_back(s.path);
    }
    if (plan.upload) plan.host = *dest->host;
    if ((o.owner || o.group) && !plan.upload)
        return core::fail(core::errc::invalid_argument, "--owner/--group apply to uploads only");
    plan.dest = dest->path;
    return plan;
}

bool needs_remote_commands(const copy_options& o) noexcept {
    return o.owner || o.group || o.verify || o.checksum;
}

std::vector<std::string> notes_without_remote_commands(const copy_plan& plan) {
    const auto& o = plan.options;
    std::vector<std::string> notes;
    if (o.owner || o.group)
        notes.push_back(fmt::format(
            "note: {} runs no commands (SFTP-only account): --owner/--group cannot be applied",
            plan.host));
    if (o.verify || o.checksum)
        notes.push_back(
            fmt::format("note: {} runs no commands (SFTP-only account): remote "
                        "SHA-256 is computed by reading files back",
                        plan.host));
    return notes;
}

std::string copy_target(const std::string& source, const std::string& dest, bool dest_is_dir) {
    return dest_is_dir ? join_path(dest, base_name(source)) : dest;
}

core::result<void> check_copy_destination(std::size_t source_count, const std::string& dest,
                                          bool exists, bool is_dir, const std::string& shown) {
    if (source_count > 1 && !is_dir)
        return core::fail(exists ? core::errc::invalid_argument : core::errc::not_found,
                          fmt::format("{} is not a directory (several sources need one)", shown));
    if (!exists && !dest.empty() && dest.back() == '/')
        return core::fail(core::errc::not_found, fmt::format("directory {} does not exist", shown));
    return {};
}

std::string chown_spec(const std::optional<std::string>& owner,
                       const std::optional<std::string>& group) {
    return owner.value_or("") + (group ? ":" + *group : "");
}

std::vector<std::string> chown_commands(const std::optional<std::string>& owner,
                                        const std::optional<std::string>& group,
                                        const std::vector<std::string>& paths,
                                        std::size_t max_length) {
    std::vector<std::string> commands;
    const std::string spec = chown_spec(owner, group);
    for (std::size_t i = 0; i < paths.size();) {
        std::string command = "sudo -n chown -h -- " + core::shell_quote(spec);
        for (; i < paths.size() && command.size() < max_length; ++i)
            command += " " + core::shell_quote(paths[i]);
        commands.push_back(std::move(command));
    }
    return commands;
}

}  // namespace tunnel::transfer
