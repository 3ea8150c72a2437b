#include "relay/hop_preamble.hpp"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <vector>

#include <fmt/format.h>

#include "core/log_text.hpp"
#include "relay/public_route.hpp"

namespace tunnel::relay {

namespace {

constexpr std::string_view magic_v1 = "TUNNEL-HOP/1";
constexpr std::string_view magic_v2 = "TUNNEL-HOP/2";
constexpr std::size_t field_count = 9;  // magic .. hmac

std::string to_hex(const unsigned char* p, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(2 * n, '0');
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    return out;
}

bool lower_hex(std::string_view s, std::size_t size) {
    if (s.size() != size) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

// A node name as cluster_config accepts it: 1-63 of a-z 0-9 - (not at either end).
bool valid_node(std::string_view s) {
    if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    return true;
}

// An IPv4 or IPv6 address literal, as the sending relay prints a peer's.
bool valid_ip(const std::string& s) {
    if (s.empty() || s.size() > 45) return false;
    std::array<unsigned char, 16> buf{};
    return ::inet_pton(AF_INET, s.c_str(), buf.data()) == 1 ||
           ::inet_pton(AF_INET6, s.c_str(), buf.data()) == 1;
}

core::error malformed(std::string what) {
    return core::error{core::errc::protocol_error,
                       fmt::format("malformed hop preamble: {}", std::move(what))};
}

// The problem with p's fields, or empty.
std::string field_problem(const hop_preamble& p) {
    if (p.version != 1 && p.version != 2) return fmt::format("version {} is not 1 or 2", p.version);
    if (!valid_node(p.node))
        return fmt::format("from-node {:?} is not a node name", core::log_text(p.node, 64));
    if (p.unix_ms <= 0 || p.unix_ms > 99'999'999'999'999) return "the time is out of range";
    if (!lower_hex(p.nonce, 16)) return "the nonce is not 16 lowercase hex digits";
    if (!valid_label(p.tenant))
        return fmt::format("tenant {:?} is not a DNS label", core::log_text(p.tenant, 64));
    if (!valid_label(p.name))
        return fmt::format("name {:?} is not a DNS label", core::log_text(p.name, 64));
    if (!valid_ip(p.client_ip))
        return fmt::format("client ip {:?} is not an IP address", core::log_text(p.client_ip, 64));
    return {};
}

std::string unsigned_part(const hop_preamble& p) {
    return fmt::format("{} {} {} {} {} {} {} {}", p.version == 1 ? magic_v1 : magic_v2, p.node,
                       p.unix_ms, p.nonce, p.tenant, p.name, p.client_ip,
                       p.https ? "https" : "http");
}

}  // namespace

std::uint64_t hop_replay_cache::key_of(const std::string& nonce) {
    std::uint64_t v = 0;
    if (lower_hex(nonce, 16)) {
        (void)std::from_chars(nonce.data(), nonce.data() + nonce.size(), v, 16);
        return v;
    }
    return std::hash<std::string>{}(nonce);
}

bool hop_replay_cache::insert(const std::string& nonce, std::int64_t expires_unix_ms,
                              std::int64_t now_unix_ms, bool& full) {
    full = false;
    const auto key = key_of(nonce);
    std::lock_guard lock(mutex_);
    while (!by_expiry_.empty() && by_expiry_.top().first <= now_unix_ms) {
        const auto [expiry, k] = by_expiry_.top();
        auto it = seen_.find(k);
        if (it != seen_.end() && it->second == expiry) seen_.erase(it);
        by_expiry_.pop();
    }
    if (seen_.count(key)) return false;
    if (seen_.size() >= capacity_) {
        full = true;
        return false;
    }
    seen_.emplace(key, expires_unix_ms);
    by_expiry_.emplace(expires_unix_ms, key);
    return true;
}

std::size_t hop_replay_cache::size() const {
    std::lock_guard lock(mutex_);
    return seen_.size();
}

void hop_signer::md_ctx_free::operator()(evp_md_ctx_st* c) const noexcept {
    EVP_MD_CTX_free(c);
}

hop_signer::hop_signer(std::string_view secret)
    : inner_(EVP_MD_CTX_new()), outer_(EVP_MD_CTX_new()) {
    constexpr std::size_t block = 64;  // SHA-256's
    std::array<unsigned char, block> key{};
    bool ok = true;
    if (secret.size() > block) {  // RFC 2104: a key longer than a block is hashed first
        unsigned int n = 0;
        ok = EVP_Digest(secret.data(), secret.size(), key.data(), &n, EVP_sha256(), nullptr) == 1;
    } else {
        std::copy(secret.begin(), secret.end(), key.begin());
    }
    std::array<unsigned char, block> ipad{}, opad{};
    for (std::size_t i = 0; i < block; ++i) {
        ipad[i] = static_cast<unsigned char>(key[i] ^ 0x36);
        opad[i] = static_cast<unsigned char>(key[i] ^ 0x5c);
    }
    ok = ok && inner_ && outer_ && EVP_DigestInit_ex(inner_.get(), EVP_sha256(), nullptr) == 1 &&
         EVP_DigestUpdate(inner_.get(), ipad.data(), block) == 1 &&
         EVP_DigestInit_ex(outer_.get(), EVP_sha256(), nullptr) == 1 &&
         EVP_DigestUpdate(outer_.get(), opad.data(), block) == 1;
    OPENSSL_cleanse(key.data(), key.size());
    OPENSSL_cleanse(ipad.data(), ipad.size());
    OPENSSL_cleanse(opad.data(), opad.size());
    if (!ok) inner_.reset();  // mac_hex fails: sign and verify say so
}

hop_signer::~hop_signer() = default;

std::string hop_signer::mac_hex(std::string_view text) const {
    if (!inner_ || !outer_) return {};
    // One scratch context per thread (workers sign and verify concurrently).
    thread_local const std::unique_ptr<evp_md_ctx_st, md_ctx_free> scratch(EVP_MD_CTX_new());
    if (!scratch) return {};
    std::array<unsigned char, EVP_MAX_MD_SIZE> in{}, md{};
    unsigned int in_len = 0, len = 0;
    if (EVP_MD_CTX_copy_ex(scratch.get(), inner_.get()) != 1 ||
        EVP_DigestUpdate(scratch.get(), text.data(), text.size()) != 1 ||
        EVP_DigestFinal_ex(scratch.get(), in.data(), &in_len) != 1 ||
        EVP_MD_CTX_copy_ex(scratch.get(), outer_.get()) != 1 ||
        EVP_DigestUpdate(scratch.get(), in.data(), in_len) != 1 ||
        EVP_DigestFinal_ex(scratch.get(), md.data(), &len) != 1)
        return {};
    return to_hex(md.data(), len);
}

core::result<std::string> hop_signer::sign(const hop_preamble& p) const {
    if (auto problem = field_problem(p); !problem.empty())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("cannot sign a hop preamble: {}", problem));
    std::string line = unsigned_part(p);
    auto mac = mac_hex(line);
    if (mac.size() != 64)
        return core::fail(core::errc::io_error, "cannot sign a hop preamble: HMAC-SHA256 failed");
    line += ' ';
    line += mac;
    line += "\r\n";
    if (line.size() > max_line)
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("cannot sign a hop preamble: {} bytes, over {}", line.size(), max_line));
    return line;
}

