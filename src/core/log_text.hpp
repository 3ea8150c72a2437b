// Untrusted text on its way into a log line: control characters and bytes
// outside printable ASCII become \xNN escapes (so a caller cannot forge log
// lines, move the cursor or hide text in a terminal), and the result is cut
// to a length cap. Use it for every string a peer chose: SOCKS user names,
// SSH user names and forward addresses, token error details, headers.
//
//   spdlog::info("SOCKS5 login failed for {:?}", core::log_text(user));
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tunnel::core {

// At most `max_bytes` bytes of `text` (counted before escaping), each byte
// outside 0x20..0x7e and every backslash escaped as \xNN; when cut, "..."
// and the full length follow ("...(4096 bytes)").
[[nodiscard]] std::string log_text(std::string_view text, std::size_t max_bytes = 128);

}  // namespace tunnel::core
