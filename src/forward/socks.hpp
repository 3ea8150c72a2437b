// The server side of a SOCKS handshake as a pure state machine: bytes in,
// bytes to send back out, no sockets (unit-tested and fuzzed as is).
// SOCKS5 (RFC 1928) CONNECT to IPv4, IPv6 and domain names, with no
// authentication or username/password (RFC 1929); BIND and UDP ASSOCIATE are
// refused with "command not supported". SOCKS4 and SOCKS4a CONNECT too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace tunnel::forward {

// RFC 1928 §6 reply codes.
enum class socks_reply : uint8_t {
    succeeded = 0,
    general_failure = 1,
    not_allowed = 2,
    network_unreachable = 3,
    host_unreachable = 4,
    connection_refused = 5,
    ttl_expired = 6,
    command_not_supported = 7,
    address_type_not_supported = 8,
};

struct socks_credentials {
    std::string user;
    std::string password;
};

// Reads "user:password" from the first line of a file (RFC 1929 allows up
// to 255 bytes each). The file must not be readable by group or others.
[[nodiscard]] core::result<socks_credentials> load_socks_credentials(const std::string& path);

struct socks_target {
    std::string host;  // dotted IPv4, IPv6 text, or a domain name
    uint16_t port = 0;
};

class socks_handshake {
  public:
    enum class status { need_more, ready, failed };
    struct step {
        status state = status::need_more;
        std::string reply;  // send this to the client (may be empty)
        std::string error;  // why it failed, for the log
    };

    // With credentials the client must authenticate with exactly these.
    explicit socks_handshake(std::optional<socks_credentials> required = std::nullopt);

    // Feeds bytes from the client. After `ready`, target() is the CONNECT
    // destination and the caller answers with final_reply(). After `failed`
    // send `reply` (if any) and close. Input is bounded: a client cannot make
    // the handshake hold more than a few hundred bytes.
    [[nodiscard]] step feed(std::string_view bytes);

    [[nodiscard]] const socks_target& target() const noexcept { return target_; }
    [[nodiscard]] int version() const noexcept { return version_; }
    // Bytes the client sent after its request (it did not wait for our reply).
    [[nodiscard]] std::string take_leftover();

    // The reply that ends the handshake: success once the channel is open,
    // or the reason it could not be.
    [[nodiscard]] std::string final_reply(socks_reply code) const;

  private:
    enum class phase { greeting, auth, request, done, failed };
    step fail(std::string reply, std::string error);
    step on_greeting();
    step on_auth();
    step on_request5();
    step on_request4();

    std::optional<socks_credentials> required_;
    phase phase_ = phase::greeting;
    int version_ = 0;
    std::string in_;
    socks_target target_;
};

}  // namespace tunnel::forward
