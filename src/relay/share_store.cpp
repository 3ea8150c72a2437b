#include "relay/share_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/unique_fd.hpp"

namespace tunnel::relay {

namespace {

using sys = std::chrono::system_clock;

constexpr std::size_t max_state_bytes = std::size_t{64} << 20;

std::shared_ptr<share_snapshot> rebuild(std::vector<std::shared_ptr<const share_entry>> grants) {
    auto s = std::make_shared<share_snapshot>();
    s->grants = std::move(grants);
    for (const auto& e : s->grants)
        s->by_route.emplace(std::pair{e->grant.tenant, e->grant.name}, e);
    return s;
}

core::error io_failure(const std::string& what, const std::string& path) {
    return core::error{core::errc::io_error,
                       fmt::format("cannot {} {}: {}", what, path, std::strerror(errno))};
}

}  // namespace

core::result<void> write_file_atomically(const std::string& path, std::string_view text) {
    const std::string tmp = path + ".tmp";
    core::unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (fd.get() < 0) return tl::unexpected(io_failure("create", tmp));
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            auto e = io_failure("write", tmp);
            ::unlink(tmp.c_str());
            return tl::unexpected(e);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) {
        auto e = io_failure("sync", tmp);
        ::unlink(tmp.c_str());
        return tl::unexpected(e);
    }
    fd = core::unique_fd();
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        auto e = io_failure("rename " + tmp + " to", path);
        ::unlink(tmp.c_str());
        return tl::unexpected(e);
    }
    auto dir = std::filesystem::path(path).parent_path();
    if (dir.empty()) dir = ".";
    core::unique_fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dfd.get() >= 0) (void)::fsync(dfd.get());
    return {};
}

core::result<std::unique_ptr<share_store>> share_store::open(share_config config,
                                                             sys::time_point now) {
    std::unique_ptr<share_store> store(new share_store(std::move(config)));
    const std::string& path = store->config_.state_file;
    if (path.empty()) return store;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return store;  // written on the first grant
    const auto size = std::filesystem::file_size(path, ec);
    if (ec || size > max_state_bytes)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("shares.state_file {}: {}", path,
                                      ec ? ec.message() : "larger than 64 MiB"));
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return core::fail(
            core::errc::io_error,
            fmt::format("shares.state_file {}: cannot read it: {}", path, std::strerror(errno)));
    std::ostringstream text;
    text << in.rdbuf();
    auto grants = parse_shares_file(text.str(), "shares.state_file " + path);
    if (!grants) return tl::unexpected(grants.error());
    std::vector<std::shared_ptr<const share_entry>> live;
    for (auto& g : *grants)
        if (g.live(now)) live.push_back(std::make_shared<const share_entry>(std::move(g)));
    store->snapshot_.store(rebuild(std::move(live)), std::memory_order_release);
    return store;
}

core::result<void> share_store::commit(std::shared_ptr<share_snapshot> next) {
    if (!config_.state_file.empty()) {
        std::vector<share_grant> grants;
        grants.reserve(next->grants.size());
        for (const auto& e : next->grants) grants.push_back(e->grant);
        if (auto w = write_file_atomically(config_.state_file, serialize_shares(grants)); !w)
            return tl::unexpected(
                core::error{core::errc::io_error,
                            fmt::format("the relay could not save the grant ({}); nothing changed",
                                        w.error().message)});
    }
    snapshot_.store(std::move(next), std::memory_order_release);
    return {};
}

core::result<share_grant> share_store::grant(const share_request& request, const std::string& owner,
                                             sys::time_point now) {
    std::lock_guard lock(write_mutex_);
    auto current = snapshot();
    std::vector<std::shared_ptr<const share_entry>> kept;
    unsigned owned = 0;
    for (const auto& e : current->grants) {
        if (!e->grant.live(now)) continue;
        if (e->grant.tenant == owner) ++owned;
        kept.push_back(e);
    }
    if (owned >= config_.limits.max_per_tenant)
        return core::fail(core::errc::resource_exhausted,
                          fmt::format("tenant {} has {} live grants, the most this relay allows "
                                      "(shares.max_per_tenant); revoke some first (tunnel share "
                                      "list, tunnel share revoke ID)",
                                      owner, owned));
    share_grant g;
    auto id = new_share_id();
    if (!id) return tl::unexpected(id.error());
    g.id = std::move(*id);
    g.tenant = owner;
    g.name = request.name;
    g.grantee = request.grantee;
    g.role = request.role;
    g.created_at = std::chrono::time_point_cast<std::chrono::seconds>(now);
    // Whole seconds (the state file's unit), rounded up: never shorter than asked.
    g.expires_at = std::chrono::ceil<std::chrono::seconds>(request.expires_at);
    g.created_by = "tenant:" + owner;
    kept.push_back(std::make_shared<const share_entry>(g));
    if (auto c = commit(rebuild(std::move(kept))); !c) return tl::unexpected(c.error());
    return g;
}

core::result<share_grant> share_store::revoke(const std::string& owner, const std::string& id,
                                              sys::time_point now) {
    std::lock_guard lock(write_mutex_);
    auto current = snapshot();
    std::vector<std::shared_ptr<const share_entry>> kept;
    std::optional<share_grant> removed;
    for (const auto& e : current->grants) {
        if (e->grant.id == id && e->grant.tenant == owner) {
            removed = e->grant;
            continue;
        }
        if (e->grant.live(now)) kept.push_back(e);
    }
    if (!removed)
        return core::fail(
            core::errc::not_found,
            fmt::format("tenant {} has no grant {}; tunnel share list shows its grants", owner,
                        id));
    if (auto c = commit(rebuild(std::move(kept))); !c) return tl::unexpected(c.error());
    return *removed;
}

std::vector<share_grant> share_store::list(const std::string& owner, sys::time_point now) const {
    std::vector<share_grant> out;
    for (const auto& e : snapshot()->grants)
        if (e->grant.tenant == owner && e->grant.live(now)) out.push_back(e->grant);
    return out;
}

const share_entry* share_store::find(const share_snapshot& s, const std::string& tenant,
                                     const std::string& name, share_role role,
                                     std::span<const share_grantee> grantees, sys::time_point now) {
    auto [first, last] = s.by_route.equal_range(std::pair{tenant, name});
    for (auto it = first; it != last; ++it) {
        const auto& g = it->second->grant;
        if (g.role != role || !g.live(now)) continue;
        if (std::find(grantees.begin(), grantees.end(), g.grantee) != grantees.end())
            return it->second.get();
    }
    return nullptr;
}

bool share_store::any(const share_snapshot& s, const std::string& tenant, const std::string& name,
                      share_role role, sys::time_point now) {
    if (s.by_route.empty()) return false;
    auto [first, last] = s.by_route.equal_range(std::pair{tenant, name});
    for (auto it = first; it != last; ++it)
        if (it->second->grant.role == role && it->second->grant.live(now)) return true;
    return false;
}

bool share_store::note_use(const share_entry& e, std::chrono::steady_clock::time_point now,
                           std::uint64_t& uses) const {
    const auto now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    e.unaudited.fetch_add(1, std::memory_order_relaxed);
    auto last = e.last_audit_ms.load(std::memory_order_relaxed);
    if (last >= 0 && now_ms - last < config_.use_audit_interval.count()) return false;
    // One thread wins the interval's record; the others keep counting.
    if (!e.last_audit_ms.compare_exchange_strong(last, now_ms, std::memory_order_relaxed))
        return false;
    uses = e.unaudited.exchange(0, std::memory_order_relaxed);
    return true;
}

}  // namespace tunnel::relay
