// The server name (SNI, RFC 6066 §3) of a TLS ClientHello, read from the
// first bytes a caller sends, so the relay can route TLS by name without
// terminating it (docs/relay.md "Raw TCP"). The parser is bounded and
// careful: it looks only at the first TLS record (at most 5 + 16384 bytes),
// checks every length against what contains it, and never reads past the
// input. Pure; fuzzed by tests/fuzz/client_hello_fuzz.cpp.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tunnel::relay {

// A TLS record header and the largest plaintext record (RFC 8446 §5.1).
inline constexpr std::size_t tls_record_header = 5;
inline constexpr std::size_t max_client_hello_bytes = tls_record_header + 16384;

struct client_hello {
    enum class status {
        need_more,  // a prefix of a record: read more (up to `needed` bytes in all)
        not_tls,    // the first byte is not a TLS handshake record
        malformed,  // a handshake record that is not a well-formed ClientHello
        ok,         // parsed; `server_name` is its SNI (empty: none sent)
    };
    status result = status::need_more;
    std::size_t needed = tls_record_header;  // need_more: bytes the whole record takes
    std::string server_name;                 // ok: host_name, lower-cased
    std::string problem;                     // malformed: what was wrong (no input echoed)
};

// Parses `bytes`, the start of what a caller sent.
[[nodiscard]] client_hello parse_client_hello(std::string_view bytes);

// A fatal TLS alert record (RFC 8446 §6): unrecognized_name (112) for a
// name the relay does not route, handshake_failure (40) otherwise.
[[nodiscard]] std::string tls_alert(unsigned char description);
inline constexpr unsigned char alert_handshake_failure = 40;
inline constexpr unsigned char alert_unrecognized_name = 112;

}  // namespace tunnel::relay
