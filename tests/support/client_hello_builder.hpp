// TLS ClientHello records built byte by byte, for the SNI parser's tests and
// the relay's hostile-ClientHello tests (relay/client_hello.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tunnel::testing {

inline void put_u8(std::string& out, unsigned v) {
    out.push_back(static_cast<char>(v & 0xff));
}
inline void put_u16(std::string& out, unsigned v) {
    put_u8(out, v >> 8);
    put_u8(out, v);
}
inline void put_u24(std::string& out, unsigned v) {
    put_u8(out, v >> 16);
    put_u16(out, v);
}

// A server_name extension (type 0) naming `host`.
inline std::string sni_extension(std::string_view host) {
    std::string entry;
    put_u8(entry, 0);  // host_name
    put_u16(entry, static_cast<unsigned>(host.size()));
    entry += host;
    std::string body;
    put_u16(body, static_cast<unsigned>(entry.size()));
    body += entry;
    std::string ext;
    put_u16(ext, 0);
    put_u16(ext, static_cast<unsigned>(body.size()));
    return ext + body;
}

// A ClientHello handshake message with `extensions` (their bytes, each
// type + length + body), and `padding` bytes of an extra padding extension.
inline std::string client_hello_message(const std::string& extensions) {
    std::string body;
    put_u16(body, 0x0303);
    body += std::string(32, '\x42');  // random
    put_u8(body, 0);                  // session ID
    put_u16(body, 2);                 // one cipher suite
    put_u16(body, 0x1301);
    put_u8(body, 1);  // one compression method: null
    put_u8(body, 0);
    put_u16(body, static_cast<unsigned>(extensions.size()));
    body += extensions;
    std::string msg;
    put_u8(msg, 1);  // client_hello
    put_u24(msg, static_cast<unsigned>(body.size()));
    return msg + body;
}

// The message in one handshake record.
inline std::string tls_record(const std::string& message) {
    std::string rec;
    put_u8(rec, 0x16);
    put_u16(rec, 0x0301);
    put_u16(rec, static_cast<unsigned>(message.size()));
    return rec + message;
}

// A whole ClientHello record naming `host` (no SNI when empty).
inline std::string client_hello_record(std::string_view host) {
    return tls_record(client_hello_message(host.empty() ? std::string() : sni_extension(host)));
}

}  // namespace tunnel::testing
