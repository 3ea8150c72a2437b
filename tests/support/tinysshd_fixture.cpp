#include "support/tinysshd_fixture.hpp"
#include "support/tunnel_cli.hpp"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "support/net.hpp"
#include "support/private_mount.hpp"

namespace tunnel::test {
namespace {

constexpr const char* tinysshd_binary = "/usr/sbin/tinysshd";

// The shell command that unshare runs: bind the fixture's home on /root (in
// the new, private mount namespace only), then become socat, which runs one
// tinysshd per connection. socat splits EXEC's command at spaces; the paths
// come from mkdtemp and hold none (nor socat's ',' ':' '!!').
std::string launch_script(const std::string& socat, const std::string& dir, std::uint16_t port,
                          const std::string& sftp_server) {
    std::string server = std::string(tinysshd_binary) + " -v";
    if (!sftp_server.empty()) server += " -x sftp=" + sftp_server;
    server += " " + dir + "/keydir";
    return "mount --bind '" + dir + "/home' /root && exec " + socat +
           " TCP-LISTEN:" + std::to_string(port) +
           ",bind=127.0.0.1,reuseaddr,fork 'EXEC:" + server + "'";
}

// Why tinysshd cannot run here (checked once per process), or nullopt.
const std::optional<std::string>& unavailable_reason() {
    static const std::optional<std::string> reason = []() -> std::optional<std::string> {
        if (::access(tinysshd_binary, X_OK) != 0)
            return std::string(tinysshd_binary) +
                   " is missing: install the tinysshd package (scripts/install-deps)";
        for (const char* program : {"tinysshd-makekey", "tinysshd-printkey", "socat", "ssh-keygen"})
            if (find_program(program).empty()) return std::string(program) + " is not on PATH";
        return private_mount_unavailable();
    }();
    return reason;
}

// The path holds no character that socat's address syntax or the shell
// script would read as syntax.
bool plain_path(const std::string& path) {
    return path.find_first_of(" '\",:!\\$`") == std::string::npos;
}

}  // namespace

core::result<tinysshd_fixture> tinysshd_fixture::start(tinysshd_options options) {
    if (const auto& why = unavailable_reason())
        return core::fail(core::errc::not_found, "tinysshd cannot run here: " + *why);
    auto dir = temp_dir::create("tunnel-tinysshd");
    if (!dir) return tl::unexpected(dir.error());
    if (!plain_path(dir->path()) || !plain_path(options.sftp_server))
        return core::fail(core::errc::invalid_argument,
                          "tinysshd_fixture needs paths without spaces, quotes, ',' or ':': " +
                              dir->path() + " " + options.sftp_server);

    const auto keydir = dir->file("keydir");
    if (const auto made = run({"tinysshd-makekey", "-q", keydir}); !made.ok())
        return core::fail(core::errc::io_error, "tinysshd-makekey failed: " + made.describe());
    const auto shown = run({"tinysshd-printkey", keydir});
    auto host_pubkey = ed25519_line(shown.out);
    if (!shown.ok() || host_pubkey.empty())
        return core::fail(core::errc::io_error,
                          "tinysshd-printkey printed no ssh-ed25519 key: " + shown.describe());

    const auto client_key = dir->file("client_ed25519");
    if (const auto made = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                               "tunnel-test-tinysshd-client", "-f", client_key});
        !made.ok())
        return core::fail(core::errc::io_error, "ssh-keygen failed: " + made.describe());
    auto client_pubkey = read_text_file(client_key + ".pub");
    if (!client_pubkey) return tl::unexpected(client_pubkey.error());
    for (const auto& [path, mode] :
         {std::pair{dir->file("home"), 0700U}, std::pair{dir->file("home/.ssh"), 0700U}})
        if (auto made = make_dir(path, mode); !made) return tl::unexpected(made.error());
    if (auto written =
            write_text_file(dir->file("home/.ssh/authorized_keys"), *client_pubkey, 0600);
        !written)
        return tl::unexpected(written.error());

    const int attempts = std::max(1, options.bind_attempts);
    tinysshd_fixture tiny(std::move(*dir), std::move(options), std::move(host_pubkey),
                          find_program("socat"));
    core::error last{core::errc::connection_failed, "no attempt made"};
    for (int attempt = 0; attempt < attempts; ++attempt) {
        auto port = unused_port();
        if (!port) return tl::unexpected(port.error());
        tiny.port_ = *port;
        auto launched = tiny.launch();
        if (launched) {
            const auto known =
                "[127.0.0.1]:" + std::to_string(tiny.port_) + " " + tiny.host_pubkey_ + "\n";
            if (auto written = write_text_file(tiny.known_hosts_path(), known); !written)
                return tl::unexpected(written.error());
            return tiny;
        }
        last = launched.error();
        if (last.code != core::errc::connection_failed) break;  // only a lost port race is retried
    }
    return tl::unexpected(last);
}

tinysshd_fixture::tinysshd_fixture(tinysshd_fixture&& other) noexcept
    : dir_(std::move(other.dir_)),
      options_(std::move(other.options_)),
      host_pubkey_(std::move(other.host_pubkey_)),
      socat_(std::move(other.socat_)),
      port_(std::exchange(other.port_, 0)),
      server_(std::move(other.server_)) {
    other.server_.reset();
}

tinysshd_fixture& tinysshd_fixture::operator=(tinysshd_fixture&& other) noexcept {
    if (this != &other) {
        stop();
        dir_ = std::move(other.dir_);
        options_ = std::move(other.options_);
        host_pubkey_ = std::move(other.host_pubkey_);
        socat_ = std::move(other.socat_);
        port_ = std::exchange(other.port_, 0);
        server_ = std::move(other.server_);
        other.server_.reset();
    }
    return *this;
}

tinysshd_fixture::~tinysshd_fixture() {
    stop();
}

std::string tinysshd_fixture::log() const {
    return log_tail(read_text_file(log_path()).value_or(std::string{}));
}

std::vector<std::string> tinysshd_fixture::client_flags(std::string_view port_option) const {
    return strict_client_flags(port_option, port_, client_key_path(), known_hosts_path());
}

core::result<void> tinysshd_fixture::launch() {
    auto server = private_server::launch(
        {.script = launch_script(socat_, dir_.path(), port_, options_.sftp_server),
         .listener = socat_,
         .port = port_,
         .log_path = log_path(),
         .start_timeout = options_.start_timeout,
         .what = "socat (for tinysshd)"});
    if (!server) return tl::unexpected(server.error());
    server_.emplace(std::move(*server));
    return {};
}

void tinysshd_fixture::stop() {
    server_.reset();
}

}  // namespace tunnel::test
