#include "relay/response_head_filter.hpp"

#include <strings.h>

namespace tunnel::relay {

namespace {

// "HTTP/1.1 103 Early Hints" -> true; 101 and final statuses -> false.
bool interim(std::string_view head) {
    const auto sp = head.find(' ');
    if (sp == std::string_view::npos || sp + 3 >= head.size()) return false;
    const auto code = head.substr(sp + 1, 3);
    return code[0] == '1' && code != "101";
}

bool names(std::string_view line, std::string_view field) {
    return line.size() > field.size() && line[field.size()] == ':' &&
           ::strncasecmp(line.data(), field.data(), field.size()) == 0;
}

}  // namespace

std::string drop_field(std::string_view head, std::string_view field) {
    std::string out;
    out.reserve(head.size());
    bool dropping = false;
    std::size_t at = 0;
    bool first = true;
    while (at < head.size()) {
        auto eol = head.find("\r\n", at);
        const auto end = eol == std::string_view::npos ? head.size() : eol + 2;
        const auto line = head.substr(at, end - at);
        at = end;
        if (first) {  // the status line
            first = false;
            out += line;
            continue;
        }
        const bool continuation = !line.empty() && (line[0] == ' ' || line[0] == '\t');
        if (!continuation) dropping = names(line, field);
        if (!dropping) out += line;
    }
    return out;
}

std::string response_head_filter::feed(std::string_view bytes) {
    if (done_) return std::string(bytes);
    held_.append(bytes);
    std::string out;
    for (;;) {
        const auto end = held_.find("\r\n\r\n");
        if (end == std::string::npos) break;
        const std::string_view head = std::string_view(held_).substr(0, end + 4);
        out += drop_field(head, field_);
        const bool final_head = !interim(head);
        held_.erase(0, end + 4);
        if (final_head) {
            done_ = true;
            out += held_;
            held_.clear();
            held_.shrink_to_fit();
            break;
        }
    }
    return out;
}

}  // namespace tunnel::relay
