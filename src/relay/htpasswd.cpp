#include "relay/htpasswd.hpp"

#include <crypt.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <unordered_set>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace tunnel::relay {

namespace {

using core::errc;

constexpr std::string_view itoa64 =
    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

constexpr std::string_view how_to_hash =
    "make a yescrypt or bcrypt hash, e.g. `mkpasswd -m yescrypt` (Debian package whois) or "
    "`htpasswd -nB USER` (apache2-utils)";

constexpr unsigned max_bcrypt_cost = 10;
constexpr std::uint64_t max_yescrypt_bytes = 32ull << 20;

bool in_itoa64(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return itoa64.find(c) != std::string_view::npos; });
}

// libxcrypt's variable-length little-endian integer encoding of yescrypt
// parameters (yescrypt-common.c, decode64_uint32). Advances `src`.
std::optional<std::uint32_t> decode64_uint32(std::string_view& src, std::uint32_t min) {
    if (src.empty()) return std::nullopt;
    auto at = itoa64.find(src.front());
    if (at == std::string_view::npos) return std::nullopt;
    src.remove_prefix(1);
    std::uint64_t value = min;
    std::uint32_t start = 0, end = 47, chars = 1, bits = 0;
    auto c = static_cast<std::uint32_t>(at);
    while (c > end) {
        value += std::uint64_t(end + 1 - start) << bits;
        start = end + 1;
        end = start + (62 - end) / 2;
        ++chars;
        bits += 6;
    }
    value += std::uint64_t(c - start) << bits;  // the first character is the most significant
    while (--chars) {
        if (src.empty()) return std::nullopt;
        at = itoa64.find(src.front());
        if (at == std::string_view::npos) return std::nullopt;
        src.remove_prefix(1);
        bits -= 6;
        value += std::uint64_t(at) << bits;
    }
    if (value > 0xffffffffu) return std::nullopt;
    return static_cast<std::uint32_t>(value);
}

std::optional<std::string> check_yescrypt(std::string_view hash) {
    auto rest = hash.substr(3);  // after "$y$"
    const auto flavor = decode64_uint32(rest, 0);
    const auto n_log2 = flavor ? decode64_uint32(rest, 1) : std::nullopt;
    const auto r = n_log2 ? decode64_uint32(rest, 1) : std::nullopt;
    // YESCRYPT_RW (2) + YESCRYPT_RW_FLAVOR_MASK (0x3fc) >> 2: libxcrypt's valid flavors.
    if (!r || *flavor > 2 + (0x3fcu >> 2) || *n_log2 > 63 || *r == 0)
        return "is not a well-formed yescrypt hash (its parameters do not decode)";
    if (!rest.empty() && rest.front() != '$') {
        const auto have = decode64_uint32(rest, 1);
        if (!have || *have != 2)
            return "is a yescrypt hash with extra parameters (lanes, ROM or upgrades) this relay "
                   "does not accept; make one with the default parameters";
        const auto t = decode64_uint32(rest, 1);
        if (!t || *t > 2)
            return "is a yescrypt hash with a time factor above 2, too costly to check";
    }
    // 128 * r * N bytes of memory (and as much work) per check.
    if (*n_log2 > 30 || *r > (1u << 24) || ((128ull * *r) << *n_log2) > max_yescrypt_bytes)
        return fmt::format(
            "is a yescrypt hash that needs more than {} MiB to check; use a lower cost (the "
            "default `mkpasswd -m yescrypt` needs 16 MiB)",
            max_yescrypt_bytes >> 20);
    if (rest.empty() || rest.front() != '$') return "is not a well-formed yescrypt hash";
    rest.remove_prefix(1);
    const auto dollar = rest.find('$');
    if (dollar == std::string_view::npos || dollar == 0 || dollar > 86 ||
        !in_itoa64(rest.substr(0, dollar)) || rest.size() - dollar - 1 != 43 ||
        !in_itoa64(rest.substr(dollar + 1)))
        return "is not a well-formed yescrypt hash (salt or hash part)";
    return std::nullopt;
}

