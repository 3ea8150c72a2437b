#include "core/encoding.hpp"

#include <array>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace tunnel::core {

namespace {
constexpr std::string_view std_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view url_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode(std::string_view bytes, std::string_view alphabet, bool pad) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto at = [&](std::size_t k) {
        return static_cast<unsigned>(static_cast<unsigned char>(bytes[k]));
    };
    for (; i + 3 <= bytes.size(); i += 3) {
        unsigned v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (auto rest = bytes.size() - i; rest > 0) {
        unsigned v = at(i) << 16;
        if (rest == 2) v |= at(i + 1) << 8;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        if (rest == 2) out += alphabet[(v >> 6) & 63];
        if (pad) out.append(rest == 1 ? 2 : 1, '=');
    }
    return out;
}
}  // namespace

std::string base64_encode(std::string_view bytes) {
    return encode(bytes, std_alphabet, true);
}
std::string base64url_encode(std::string_view bytes) {
    return encode(bytes, url_alphabet, false);
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::size_t pad = 0;
    while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
    const auto body = text.substr(0, text.size() - pad);
    std::string out;
    out.reserve(body.size() * 3 / 4);
    unsigned acc = 0;
    int bits = 0;
    for (char c : body) {
        auto pos = std_alphabet.find(c);
        if (pos == std::string_view::npos) return std::nullopt;
        acc = (acc << 6) | static_cast<unsigned>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // trailing bits must be zero
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    while (!text.empty() && text.back() == '=') text.remove_suffix(1);
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    unsigned acc = 0;
    int bits = 0;
    for (char c : text) {
        auto pos = url_alphabet.find(c);
        if (pos == std::string_view::npos) return std::nullopt;
        acc = (acc << 6) | static_cast<unsigned>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    return out;
}

std::string hex_encode(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string sha256(std::string_view bytes) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    EVP_Digest(bytes.data(), bytes.size(), md.data(), &len, EVP_sha256(), nullptr);
    return std::string(reinterpret_cast<const char*>(md.data()), len);
}

std::string hmac_sha256(std::string_view key, std::string_view bytes) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), md.data(), &len);
    return std::string(reinterpret_cast<const char*>(md.data()), len);
}

bool secret_equal(std::string_view a, std::string_view b) noexcept {
    // Digests first: equal lengths for CRYPTO_memcmp, and the time taken
    // says nothing about how long the secret is.
    std::array<unsigned char, EVP_MAX_MD_SIZE> da{}, db{};
    unsigned int la = 0, lb = 0;
    if (EVP_Digest(a.data(), a.size(), da.data(), &la, EVP_sha256(), nullptr) != 1 ||
        EVP_Digest(b.data(), b.size(), db.data(), &lb, EVP_sha256(), nullptr) != 1 || la != lb)
        return false;
    return CRYPTO_memcmp(da.data(), db.data(), la) == 0;
}

std::string sha256_fingerprint(std::string_view bytes) {
    auto b64 = base64_encode(sha256(bytes));
    while (!b64.empty() && b64.back() == '=') b64.pop_back();
    return "SHA256:" + b64;
}

}  // namespace tunnel::core
