// What `tunnel cp` checks on this machine before it connects: a missing or
// unreadable local source, a directory without -r, a download into a
// directory that does not exist. Each is bad input (exit 2), named with its
// path, and found without sending anything to the host.
#pragma once

#include <string>
#include <vector>

#include "core/error.hpp"

namespace tunnel::transfer {

// Every problem with the local sources of an upload (empty: all usable).
[[nodiscard]] std::vector<core::error> check_upload_sources(const std::vector<std::string>& paths,
                                                            bool recursive);

// The local destination of a download: an existing directory when there are
// several sources or it ends in '/', otherwise a path whose parent directory
// exists (the file itself may be new).
[[nodiscard]] core::result<void> check_download_destination(const std::string& dest,
                                                            std::size_t source_count);

}  // namespace tunnel::transfer
