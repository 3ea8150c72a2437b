// Listing a directory tree on either side, as `cp -r` and `sync` need it:
// depth-first, parents before children, names sorted, paths relative to the
// root. Remote names that would escape the destination are refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "sftp/client.hpp"
#include "transfer/filter.hpp"

namespace tunnel::transfer {

// A tree as listed on either side, paths '/'-separated relative to its root.
struct tree_entry {
    enum class kind { file, dir, link, other };
    std::string rel;
    kind type = kind::other;
    std::uint64_t size = 0;
    std::uint32_t mode = 0;  // permission bits
    std::int64_t mtime = 0;
    std::string link_target;  // links only (filled by the local walk; remote on demand)
};

// Lists `root` (a directory) depth-first, parents before children, skipping
// what `filter` excludes (an excluded directory is not entered).
[[nodiscard]] core::result<std::vector<tree_entry>> list_local_tree(const std::string& root,
                                                                    const path_filter* filter);
asio::awaitable<core::result<std::vector<tree_entry>>> list_remote_tree(sftp::client& c,
                                                                        std::string root,
                                                                        const path_filter* filter);

}  // namespace tunnel::transfer
