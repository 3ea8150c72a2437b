// A `tunnel relay` child process on 127.0.0.1 (ports chosen by the kernel and
// read from its stdout), with a fresh HS256 secret, plus the pieces relay
// tests need: tokens (minted by `tunnel token`, or hand-made bad ones),
// clients (OpenSSH `ssh -R` through `tunnel ws-connect`), and raw HTTP.
//
//   auto relay = relay_fixture::start({});
//   auto tok = relay->mint("alice", "llm");
//   auto client = relay->publish("alice", *tok, "llm", origin->port());
//   auto r = http_request(relay->public_port(), "GET /t/alice/llm/hello HTTP/1.1\r\nHost:
//   x\r\n\r\n");
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "support/process.hpp"

namespace tunnel::test {

struct relay_options {
    // YAML merged into the generated config (top-level keys other than
    // listen, admin_listen, jwt, host_key_file, audit_log), e.g.
    // "limits:\n  route_rps: 2\n". Empty: dev mode (`--dev`).
    std::string extra_yaml;
    bool audit_log = false;
    // Where the audit log goes (implies audit_log); default: audit.jsonl in
    // the fixture's directory.
    std::string audit_log_path{};
    // Writes this bearer token to admin.token and sets admin.token_file;
    // admin_get() then sends it.
    std::string admin_token{};
    // The HS256 secret of another relay (its secret_path()), so tokens are
    // good at both (a pair of relays behind one link); empty: a fresh one.
    std::string share_secret_of{};
    // Prepended to the relay's argv, e.g. {"unshare", "--mount", ...}; the
    // launcher must exec the rest (so the pid stays the relay's).
    std::vector<std::string> launcher{};
    // TLS on the public listener with a self-signed certificate for
    // 127.0.0.1 (cert_path() is what clients must trust).
    bool tls = false;
    std::chrono::milliseconds start_timeout{15'000};
    // Lines added to the generated jwt: section, e.g. "  audience: relay\n".
    std::string jwt_yaml{};
    // Put before `tunnel relay ...`, e.g. {"prlimit", "--nofile=64:64", "--"}.
    std::vector<std::string> command_prefix{};
};

struct http_reply {
    int status = 0;
    std::string head;
    std::string body;  // de-chunked
    std::string raw;
};

// One `ssh -N -R NAME:80:127.0.0.1:PORT TENANT@relay` through ws-connect.
class relay_client {
  public:
    relay_client(relay_client&&) noexcept = default;
    relay_client& operator=(relay_client&&) noexcept = default;
    ~relay_client();

    [[nodiscard]] child_process& process() { return *process_; }
    [[nodiscard]] std::string log() const;

  private:
    friend class relay_fixture;
    relay_client(std::string log_path, child_process p)
        : log_path_(std::move(log_path)), process_(std::move(p)) {}
    std::string log_path_;
    std::optional<child_process> process_;
};

class relay_fixture {
  public:
    [[nodiscard]] static core::result<relay_fixture> start(relay_options options);

    relay_fixture(relay_fixture&&) noexcept = default;
    relay_fixture& operator=(relay_fixture&&) noexcept = default;
    ~relay_fixture();

    [[nodiscard]] std::uint16_t public_port() const noexcept { return public_port_; }
    [[nodiscard]] std::uint16_t admin_port() const noexcept { return admin_port_; }
    [[nodiscard]] std::string attach_url() const;
    [[nodiscard]] const std::string& secret_path() const noexcept { return secret_path_; }
    [[nodiscard]] std::string audit_path() const {
        return audit_path_.empty() ? dir_.file("audit.jsonl") : audit_path_;
    }
    [[nodiscard]] std::string cert_path() const { return dir_.file("cert.pem"); }
    [[nodiscard]] std::string log() const;
    [[nodiscard]] child_process& process() { return *process_; }

    // `tunnel token --secret-file S --tenant T --allow A --ttl TTL [extra]`.
    [[nodiscard]] core::result<std::string> mint(const std::string& tenant,
                                                 const std::string& allow,
                                                 const std::string& ttl = "1h",
                                                 std::vector<std::string> extra = {}) const;
    // A hand-made HS256 token with these JSON claims (signed with `secret`,
    // or the relay's own secret), or with header {"alg":"none"} when alg_none.
    [[nodiscard]] std::string craft(const std::string& claims_json, bool alg_none = false,
                                    const std::string& secret = {}) const;
    // Writes a token to a file in the fixture's directory; returns the path.
    [[nodiscard]] std::string token_file(const std::string& token) const;

    // Starts ssh -N -R NAME:80:127.0.0.1:PORT through ws-connect and waits
    // until the admin API lists NAME for TENANT (unless wait is false).
    [[nodiscard]] core::result<relay_client> publish(const std::string& tenant,
                                                     const std::string& token,
                                                     const std::string& name, std::uint16_t port,
                                                     bool wait = true) const;

    // `tunnel connect ATTACH_URL --token-file T --expose NAME=127.0.0.1:PORT...
    // --json` (no --token-file when `token` is empty: give --token-command in
    // extra_args) (events and log in one file: relay_client::log()); waits until
    // the client reported every name published or refused (unless wait is
    // false).
    [[nodiscard]] core::result<relay_client> connect(
        const std::string& token, const std::vector<std::pair<std::string, std::uint16_t>>& expose,
        bool wait = true, std::vector<std::string> extra_args = {}) const;

    // Kills the relay (SIGKILL, if it runs) and starts it again with the same
    // config on the same ports (relays with a config file, not --dev).
    [[nodiscard]] core::result<void> restart();
    // The relay's process id (for /proc: descriptors, limits, CPU time).
    [[nodiscard]] int pid() const;

    // GET of the admin listener (Host: 127.0.0.1:PORT, the admin token when
    // there is one); the body ("" on failure).
    [[nodiscard]] std::string admin_get(const std::string& path) const;
    // The same, as a full reply.
    [[nodiscard]] core::result<http_reply> admin_request(const std::string& path) const;
    // True when /api/v1/tunnels lists `name` for `tenant` within timeout.
    [[nodiscard]] bool wait_published(const std::string& tenant, const std::string& name,
                                      std::chrono::milliseconds timeout,
                                      bool published = true) const;

  private:
    relay_fixture(temp_dir dir) : dir_(std::move(dir)) {}
    [[nodiscard]] core::result<void> launch();  // starts argv_, reads the ports it printed
    temp_dir dir_;
    std::string secret_path_;
    std::optional<child_process> process_;
    std::uint16_t public_port_ = 0;
    std::uint16_t admin_port_ = 0;
    bool tls_ = false;
    std::string audit_path_;
    std::string admin_token_;
    std::vector<std::string> argv_;
    std::chrono::milliseconds start_timeout_{15'000};
};

// Sends `request` on a new connection to 127.0.0.1:port and reads until the
// peer closes (or the deadline). Parses the first response.
[[nodiscard]] core::result<http_reply> http_request(
    std::uint16_t port, const std::string& request,
    std::chrono::milliseconds timeout = std::chrono::seconds(10));
// A token's jti claim (empty when it has none).
[[nodiscard]] std::string jti_of(const std::string& token);

// Parses one HTTP response from `raw` (Content-Length, chunked or until end).
[[nodiscard]] std::optional<http_reply> parse_http_reply(const std::string& raw);

}  // namespace tunnel::test
