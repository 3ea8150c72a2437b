#include "forward/socks.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <fstream>

#include <fmt/format.h>
#include <openssl/crypto.h>

#include "core/log_text.hpp"

namespace tunnel::forward {

namespace {

constexpr std::size_t max_buffered = 1024;  // a request is at most 262 bytes (SOCKS4a: ~520)

uint8_t byte_at(const std::string& s, std::size_t i) {
    return static_cast<uint8_t>(s[i]);
}

std::string reply5(socks_reply code) {
    // VER REP RSV ATYP=IPv4 BND.ADDR=0.0.0.0 BND.PORT=0
    return std::string{
        '\x05', static_cast<char>(code), '\x00', '\x01', '\0', '\0', '\0', '\0', '\0', '\0'};
}

std::string reply4(bool granted) {
    return std::string{'\x00', granted ? '\x5a' : '\x5b', '\0', '\0', '\0', '\0', '\0', '\0'};
}

bool equal_secret(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool valid_domain(std::string_view name) {
    if (name.empty()) return false;
    for (char c : name)
        if (c == '\0' || static_cast<unsigned char>(c) < 0x20) return false;
    return true;
}

}  // namespace

core::result<socks_credentials> load_socks_credentials(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return core::fail(core::errc::not_found,
                          fmt::format("SOCKS credentials file {} does not exist", path));
    if (st.st_mode & 077)
        return core::fail(
            core::errc::permission_denied,
            fmt::format("SOCKS credentials file {} is readable by others: chmod 600 it", path));
    std::ifstream in(path);
    std::string line;
    if (!in || !std::getline(in, line))
        return core::fail(core::errc::invalid_argument,
                          fmt::format("SOCKS credentials file {} is empty", path));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0 || colon > 255 || line.size() - colon - 1 > 255 ||
        colon + 1 == line.size())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("SOCKS credentials file {}: expected one line user:password "
                                      "(each 1 to 255 bytes)",
                                      path));
    return socks_credentials{line.substr(0, colon), line.substr(colon + 1)};
}

socks_handshake::socks_handshake(std::optional<socks_credentials> required)
    : required_(std::move(required)) {}

socks_handshake::step socks_handshake::fail(std::string reply, std::string error) {
    phase_ = phase::failed;
    in_.clear();
    return {status::failed, std::move(reply), std::move(error)};
}

socks_handshake::step socks_handshake::feed(std::string_view bytes) {
    if (phase_ == phase::failed) return {status::failed, {}, "handshake already failed"};
    if (phase_ == phase::done) {
        in_.append(bytes);  // early data; bounded by the caller's reads until it answers
        return {status::ready, {}, {}};
    }
    in_.append(bytes);
    step out;
    for (;;) {
        step s;
        switch (phase_) {
            case phase::greeting:
                s = on_greeting();
                break;
            case phase::auth:
                s = on_auth();
                break;
            case phase::request:
                s = version_ == 4 ? on_request4() : on_request5();
                break;
            case phase::done:
                return {status::ready, std::move(out.reply), {}};
            case phase::failed:
                return {status::failed, {}, {}};
        }
        out.reply += s.reply;
        if (s.state == status::failed)
            return {status::failed, std::move(out.reply), std::move(s.error)};
        if (s.state == status::ready) return {status::ready, std::move(out.reply), {}};
        if (s.state == status::need_more && s.reply.empty() && s.error.empty()) {
            // No progress in this phase: wait for bytes, unless the buffer is absurd.
            if (in_.size() > max_buffered) return fail({}, "SOCKS handshake too long");
            return {status::need_more, std::move(out.reply), {}};
        }
        // A phase completed (reply produced, error empty): continue with what is buffered.
    }
}

socks_handshake::step socks_handshake::on_greeting() {
    if (in_.empty()) return {};
    const uint8_t ver = byte_at(in_, 0);
    if (ver == 4) {
        version_ = 4;
        phase_ = phase::request;
        return on_request4();
    }
    if (ver != 5) {
        std::string what = "not a SOCKS request";
        if (in_.rfind("GET ", 0) == 0 || in_.rfind("CONNECT ", 0) == 0 ||
            in_.rfind("POST ", 0) == 0)
            what =
                "an HTTP request on the SOCKS port (set the client to use SOCKS5, not an HTTP "
                "proxy)";
        return fail({}, fmt::format("{} (first byte 0x{:02x})", what, ver));
    }
    version_ = 5;
    if (in_.size() < 2) return {};
    const std::size_t n = byte_at(in_, 1);
    if (n == 0) return fail(std::string{'\x05', '\xff'}, "SOCKS5 greeting offers no methods");
    if (in_.size() < 2 + n) return {};
    bool none = false, userpass = false;
    for (std::size_t i = 0; i < n; ++i) {
        none |= byte_at(in_, 2 + i) == 0x00;
        userpass |= byte_at(in_, 2 + i) == 0x02;
    }
    in_.erase(0, 2 + n);
    if (required_) {
        if (!userpass)
            return fail(std::string{'\x05', '\xff'},
                        "SOCKS5 client does not offer username/password authentication, which this "
                        "forward requires");
        phase_ = phase::auth;
        return {status::need_more, std::string{'\x05', '\x02'}, {}};
    }
    if (!none)
        return fail(std::string{'\x05', '\xff'},
                    "SOCKS5 client offers no method we accept (no-auth)");
    phase_ = phase::request;
    return {status::need_more, std::string{'\x05', '\x00'}, {}};
}

