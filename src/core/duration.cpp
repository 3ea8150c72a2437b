#include "core/duration.hpp"

#include <cstdint>
#include <limits>
#include <optional>

namespace tunnel::core {

namespace {

using rep = std::chrono::milliseconds::rep;
constexpr rep max_ms = std::numeric_limits<rep>::max();
constexpr std::string_view usage_hint = "use a number with a unit, e.g. 500ms, 30s, 5m, 1h";

bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

// Quotes user input for a one-line error message: control and non-ASCII
// bytes become \xNN so a stray newline cannot split the line.
std::string quote_for_message(std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (unsigned char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += '"';
    return out;
}

tl::unexpected<error> invalid(std::string_view text, std::string_view reason,
                              bool with_hint = true) {
    std::string message = "invalid duration " + quote_for_message(text) + ": ";
    message += reason;
    if (with_hint) {
        message += "; ";
        message += usage_hint;
    }
    return fail(errc::invalid_argument, std::move(message));
}

struct unit {
    std::string_view name;
    rep ms;
    int rank;  // larger units have larger ranks; terms must strictly decrease
};

constexpr unit units[] = {
    {"ms", 1, 0},
    {"s", 1'000, 1},
    {"m", 60'000, 2},
    {"h", 3'600'000, 3},
};

bool is_letter(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// The unit token at the start of `rest`: its run of ASCII letters, so that
// "5sec" reports "sec" rather than "s" followed by junk. If `rest` does not
// start with a letter, the run up to the next digit or '.'.
std::string_view unit_token(std::string_view rest) {
    std::size_t end = 0;
    if (!rest.empty() && is_letter(rest.front())) {
        while (end < rest.size() && is_letter(rest[end])) ++end;
    } else {
        while (end < rest.size() && !is_digit(rest[end]) && rest[end] != '.') ++end;
    }
    return rest.substr(0, end);
}

std::optional<unit> find_unit(std::string_view token) {
    for (const auto& u : units) {
        if (u.name == token) return u;
    }
    return std::nullopt;
}

bool checked_mul(rep a, rep b, rep& out) noexcept {
    if (a != 0 && b > max_ms / a) return false;
    out = a * b;
    return true;
}

bool checked_add(rep a, rep b, rep& out) noexcept {
    if (b > max_ms - a) return false;
    out = a + b;
    return true;
}

}  // namespace

result<std::chrono::milliseconds> parse_duration(std::string_view text) {
    if (text.empty()) return invalid(text, "empty");
    if (text.front() == '-') return invalid(text, "negative durations are not allowed");

    rep total = 0;
    int last_rank = 4;  // above every unit
    std::size_t pos = 0;
    bool first_term = true;
    while (pos < text.size()) {
        // NUMBER: digits, optional '.', optional digits; at least one digit.
        const std::size_t number_start = pos;
        rep whole = 0;
        bool whole_overflow = false;
        std::size_t digits = 0;
        while (pos < text.size() && is_digit(text[pos])) {
            const rep digit = text[pos] - '0';
            if (whole > (max_ms - digit) / 10)
                whole_overflow = true;
            else
                whole = whole * 10 + digit;
            ++pos;
            ++digits;
        }
        std::string_view fraction;
        if (pos < text.size() && text[pos] == '.') {
            const std::size_t fraction_start = ++pos;
            while (pos < text.size() && is_digit(text[pos])) ++pos;
            fraction = text.substr(fraction_start, pos - fraction_start);
            digits += fraction.size();
        }
        if (digits == 0) {
            if (pos == number_start && find_unit(unit_token(text.substr(pos)))) {
                return invalid(text, "missing number before unit");
            }
            return invalid(text, first_term ? "expected a number"
                                            : "unexpected " + quote_for_message(text.substr(pos)));
        }

        // UNIT, or none at all if the whole text is one bare number.
        std::optional<unit> u;
        if (pos == text.size()) {
            if (!first_term) return invalid(text, "missing unit after the last number");
            u = units[1];  // bare number: seconds
        } else {
            const std::string_view token = unit_token(text.substr(pos));
            if (token.empty()) {
                return invalid(text, "unexpected " + quote_for_message(text.substr(pos)));
            }
            u = find_unit(token);
            if (!u) return invalid(text, "unknown unit " + quote_for_message(token));
            pos += token.size();
        }
        if (u->rank >= last_rank) {
            return invalid(text, "units must go from largest to smallest, each once (e.g. 1h30m)");
        }
        last_rank = u->rank;

        rep term = 0;
        if (whole_overflow || !checked_mul(whole, u->ms, term)) {
            return invalid(text, "too large", false);
        }
        // Fraction: drop trailing zeros, then it must land on a whole
        // millisecond. A unit is at most 3'600'000 = 2^7 * 3^2 * 5^5 ms, so
        // nothing with more than 7 significant fractional digits can.
        while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
        if (!fraction.empty()) {
            if (fraction.size() > 7) return invalid(text, "finer than a millisecond");
            std::int64_t numerator = 0;
            std::int64_t denominator = 1;
            for (char c : fraction) {
                numerator = numerator * 10 + (c - '0');
                denominator *= 10;
            }
            const std::int64_t scaled = numerator * u->ms;  // < 10^7 * 3.6e6: fits
            if (scaled % denominator != 0) return invalid(text, "finer than a millisecond");
            if (!checked_add(term, scaled / denominator, term)) {
                return invalid(text, "too large", false);
            }
        }
        if (!checked_add(total, term, total)) return invalid(text, "too large", false);
        first_term = false;
    }
    return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds duration) {
    const rep count = duration.count();
    if (count == 0) return "0s";
    std::string out;
    // Work in unsigned so that the minimum value negates cleanly.
    std::uint64_t ms = static_cast<std::uint64_t>(count);
    if (count < 0) {
        out += '-';
        ms = 0 - ms;
    }
    if (ms < 1000) return out + std::to_string(ms) + "ms";

    const std::uint64_t hours = ms / 3'600'000;
    const std::uint64_t minutes = ms / 60'000 % 60;
    const std::uint64_t seconds = ms / 1000 % 60;
    const std::uint64_t millis = ms % 1000;
    if (hours != 0) out += std::to_string(hours) + "h";
    if (minutes != 0) out += std::to_string(minutes) + "m";
    if (seconds != 0 || millis != 0) {
        out += std::to_string(seconds);
        if (millis != 0) {
            std::string fraction = std::to_string(millis);
            fraction.insert(0, 3 - fraction.size(), '0');
            while (fraction.back() == '0') fraction.pop_back();
            out += '.';
            out += fraction;
        }
        out += 's';
    }
    return out;
}

}  // namespace tunnel::core
