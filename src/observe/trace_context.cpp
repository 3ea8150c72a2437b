#include "observe/trace_context.hpp"

#include <algorithm>
#include <random>

namespace tunnel::observe {

namespace {

// A lower-case hex digit's value, or -1 (W3C: upper case is invalid).
int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

template <std::size_t N>
bool parse_hex(std::string_view text, std::array<std::uint8_t, N>& out) noexcept {
    if (text.size() != 2 * N) return false;
    for (std::size_t i = 0; i < N; ++i) {
        const int hi = hex_value(text[2 * i]);
        const int lo = hex_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return true;
}

template <std::size_t N>
void append_hex(std::string& out, const std::array<std::uint8_t, N>& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    for (auto b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
}

std::mt19937_64& generator() {
    thread_local std::mt19937_64 g = [] {
        std::random_device rd;
        std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
        return std::mt19937_64(seq);
    }();
    return g;
}

template <std::size_t N>
void fill_random(std::array<std::uint8_t, N>& out) {
    auto& g = generator();
    do {
        for (std::size_t i = 0; i < N; i += 8) {
            const std::uint64_t v = g();
            for (std::size_t j = 0; j < 8 && i + j < N; ++j)
                out[i + j] = static_cast<std::uint8_t>(v >> (8 * j));
        }
    } while (std::all_of(out.begin(), out.end(), [](std::uint8_t b) { return b == 0; }));
}

}  // namespace

std::optional<trace_parent> parse_traceparent(std::string_view text) noexcept {
    // version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55.
    constexpr std::size_t v00_size = 55;
    if (text.size() < v00_size) return std::nullopt;
    std::array<std::uint8_t, 1> version{};
    if (!parse_hex(text.substr(0, 2), version) || version[0] == 0xff) return std::nullopt;
    // Version 00 is exactly 55 characters; a later version may add fields
    // after a '-' (read the 00 ones, ignore the rest).
    if (version[0] == 0 && text.size() != v00_size) return std::nullopt;
    if (text.size() > v00_size && text[v00_size] != '-') return std::nullopt;
    if (text[2] != '-' || text[35] != '-' || text[52] != '-') return std::nullopt;
    trace_parent out;
    std::array<std::uint8_t, 1> flags{};
    if (!parse_hex(text.substr(3, 32), out.trace) || !parse_hex(text.substr(36, 16), out.parent) ||
        !parse_hex(text.substr(53, 2), flags))
        return std::nullopt;
    if (is_zero(out.trace) || is_zero(out.parent)) return std::nullopt;
    // Version 00 defines only the sampled bit; pass only that one on.
    out.flags = flags[0] & 1;
    return out;
}

std::string format_traceparent(const trace_id& trace, const span_id& span, std::uint8_t flags) {
    std::string out;
    out.reserve(55);
    out += "00-";
    append_hex(out, trace);
    out += '-';
    append_hex(out, span);
    out += '-';
    append_hex(out, std::array<std::uint8_t, 1>{flags});
    return out;
}

std::optional<std::string> tracestate_to_pass(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    if (text.empty() || text.size() > max_tracestate_bytes) return std::nullopt;
    for (char c : text)
        if (c < 0x20 || c > 0x7e) return std::nullopt;
    return std::string(text);
}

std::string to_hex(const trace_id& id) {
    std::string out;
    append_hex(out, id);
    return out;
}

std::string to_hex(const span_id& id) {
    std::string out;
    append_hex(out, id);
    return out;
}

bool is_zero(const trace_id& id) noexcept {
    return std::all_of(id.begin(), id.end(), [](std::uint8_t b) { return b == 0; });
}

bool is_zero(const span_id& id) noexcept {
    return std::all_of(id.begin(), id.end(), [](std::uint8_t b) { return b == 0; });
}

trace_id new_trace_id() {
    trace_id id;
    fill_random(id);
    return id;
}

span_id new_span_id() {
    span_id id;
    fill_random(id);
    return id;
}

double random_unit() {
    return static_cast<double>(generator()() >> 11) * 0x1.0p-53;
}

}  // namespace tunnel::observe
