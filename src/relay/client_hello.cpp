#include "relay/client_hello.hpp"

#include <cstdint>
#include <optional>

namespace tunnel::relay {

namespace {

// Reads big-endian integers and byte runs from a bounded view; every read
// fails (and stays failed) instead of going past the end.
class reader {
  public:
    explicit reader(std::string_view b) : b_(b) {}
    std::optional<std::uint32_t> uint(std::size_t n) {
        if (n > b_.size()) return std::nullopt;
        std::uint32_t v = 0;
        for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(b_[i]);
        b_.remove_prefix(n);
        return v;
    }
    std::optional<std::string_view> bytes(std::size_t n) {
        if (n > b_.size()) return std::nullopt;
        auto out = b_.substr(0, n);
        b_.remove_prefix(n);
        return out;
    }
    // A run prefixed with an n-byte length.
    std::optional<std::string_view> vector(std::size_t n) {
        auto len = uint(n);
        if (!len) return std::nullopt;
        return bytes(*len);
    }
    [[nodiscard]] bool empty() const noexcept { return b_.empty(); }

  private:
    std::string_view b_;
};

client_hello bad(std::string problem) {
    client_hello h;
    h.result = client_hello::status::malformed;
    h.problem = std::move(problem);
    return h;
}

// A host name as SNI carries it: letters, digits, '-', '.', 1..253 bytes.
bool valid_host_name(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return false;
    return true;
}

// The server_name extension's body (RFC 6066 §3).
client_hello parse_server_name(std::string_view body) {
    reader r(body);
    auto list = r.vector(2);
    if (!list || !r.empty() || list->empty())
        return bad("the server_name extension's list length does not match its size");
    reader entries(*list);
    std::optional<std::string> name;
    while (!entries.empty()) {
        auto type = entries.uint(1);
        auto value = entries.vector(2);
        if (!type || !value) return bad("a server_name entry is truncated");
        if (*type != 0) continue;  // only host_name (0) is defined
        if (name) return bad("the server_name extension names two hosts");
        if (!valid_host_name(*value))
            return bad("the server name is not a host name (1-253 of letters, digits, '-', '.')");
        std::string lower(*value);
        for (auto& c : lower)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        name = std::move(lower);
    }
    client_hello h;
    h.result = client_hello::status::ok;
    if (name) h.server_name = std::move(*name);
    return h;
}

}  // namespace

client_hello parse_client_hello(std::string_view bytes) {
    client_hello h;
    if (bytes.empty()) return h;
    if (static_cast<unsigned char>(bytes[0]) != 0x16) {
        h.result = client_hello::status::not_tls;
        return h;
    }
    if (bytes.size() < tls_record_header) return h;
    reader rec(bytes);
    (void)rec.uint(1);
    const auto version = *rec.uint(2);
    const auto length = *rec.uint(2);
    if ((version >> 8) != 3) return bad("the record's protocol version is not TLS (3.x)");
    if (length == 0 || length > max_client_hello_bytes - tls_record_header)
        return bad("the handshake record's length is 0 or over 16384 bytes");
    h.needed = tls_record_header + length;
    if (bytes.size() < h.needed) return h;

    reader msg(*rec.bytes(length));
    auto type = msg.uint(1);
    auto body = msg.vector(3);
    if (!type || *type != 1) return bad("the first handshake message is not a ClientHello");
    if (!body)
        return bad(
            "the ClientHello does not fit in its first record (a name too long, or a "
            "ClientHello split over records)");
    reader m(*body);
    auto legacy_version = m.uint(2);
    auto random = m.bytes(32);
    auto session_id = m.vector(1);
    auto suites = m.vector(2);
    auto compression = m.vector(1);
    if (!legacy_version || !random || !session_id || !suites || !compression)
        return bad("the ClientHello is truncated");
    if (session_id->size() > 32) return bad("the ClientHello's session ID is over 32 bytes");
    if (suites->empty() || suites->size() % 2 != 0)
        return bad("the ClientHello's cipher suite list is empty or of odd length");
    if (compression->empty()) return bad("the ClientHello has no compression method");
    client_hello out;
    out.result = client_hello::status::ok;
    if (m.empty()) return out;  // no extensions: no SNI
    auto extensions = m.vector(2);
    if (!extensions || !m.empty())
        return bad("the ClientHello's extensions length does not match its size");
    reader e(*extensions);
    bool seen_sni = false;
    while (!e.empty()) {
        auto ext_type = e.uint(2);
        auto ext_body = e.vector(2);
        if (!ext_type || !ext_body) return bad("a ClientHello extension is truncated");
        if (*ext_type != 0) continue;
        if (seen_sni) return bad("the ClientHello has two server_name extensions");
        seen_sni = true;
        auto sni = parse_server_name(*ext_body);
        if (sni.result != client_hello::status::ok) return sni;
        out.server_name = std::move(sni.server_name);
    }
    return out;
}

std::string tls_alert(unsigned char description) {
    // Record: alert (21), TLS 1.2 (3,3), length 2; level fatal (2).
    return std::string{
        '\x15', '\x03', '\x03', '\x00', '\x02', '\x02', static_cast<char>(description)};
}

}  // namespace tunnel::relay
