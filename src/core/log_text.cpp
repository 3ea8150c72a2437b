#include "core/log_text.hpp"

#include <fmt/format.h>

namespace tunnel::core {

std::string log_text(std::string_view text, std::size_t max_bytes) {
    static constexpr char hex[] = "0123456789abcdef";
    const std::string_view shown = text.substr(0, max_bytes);
    std::string out;
    out.reserve(shown.size() + 16);
    for (const char c : shown) {
        const auto b = static_cast<unsigned char>(c);
        if (b >= 0x20 && b < 0x7f && b != '\\') {
            out += c;
        } else {
            out += "\\x";
            out += hex[b >> 4];
            out += hex[b & 0xf];
        }
    }
    if (shown.size() < text.size()) out += fmt::format("...({} bytes)", text.size());
    return out;
}

}  // namespace tunnel::core
