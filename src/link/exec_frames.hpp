// The stream a pooled exec runs over (docs/link.md, "Pooled sessions"): after
// the {"cmd":"exec",...} request line and the manager's {"ok":true} reply,
// both sides of the control connection speak frames of
// [type: 1 byte][length: 4 bytes, big-endian][payload].
//
//   client -> manager   'i' stdin bytes   'e' stdin EOF   'k' signal (payload "KILL", ...)
//   manager -> client   'o' stdout bytes  'r' stderr bytes
//                       'x' the end: a JSON object {"exit_status": N} or
//                           {"signal": "TERM"} or {"error": "..."} (last frame)
// A client that goes away (EOF) gets its command killed; a payload is at
// most max_frame_payload bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tunnel::link {

inline constexpr std::size_t max_frame_payload = 1 << 20;
inline constexpr std::size_t frame_header_size = 5;

// Appends one frame to `out`.
inline void append_frame(std::string& out, char type, std::string_view payload) {
    const auto n = static_cast<std::uint32_t>(payload.size());
    out += type;
    out += static_cast<char>((n >> 24) & 0xff);
    out += static_cast<char>((n >> 16) & 0xff);
    out += static_cast<char>((n >> 8) & 0xff);
    out += static_cast<char>(n & 0xff);
    out.append(payload);
}

struct frame {
    char type = 0;
    std::string payload;
};

// Takes one whole frame off the front of `buffer`; nullopt when more bytes
// are needed. `too_big` is set for a length over max_frame_payload.
inline std::optional<frame> take_frame(std::string& buffer, bool& too_big) {
    too_big = false;
    if (buffer.size() < frame_header_size) return std::nullopt;
    const auto byte = [&](std::size_t i) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(buffer[i]));
    };
    const std::uint32_t n = (byte(1) << 24) | (byte(2) << 16) | (byte(3) << 8) | byte(4);
    if (n > max_frame_payload) {
        too_big = true;
        return std::nullopt;
    }
    if (buffer.size() < frame_header_size + n) return std::nullopt;
    frame f{buffer[0], buffer.substr(frame_header_size, n)};
    buffer.erase(0, frame_header_size + n);
    return f;
}

}  // namespace tunnel::link