std::optional<std::string> check_bcrypt(std::string_view hash) {
    // $2b$CC$ + 22 salt + 31 hash characters.
    if (hash.size() != 60 || hash[6] != '$' || !std::isdigit(static_cast<unsigned char>(hash[4])) ||
        !std::isdigit(static_cast<unsigned char>(hash[5])) || !in_itoa64(hash.substr(7)))
        return "is not a well-formed bcrypt hash";
    const unsigned cost = unsigned(hash[4] - '0') * 10 + unsigned(hash[5] - '0');
    if (cost < 4 || cost > 31) return "is not a well-formed bcrypt hash (cost outside 4..31)";
    if (cost > max_bcrypt_cost)
        return fmt::format(
            "is a bcrypt hash of cost {}, too costly to check for every request (at most {}); "
            "`htpasswd -nB USER` makes one of cost 5",
            cost, max_bcrypt_cost);
    return std::nullopt;
}

// What a refused hash is, for the message (never the hash itself).
std::string weak_kind(std::string_view hash) {
    auto starts = [&](std::string_view p) { return hash.substr(0, p.size()) == p; };
    if (starts("$apr1$")) return "an Apache MD5 hash (htpasswd's default without -B)";
    if (starts("$1$")) return "an MD5-crypt hash";
    if (starts("{SHA}")) return "an unsalted SHA-1 hash";
    if (starts("$5$") || starts("$6$")) return "a SHA-crypt hash (not accepted here)";
    if (starts("$2a$") || starts("$2x$"))
        return "an old bcrypt variant ($2a$/$2x$, affected by the 8-bit bug)";
    if (starts("$")) return "a hash of a kind not accepted here";
    if (hash.size() == 13 && in_itoa64(hash)) return "a DES crypt hash";
    if (starts("_") && hash.size() == 20) return "a BSDi DES hash";
    return "not a hash (plain text?)";
}

core::result<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return core::fail(
            errno == ENOENT ? errc::not_found : errc::permission_denied,
            fmt::format("htpasswd file {}: cannot read: {}", path, std::strerror(errno)));
    std::stringstream s;
    s << in.rdbuf();
    if (s.str().size() > 4u << 20)
        return core::fail(errc::invalid_argument,
                          fmt::format("htpasswd file {} is larger than 4 MiB", path));
    return s.str();
}

// crypt_rn of `password` with `setting`; "" on failure.
std::string crypt_of(std::string_view password, const std::string& setting) {
    const std::string phrase(password);
    auto data = std::make_unique<crypt_data>();  // zeroed: required before first use
    const char* out = ::crypt_rn(phrase.c_str(), setting.c_str(), data.get(), sizeof(crypt_data));
    std::string result = out && out[0] != '*' ? std::string(out) : std::string();
    OPENSSL_cleanse(data.get(), sizeof(crypt_data));
    return result;
}

}  // namespace

core::result<void> check_user_name(std::string_view user) {
    const bool ok =
        !user.empty() && user.size() <= 64 && std::all_of(user.begin(), user.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '@' || c == '+' || c == '-';
        });
    if (!ok)
        return core::fail(errc::invalid_argument,
                          "a user name is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '@', "
                          "'+' and '-'");
    return {};
}

core::result<void> check_password_hash(std::string_view hash) {
    std::optional<std::string> why;
    if (hash.substr(0, 3) == "$y$")
        why = check_yescrypt(hash);
    else if (hash.substr(0, 4) == "$2b$" || hash.substr(0, 4) == "$2y$")
        why = check_bcrypt(hash);
    else
        return core::fail(errc::invalid_argument,
                          fmt::format("the password is stored as {}, which is refused: {}",
                                      weak_kind(hash), how_to_hash));
    if (why)
        return core::fail(errc::invalid_argument,
                          fmt::format("the hash {}: {}", *why, how_to_hash));
    return {};
}

core::result<htpasswd> htpasswd::parse(std::string_view text, std::string_view source) {
    std::vector<htpasswd_entry> entries;
    std::vector<std::string> problems;
    std::unordered_set<std::string> seen;
    std::size_t line_no = 0;
    while (!text.empty() && problems.size() < 20) {
        ++line_no;
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty() || line.front() == '#') continue;
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            problems.push_back(fmt::format("{}:{}: expected user:hash", source, line_no));
            continue;
        }
        entries.push_back(
            {std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))});
        const bool duplicate = !seen.insert(entries.back().user).second;
        if (duplicate)
            problems.push_back(fmt::format("{}:{}: user {} is listed twice", source, line_no,
                                           entries.back().user));
        else if (auto ok = check_user_name(entries.back().user); !ok)
            problems.push_back(fmt::format("{}:{}: {}", source, line_no, ok.error().message));
        else if (auto h = check_password_hash(entries.back().hash); !h)
            problems.push_back(fmt::format("{}:{}: user {}: {}", source, line_no,
                                           entries.back().user, h.error().message));
    }
    if (!problems.empty())
        return core::fail(errc::invalid_argument, fmt::format("{}", fmt::join(problems, "\n")));
    return from_entries(std::move(entries), source);
}