core::result<hop_preamble> hop_signer::verify(std::string_view line, std::int64_t now_unix_ms,
                                              hop_replay_cache& seen) const {
    if (line.size() + 2 > max_line)
        return tl::unexpected(
            malformed(fmt::format("{} bytes, over {}", line.size() + 2, max_line)));
    std::vector<std::string_view> f;
    std::size_t start = 0;
    while (f.size() <= field_count) {
        const auto sp = line.find(' ', start);
        f.push_back(line.substr(start, sp == std::string_view::npos ? sp : sp - start));
        if (sp == std::string_view::npos) break;
        start = sp + 1;
    }
    if (f.empty() || (f[0] != magic_v1 && f[0] != magic_v2))
        return tl::unexpected(
            malformed(fmt::format("it does not start with {} or {} (it starts {:?})", magic_v2,
                                  magic_v1, core::log_text(line.substr(0, 16), 16))));
    if (f.size() != field_count)
        return tl::unexpected(malformed(fmt::format(
            "{} space-separated fields, not {} (TUNNEL-HOP/2 node unix-ms nonce tenant name "
            "client-ip proto hmac)",
            f.size(), field_count)));
    for (const auto& field : f)
        if (field.empty()) return tl::unexpected(malformed("an empty field (two spaces)"));
    hop_preamble p;
    p.version = f[0] == magic_v1 ? 1 : 2;
    p.node = std::string(f[1]);
    {
        const auto t = f[2];
        auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), p.unix_ms);
        if (ec != std::errc() || end != t.data() + t.size() || t.size() > 15)
            return tl::unexpected(malformed("the time is not milliseconds since the epoch"));
    }
    p.nonce = std::string(f[3]);
    p.tenant = std::string(f[4]);
    p.name = std::string(f[5]);
    p.client_ip = std::string(f[6]);
    if (f[7] != "http" && f[7] != "https")
        return tl::unexpected(malformed("the proto is neither http nor https"));
    p.https = f[7] == "https";
    if (auto problem = field_problem(p); !problem.empty())
        return tl::unexpected(malformed(std::move(problem)));
    if (!lower_hex(f[8], 64))
        return tl::unexpected(malformed("the HMAC is not 64 lowercase hex digits"));
    // The signed part is the line up to the space before the HMAC.
    const auto mine = mac_hex(line.substr(0, line.size() - 65));
    if (mine.size() != 64 || CRYPTO_memcmp(mine.data(), f[8].data(), 64) != 0)
        return core::fail(core::errc::auth_failed,
                          fmt::format("hop preamble from {:?}: wrong HMAC (not signed with this "
                                      "cluster's secret_file)",
                                      p.node));
    const auto skew = p.unix_ms - now_unix_ms;
    if (skew > window.count() || -skew > window.count())
        return core::fail(core::errc::denied,
                          fmt::format("hop preamble from {:?}: its time is {} ms {} this relay's "
                                      "(more than {} ms: a stale or replayed preamble, or clocks "
                                      "out of sync)",
                                      p.node, skew < 0 ? -skew : skew,
                                      skew < 0 ? "behind" : "ahead of", window.count()));
    bool full = false;
    if (!seen.insert(p.nonce, p.unix_ms + window.count(), now_unix_ms, full)) {
        if (full)
            return core::fail(
                core::errc::resource_exhausted,
                fmt::format("hop preamble from {:?}: the replay cache is full", p.node));
        return core::fail(core::errc::denied,
                          fmt::format("hop preamble from {:?}: nonce {} was used already "
                                      "(a replayed preamble)",
                                      p.node, p.nonce));
    }
    return p;
}

std::string new_hop_nonce() {
    // RAND_bytes per request was 7% of a sending relay's instructions. The
    // nonce only has to be unique within the window (the HMAC covers it), so
    // it counts up from a random start; should RAND_bytes fail, from the clock.
    static std::atomic<std::uint64_t> counter = [] {
        std::array<unsigned char, 8> b{};
        std::uint64_t v = 0;
        if (RAND_bytes(b.data(), static_cast<int>(b.size())) == 1) {
            for (auto c : b) v = (v << 8) | c;
        } else {
            v = static_cast<std::uint64_t>(unix_ms_now()) << 20;
        }
        return v;
    }();
    return fmt::format("{:016x}", counter.fetch_add(1, std::memory_order_relaxed));
}

std::int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace tunnel::relay
