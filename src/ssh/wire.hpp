// The SSH wire encoding (RFC 4251 §5): uint32, uint64, string and mpint,
// read with bounds checks from untrusted bytes and written into a buffer.
// Used for OpenSSH certificates and the host-certificate probe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tunnel::ssh::wire {

// Reads fields front to back. Every read fails (nullopt) past the end and
// leaves the reader unusable, so a chain of reads needs one check at the end.
class reader {
  public:
    explicit reader(std::string_view data) noexcept : data_(data) {}

    [[nodiscard]] std::optional<std::uint8_t> u8() noexcept {
        if (!take(1)) return std::nullopt;
        return static_cast<std::uint8_t>(data_[pos_ - 1]);
    }
    [[nodiscard]] std::optional<std::uint32_t> u32() noexcept {
        if (!take(4)) return std::nullopt;
        std::uint32_t v = 0;
        for (std::size_t i = pos_ - 4; i < pos_; ++i)
            v = (v << 8) | static_cast<unsigned char>(data_[i]);
        return v;
    }
    [[nodiscard]] std::optional<std::uint64_t> u64() noexcept {
        auto hi = u32();
        auto lo = u32();
        if (!hi || !lo) return std::nullopt;
        return (static_cast<std::uint64_t>(*hi) << 32) | *lo;
    }
    // A length-prefixed byte string (also an mpint's raw bytes).
    [[nodiscard]] std::optional<std::string_view> string() noexcept {
        auto len = u32();
        if (!len || !take(*len)) return std::nullopt;
        return data_.substr(pos_ - *len, *len);
    }
    [[nodiscard]] std::optional<std::string_view> bytes(std::size_t n) noexcept {
        if (!take(n)) return std::nullopt;
        return data_.substr(pos_ - n, n);
    }

    [[nodiscard]] std::size_t position() const noexcept { return pos_; }
    [[nodiscard]] bool at_end() const noexcept { return ok_ && pos_ == data_.size(); }
    [[nodiscard]] bool ok() const noexcept { return ok_; }
    [[nodiscard]] std::string_view consumed() const noexcept { return data_.substr(0, pos_); }

  private:
    bool take(std::size_t n) noexcept {
        if (!ok_ || n > data_.size() - pos_) {
            ok_ = false;
            return false;
        }
        pos_ += n;
        return true;
    }

    std::string_view data_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

inline void put_u8(std::string& out, std::uint8_t v) {
    out.push_back(static_cast<char>(v));
}
inline void put_u32(std::string& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((v >> shift) & 0xff));
}
inline void put_string(std::string& out, std::string_view s) {
    put_u32(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
}

}  // namespace tunnel::ssh::wire