core::result<htpasswd> htpasswd::load(const std::string& path) {
    auto text = read_file(path);
    if (!text) return tl::unexpected(text.error());
    return parse(*text, path);
}

core::result<htpasswd> htpasswd::from_entries(std::vector<htpasswd_entry> entries,
                                              std::string_view source) {
    std::vector<std::string> problems;
    if (entries.empty())
        problems.push_back(
            fmt::format("{}: no users; add lines user:hash ({})", source, how_to_hash));
    if (entries.size() > max_users)
        problems.push_back(
            fmt::format("{}: {} users, at most {}", source, entries.size(), max_users));
    htpasswd out;
    std::unordered_set<std::string> seen;
    for (auto& e : entries) {
        if (problems.size() >= 20) break;
        if (auto ok = check_user_name(e.user); !ok) {
            problems.push_back(fmt::format("{}: {}", source, ok.error().message));
            continue;
        }
        if (auto h = check_password_hash(e.hash); !h) {
            problems.push_back(fmt::format("{}: user {}: {}", source, e.user, h.error().message));
            continue;
        }
        if (!seen.insert(e.user).second) {
            problems.push_back(fmt::format("{}: user {} is listed twice", source, e.user));
            continue;
        }
        out.entries_.push_back(std::move(e));
    }
    if (!problems.empty())
        return core::fail(errc::invalid_argument, fmt::format("{}", fmt::join(problems, "\n")));
    return out;
}

const htpasswd_entry* htpasswd::find(std::string_view user) const noexcept {
    for (const auto& e : entries_)
        if (e.user == user) return &e;
    return nullptr;
}

bool htpasswd::verify(std::string_view user, std::string_view password) const {
    if (entries_.empty() || password.size() > max_password_bytes ||
        password.find('\0') != std::string_view::npos)
        return false;
    const auto* entry = find(user);
    // An unknown user is hashed with the first entry's setting: same cost.
    const std::string& setting = entry ? entry->hash : entries_.front().hash;
    const std::string computed = crypt_of(password, setting);
    if (!entry || computed.size() != entry->hash.size()) return false;
    return CRYPTO_memcmp(computed.data(), entry->hash.data(), computed.size()) == 0;
}

password_cache::password_cache(std::size_t capacity, std::chrono::seconds ttl)
    : key_(32, '\0'), capacity_(std::max<std::size_t>(capacity, 1)), ttl_(ttl) {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key_.data()), static_cast<int>(key_.size())) !=
        1)
        throw std::runtime_error("password_cache: no random bytes from OpenSSL");
}

bool password_cache::verify(const htpasswd& list, std::string_view user, std::string_view password,
                            std::chrono::system_clock::time_point now) {
    const auto* entry = list.find(user);
    std::string key;
    if (entry) {
        std::string input;
        input.reserve(user.size() + password.size() + entry->hash.size() + 2);
        input.append(user).push_back('\0');
        input.append(password).push_back('\0');
        input.append(entry->hash);
        std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
        unsigned int len = 0;
        HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
             reinterpret_cast<const unsigned char*>(input.data()), input.size(), md.data(), &len);
        OPENSSL_cleanse(input.data(), input.size());
        key.assign(reinterpret_cast<const char*>(md.data()), len);
        std::lock_guard lock(mutex_);
        if (auto it = verified_.find(key); it != verified_.end() && now < it->second) return true;
    }
    const bool ok = list.verify(user, password);
    std::lock_guard lock(mutex_);
    ++computed_;
    if (!ok || !entry) return ok;
    if (!verified_.count(key)) {
        while (order_.size() >= capacity_) {
            verified_.erase(order_.front());
            order_.pop_front();
        }
        order_.push_back(key);
    }
    verified_[key] = now + ttl_;
    return true;
}

std::size_t password_cache::size() const {
    std::lock_guard lock(mutex_);
    return verified_.size();
}

std::size_t password_cache::hashes_computed() const {
    std::lock_guard lock(mutex_);
    return computed_;
}

}  // namespace tunnel::relay
