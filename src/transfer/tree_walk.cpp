#include "transfer/tree_walk.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

#include "transfer/local_file.hpp"
#include "transfer/location.hpp"

namespace tunnel::transfer {

namespace {

core::result<void> walk_local(const std::string& root, const std::string& rel,
                              const path_filter* filter, std::vector<tree_entry>& out) {
    std::string dir = rel.empty() ? root : join_path(root, rel);
    DIR* d = ::opendir(dir.c_str());
    if (!d) return tl::unexpected(errno_error("cannot list", dir));
    std::vector<std::string> names;
    while (auto* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n != "." && n != "..") names.emplace_back(n);
    }
    int dfd = ::dirfd(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
        struct stat st {};
        if (::fstatat(dfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // vanished
        tree_entry e;
        e.rel = rel.empty() ? n : rel + "/" + n;
        e.size = static_cast<std::uint64_t>(st.st_size);
        e.mode = st.st_mode & 07777;
        e.mtime = st.st_mtim.tv_sec;
        if (S_ISREG(st.st_mode))
            e.type = tree_entry::kind::file;
        else if (S_ISDIR(st.st_mode))
            e.type = tree_entry::kind::dir;
        else if (S_ISLNK(st.st_mode))
            e.type = tree_entry::kind::link;
        if (filter && filter->excluded(e.rel, e.type == tree_entry::kind::dir)) continue;
        if (e.type == tree_entry::kind::link) {
            char buf[4096];
            ssize_t k = ::readlinkat(dfd, n.c_str(), buf, sizeof buf);
            if (k > 0) e.link_target.assign(buf, static_cast<std::size_t>(k));
        }
        const bool is_dir = e.type == tree_entry::kind::dir;
        const std::string sub = e.rel;  // `out` may reallocate below
        out.push_back(std::move(e));
        if (is_dir) {
            auto r = walk_local(root, sub, filter, out);
            if (!r) {
                ::closedir(d);
                return r;
            }
        }
    }
    ::closedir(d);
    return {};
}

asio::awaitable<core::result<void>> walk_remote(sftp::client& c, const std::string& root,
                                                const std::string& rel, const path_filter* filter,
                                                std::vector<tree_entry>& out) {
    std::string dir = rel.empty() ? root : join_path(root, rel);
    auto names = co_await c.list(dir);
    if (!names) co_return tl::unexpected(names.error());
    std::sort(names->begin(), names->end(),
              [](const auto& a, const auto& b) { return a.filename < b.filename; });
    for (auto& n : *names) {
        if (!safe_entry_name(n.filename))
            co_return core::fail(
                core::errc::protocol_error,
                fmt::format("refusing remote name \"{}\" in {}: it would escape the destination",
                            n.filename, dir));
        tree_entry e;
        e.rel = rel.empty() ? n.filename : rel + "/" + n.filename;
        e.size = n.attrs.size.value_or(0);
        e.mode = n.attrs.permissions.value_or(0) & 07777;
        e.mtime = n.attrs.mtime.value_or(0);
        if (n.attrs.is_reg())
            e.type = tree_entry::kind::file;
        else if (n.attrs.is_dir())
            e.type = tree_entry::kind::dir;
        else if (n.attrs.is_link())
            e.type = tree_entry::kind::link;
        if (filter && filter->excluded(e.rel, e.type == tree_entry::kind::dir)) continue;
        out.push_back(std::move(e));
        if (out.back().type == tree_entry::kind::dir) {
            auto sub = out.back().rel;
            if (auto r = co_await walk_remote(c, root, sub, filter, out); !r) co_return r;
        }
    }
    co_return core::result<void>{};
}

}  // namespace

core::result<std::vector<tree_entry>> list_local_tree(const std::string& root,
                                                      const path_filter* filter) {
    std::vector<tree_entry> out;
    if (auto r = walk_local(root, "", filter, out); !r) return tl::unexpected(r.error());
    return out;
}

asio::awaitable<core::result<std::vector<tree_entry>>> list_remote_tree(sftp::client& c,
                                                                        std::string root,
                                                                        const path_filter* filter) {
    std::vector<tree_entry> out;
    if (auto r = co_await walk_remote(c, root, "", filter, out); !r)
        co_return tl::unexpected(r.error());
    co_return out;
}

}  // namespace tunnel::transfer
