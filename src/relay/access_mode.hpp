// Who may call a published name (visitor access control, docs/relay.md
// "Visitor access"): the four modes, and sets of them (what a tunnel token's
// `access` claim lets its publisher choose). Pure code: the token verifier's
// fuzz target links it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "core/error.hpp"

namespace tunnel::relay {

enum class access_mode : std::uint8_t {
    public_,  // "public": anyone who knows the URL
    token,    // "token": a relay-signed visitor token (Bearer header or login cookie)
    basic,    // "basic": HTTP Basic against an htpasswd list (yescrypt or bcrypt)
    ip,       // "ip": the caller's address is in a CIDR allow list
};

// "public", "token", "basic", "ip".
[[nodiscard]] std::string_view to_string(access_mode mode) noexcept;
// Exactly one of the four words (lower case); the message lists them.
[[nodiscard]] core::result<access_mode> parse_access_mode(std::string_view text);

// A set of modes.
class access_modes {
  public:
    [[nodiscard]] static constexpr access_modes all() noexcept { return access_modes(0x0f); }
    [[nodiscard]] static constexpr access_modes none() noexcept { return access_modes(0); }

    constexpr access_modes() noexcept = default;
    void add(access_mode m) noexcept { bits_ |= bit(m); }
    [[nodiscard]] bool contains(access_mode m) const noexcept { return (bits_ & bit(m)) != 0; }
    [[nodiscard]] bool empty() const noexcept { return bits_ == 0; }
    // "public, token" (in the order of the enum); "none" when empty.
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(access_modes, access_modes) = default;

  private:
    constexpr explicit access_modes(std::uint8_t bits) noexcept : bits_(bits) {}
    static constexpr std::uint8_t bit(access_mode m) noexcept {
        return static_cast<std::uint8_t>(1u << static_cast<unsigned>(m));
    }
    std::uint8_t bits_ = 0;
};

// "token,basic" or "token, basic" -> {token, basic}; every word must be a
// mode and at least one given (`what` names the flag or key in messages).
[[nodiscard]] core::result<access_modes> parse_access_modes(std::string_view list,
                                                            std::string_view what);

// A tunnel token's `access` claim: a list of 1 to 4 mode names (token_verifier's map_claims).
[[nodiscard]] core::result<access_modes> parse_access_claim(const nlohmann::json& claim);

}  // namespace tunnel::relay