socks_handshake::step socks_handshake::on_auth() {
    // VER=1 ULEN UNAME PLEN PASSWD
    if (in_.empty()) return {};
    if (byte_at(in_, 0) != 1)
        return fail(std::string{'\x01', '\x01'}, "bad SOCKS5 username/password version");
    if (in_.size() < 2) return {};
    const std::size_t ulen = byte_at(in_, 1);
    if (in_.size() < 3 + ulen) return {};
    const std::size_t plen = byte_at(in_, 2 + ulen);
    if (in_.size() < 3 + ulen + plen) return {};
    std::string_view user(in_.data() + 2, ulen);
    std::string_view pass(in_.data() + 3 + ulen, plen);
    // Both compared every time (no short circuit): the timing says nothing about which was wrong.
    const bool ok = (static_cast<int>(equal_secret(user, required_->user)) &
                     static_cast<int>(equal_secret(pass, required_->password))) != 0;
    // The name is the client's choice: escaped and capped before it reaches a log.
    std::string who = core::log_text(user, 64);
    in_.erase(0, 3 + ulen + plen);
    if (!ok)
        return fail(std::string{'\x01', '\x01'},
                    fmt::format("SOCKS5 authentication failed for user \"{}\"", who));
    phase_ = phase::request;
    return {status::need_more, std::string{'\x01', '\x00'}, {}};
}

socks_handshake::step socks_handshake::on_request5() {
    // VER CMD RSV ATYP DST.ADDR DST.PORT
    if (in_.size() < 4) return {};
    if (byte_at(in_, 0) != 5)
        return fail(reply5(socks_reply::general_failure), "bad SOCKS5 request version");
    const uint8_t cmd = byte_at(in_, 1);
    const uint8_t atyp = byte_at(in_, 3);
    std::size_t addr_len = 0, addr_at = 4;
    if (atyp == 1) {
        addr_len = 4;
    } else if (atyp == 4) {
        addr_len = 16;
    } else if (atyp == 3) {
        if (in_.size() < 5) return {};
        addr_len = byte_at(in_, 4);
        addr_at = 5;
    } else {
        return fail(reply5(socks_reply::address_type_not_supported),
                    fmt::format("SOCKS5 address type {} is not supported", atyp));
    }
    if (in_.size() < addr_at + addr_len + 2) return {};
    if (cmd != 1) {
        const char* name = cmd == 2 ? "BIND" : cmd == 3 ? "UDP ASSOCIATE" : "unknown";
        return fail(
            reply5(socks_reply::command_not_supported),
            fmt::format("SOCKS5 command {} ({}) is not supported; only CONNECT", cmd, name));
    }
    const char* a = in_.data() + addr_at;
    if (atyp == 1 || atyp == 4) {
        char text[INET6_ADDRSTRLEN] = {};
        ::inet_ntop(atyp == 1 ? AF_INET : AF_INET6, a, text, sizeof text);
        target_.host = text;
    } else {
        target_.host.assign(a, addr_len);
        if (!valid_domain(target_.host))
            return fail(reply5(socks_reply::host_unreachable),
                        "SOCKS5 request with an invalid domain name");
    }
    target_.port = static_cast<uint16_t>(byte_at(in_, addr_at + addr_len) << 8 |
                                         byte_at(in_, addr_at + addr_len + 1));
    if (target_.port == 0)
        return fail(reply5(socks_reply::general_failure), "SOCKS5 request for port 0");
    in_.erase(0, addr_at + addr_len + 2);
    phase_ = phase::done;
    return {status::ready, {}, {}};
}

socks_handshake::step socks_handshake::on_request4() {
    // VN=4 CD DSTPORT(2) DSTIP(4) USERID NUL [DOMAIN NUL]
    if (in_.size() < 9) return {};
    const uint8_t cmd = byte_at(in_, 1);
    auto nul = in_.find('\0', 8);
    if (nul == std::string::npos) {
        if (in_.size() > 8 + 256) return fail(reply4(false), "SOCKS4 user id too long");
        return {};
    }
    std::size_t end = nul + 1;
    const bool is_4a = byte_at(in_, 4) == 0 && byte_at(in_, 5) == 0 && byte_at(in_, 6) == 0 &&
                       byte_at(in_, 7) != 0;
    std::string host;
    if (is_4a) {
        auto nul2 = in_.find('\0', end);
        if (nul2 == std::string::npos) {
            if (in_.size() - end > 255) return fail(reply4(false), "SOCKS4a host name too long");
            return {};
        }
        if (nul2 - end > 255) return fail(reply4(false), "SOCKS4a host name too long");
        host = in_.substr(end, nul2 - end);
        end = nul2 + 1;
        if (!valid_domain(host))
            return fail(reply4(false), "SOCKS4a request with an invalid host name");
    } else {
        char text[INET_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET, in_.data() + 4, text, sizeof text);
        host = text;
    }
    if (cmd != 1)
        return fail(reply4(false),
                    fmt::format("SOCKS4 command {} is not supported; only CONNECT", cmd));
    if (required_)
        return fail(reply4(false),
                    "SOCKS4 cannot authenticate and this forward requires a username and password");
    target_.host = std::move(host);
    target_.port = static_cast<uint16_t>(byte_at(in_, 2) << 8 | byte_at(in_, 3));
    if (target_.port == 0) return fail(reply4(false), "SOCKS4 request for port 0");
    in_.erase(0, end);
    phase_ = phase::done;
    return {status::ready, {}, {}};
}

std::string socks_handshake::take_leftover() {
    return std::exchange(in_, {});
}

std::string socks_handshake::final_reply(socks_reply code) const {
    if (version_ == 4) return reply4(code == socks_reply::succeeded);
    return reply5(code);
}

}  // namespace tunnel::forward
