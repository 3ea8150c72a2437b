// Secrets kept in files (admin bearer token, audit HMAC key): read once at
// start, trailing whitespace trimmed, a minimum length enforced, and the
// message says how to make a good one. The secret itself never appears in a
// message.
//
//   auto token = core::read_secret_file(cfg.admin.token_file, "admin.token_file", 16);
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace tunnel::core {

// `what` names the setting in messages ("admin.token_file", "--hmac-key-file").
// Fails when the file cannot be read, is larger than 64 KiB, or holds fewer
// than `min_bytes` bytes after trimming.
[[nodiscard]] result<std::string> read_secret_file(const std::string& path, std::string_view what,
                                                   std::size_t min_bytes);

}  // namespace tunnel::core
