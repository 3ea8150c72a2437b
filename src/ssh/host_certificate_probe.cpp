#include "ssh/host_certificate_probe.hpp"

#include <unistd.h>

#include <array>

#include <openssl/rand.h>

#include <fmt/format.h>

#include "core/log_text.hpp"
#include "ssh/wire.hpp"

namespace tunnel::ssh {

namespace {

using core::errc;
using core::fail;
using steady_time = std::chrono::steady_clock::time_point;

constexpr std::string_view client_version = "SSH-2.0-tunnel_hostcert_probe";
constexpr std::size_t max_banner_bytes = 16 * 1024;  // lines before the version (RFC 4253 4.2)
constexpr std::uint32_t max_packet = 256 * 1024;
constexpr int max_packets = 16;  // ignore/debug/ext-info before the reply

constexpr std::uint8_t msg_disconnect = 1;
constexpr std::uint8_t msg_kexinit = 20;
constexpr std::uint8_t msg_kex_ecdh_init = 30;
constexpr std::uint8_t msg_kex_ecdh_reply = 31;

// Algorithms offered for what we never reach: the server must find one in
// common or it disconnects before sending its host key.
constexpr std::string_view kex = "curve25519-sha256,curve25519-sha256@libssh.org";
constexpr std::string_view ciphers =
    "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,"
    "aes192-ctr,aes256-ctr";
constexpr std::string_view macs =
    "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512,"
    "hmac-sha1";
constexpr std::string_view compression = "none,zlib@openssh.com";

// An unencrypted binary packet (RFC 4253 6): length, padding length,
// payload, random padding to a multiple of 8 (at least 4 bytes).
std::string packet(std::string_view payload) {
    std::size_t padding = 8 - (5 + payload.size()) % 8;
    if (padding < 4) padding += 8;
    std::string out;
    wire::put_u32(out, static_cast<std::uint32_t>(1 + payload.size() + padding));
    wire::put_u8(out, static_cast<std::uint8_t>(padding));
    out.append(payload);
    std::string pad(padding, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(pad.data()), static_cast<int>(pad.size()));
    out.append(pad);
    return out;
}

bool in_list(std::string_view list, std::string_view name) {
    while (!list.empty()) {
        auto comma = list.find(',');
        if (list.substr(0, comma) == name) return true;
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    }
    return false;
}

class probe {
  public:
    probe(asio::any_io_executor ex, int fd, steady_time deadline)
        : sd_(ex, fd), timer_(ex), deadline_(deadline) {}

    asio::awaitable<core::result<std::string>> run(std::string cert_algorithm) {
        std::string hello = std::string(client_version) + "\r\n";
        std::string kexinit;
        wire::put_u8(kexinit, msg_kexinit);
        std::array<unsigned char, 16> cookie{};
        RAND_bytes(cookie.data(), static_cast<int>(cookie.size()));
        kexinit.append(reinterpret_cast<const char*>(cookie.data()), cookie.size());
        for (std::string_view list :
             {kex, std::string_view(cert_algorithm), ciphers, ciphers, macs, macs, compression,
              compression, std::string_view{}, std::string_view{}})
            wire::put_string(kexinit, list);
        wire::put_u8(kexinit, 0);             // first_kex_packet_follows
        wire::put_u32(kexinit, 0);            // reserved
        std::array<unsigned char, 32> q_c{};  // any 32 bytes are an X25519 public value
        RAND_bytes(q_c.data(), static_cast<int>(q_c.size()));
        std::string ecdh_init;
        wire::put_u8(ecdh_init, msg_kex_ecdh_init);
        wire::put_string(ecdh_init,
                         std::string_view(reinterpret_cast<const char*>(q_c.data()), q_c.size()));
        // Everything at once: the server reads our KEXINIT and ECDH_INIT after
        // sending its own KEXINIT, as guessing-free clients do.
        std::string out = hello + packet(kexinit) + packet(ecdh_init);
        if (auto w = co_await write(out); !w) co_return tl::unexpected(w.error());

        if (auto v = co_await read_version(); !v) co_return tl::unexpected(v.error());
        for (int i = 0; i < max_packets; ++i) {
            auto p = co_await read_packet();
            if (!p) co_return tl::unexpected(p.error());
            wire::reader r(*p);
            auto type = r.u8();
            if (!type) co_return fail(errc::protocol_error, "empty packet from the server");
            if (*type == msg_disconnect) {
                (void)r.u32();
                auto why = r.string();
                co_return fail(errc::protocol_error,
                               fmt::format("the server hung up: {}",
                                           core::log_text(why.value_or("no reason given"))));
            }
            if (*type == msg_kexinit) {
                (void)r.bytes(16);
                (void)r.string();  // kex
                auto host_keys = r.string();
                if (!host_keys) co_return fail(errc::protocol_error, "malformed KEXINIT");
                if (!in_list(*host_keys, cert_algorithm))
                    co_return fail(errc::protocol_error,
                                   fmt::format("the server has no {} host certificate (its host "
                                               "key algorithms: {})",
                                               cert_algorithm, core::log_text(*host_keys, 400)));
                continue;
            }
            if (*type == msg_kex_ecdh_reply) {
                auto host_key = r.string();
                if (!host_key || host_key->empty())
                    co_return fail(errc::protocol_error, "malformed KEX_ECDH_REPLY");
                co_return std::string(*host_key);
            }
            // SSH_MSG_IGNORE, DEBUG and the like: skip.
        }
        co_return fail(errc::protocol_error, "the server sent no key exchange reply");
    }

    ~probe() {
        boost::system::error_code ignored;
        sd_.close(ignored);
    }

  private:
    // The deadline cancels the descriptor's pending operation (Boost 1.74 has
    // no awaitable operators).
    void arm() {
        timer_.expires_at(deadline_);
        timer_.async_wait([this](boost::system::error_code ec) {
            if (!ec) {
                timed_out_ = true;
                boost::system::error_code ignored;
                sd_.cancel(ignored);
            }
        });
    }

    asio::awaitable<core::result<void>> write(const std::string& data) {
        boost::system::error_code ec;
        arm();
        co_await asio::async_write(sd_, asio::buffer(data),
                                   asio::redirect_error(asio::use_awaitable, ec));
        timer_.cancel();
        if (ec) co_return tl::unexpected(failure(ec));
        co_return core::result<void>{};
    }

    // At least one more byte into in_.
    asio::awaitable<core::result<void>> fill() {
        std::array<char, 4096> buf{};
        boost::system::error_code ec;
        arm();
        const std::size_t n = co_await sd_.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        timer_.cancel();
        if (ec) co_return tl::unexpected(failure(ec));
        in_.append(buf.data(), n);
        co_return core::result<void>{};
    }

    core::error failure(boost::system::error_code ec) const {
        if (timed_out_) return {errc::timeout, "the server did not answer in time"};
        return {errc::connection_failed, fmt::format("connection lost: {}", ec.message())};
    }

    asio::awaitable<core::result<void>> read_version() {
        for (;;) {
            auto nl = in_.find('\n');
            if (nl != std::string::npos) {
                std::string line = in_.substr(0, nl);
                in_.erase(0, nl + 1);
                if (line.starts_with("SSH-")) {
                    if (!line.starts_with("SSH-2.0-") && !line.starts_with("SSH-1.99-"))
                        co_return fail(errc::protocol_error,
                                       fmt::format("unsupported protocol version {}",
                                                   core::log_text(line, 64)));
                    co_return core::result<void>{};
                }
                banner_ += nl + 1;
                continue;
            }
            if (banner_ + in_.size() > max_banner_bytes)
                co_return fail(errc::protocol_error, "no SSH version line from the server");
            if (auto f = co_await fill(); !f) co_return f;
        }
    }

    asio::awaitable<core::result<std::string>> read_packet() {
        while (in_.size() < 4)
            if (auto f = co_await fill(); !f) co_return tl::unexpected(f.error());
        wire::reader r(std::string_view(in_).substr(0, 4));
        const std::uint32_t len = *r.u32();
        if (len < 5 || len > max_packet)
            co_return fail(errc::protocol_error, fmt::format("bad packet length {}", len));
        while (in_.size() < 4 + std::size_t{len})
            if (auto f = co_await fill(); !f) co_return tl::unexpected(f.error());
        const auto padding = static_cast<unsigned char>(in_[4]);
        if (padding + 1u > len) co_return fail(errc::protocol_error, "bad packet padding");
        std::string payload = in_.substr(5, len - 1 - padding);
        in_.erase(0, 4 + std::size_t{len});
        co_return payload;
    }

    asio::posix::stream_descriptor sd_;
    asio::steady_timer timer_;
    steady_time deadline_;
    bool timed_out_ = false;
    std::string in_;
    std::size_t banner_ = 0;
};

}  // namespace

asio::awaitable<core::result<std::string>> fetch_host_certificate(asio::any_io_executor executor,
                                                                  int fd,
                                                                  std::string cert_algorithm,
                                                                  steady_time deadline) {
    probe p(executor, fd, deadline);
    auto r = co_await p.run(std::move(cert_algorithm));
    co_return r;
}

}  // namespace tunnel::ssh
