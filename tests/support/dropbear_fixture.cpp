#include "support/dropbear_fixture.hpp"
#include "support/tunnel_cli.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "support/net.hpp"
#include "support/private_mount.hpp"

namespace tunnel::test {
namespace {

constexpr const char* dropbear_binary = "/usr/sbin/dropbear";

// The shell command that unshare runs: bind the fixture's home on /root (in
// the new, private mount namespace only), then become dropbear.
std::string launch_script(const std::string& dir, std::uint16_t port, std::size_t window) {
    std::string script = "mount --bind '" + dir + "/home' /root && exec " + dropbear_binary +
                         " -F -E -s -m -p 127.0.0.1:" + std::to_string(port) + " -r '" + dir +
                         "/hostkey' -P '" + dir + "/dropbear.pid'";
    if (window != 0) script += " -W " + std::to_string(window);
    return script;
}

// Why dropbear cannot run here (checked once per process), or nullopt.
const std::optional<std::string>& unavailable_reason() {
    static const std::optional<std::string> reason = []() -> std::optional<std::string> {
        if (::access(dropbear_binary, X_OK) != 0)
            return std::string(dropbear_binary) +
                   " is missing: install the dropbear-bin package (scripts/install-deps)";
        for (const char* program : {"dropbearkey", "ssh-keygen"})
            if (find_program(program).empty()) return std::string(program) + " is not on PATH";
        return private_mount_unavailable();
    }();
    return reason;
}

}  // namespace

core::result<dropbear_fixture> dropbear_fixture::start(dropbear_options options) {
    if (const auto& why = unavailable_reason())
        return core::fail(core::errc::not_found, "dropbear cannot run here: " + *why);
    auto dir = temp_dir::create("tunnel-dropbear");
    if (!dir) return tl::unexpected(dir.error());

    const auto hostkey = dir->file("hostkey");
    if (const auto made = run({"dropbearkey", "-t", "ed25519", "-f", hostkey}); !made.ok())
        return core::fail(core::errc::io_error, "dropbearkey failed: " + made.describe());
    const auto shown = run({"dropbearkey", "-y", "-f", hostkey});
    auto host_pubkey = ed25519_line(shown.out);
    if (!shown.ok() || host_pubkey.empty())
        return core::fail(core::errc::io_error,
                          "dropbearkey -y printed no ssh-ed25519 key: " + shown.describe());

    const auto client_key = dir->file("client_ed25519");
    if (const auto made = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                               "tunnel-test-dropbear-client", "-f", client_key});
        !made.ok())
        return core::fail(core::errc::io_error, "ssh-keygen failed: " + made.describe());
    auto client_pubkey = read_text_file(client_key + ".pub");
    if (!client_pubkey) return tl::unexpected(client_pubkey.error());

    // dropbear checks that home, ~/.ssh and authorized_keys are not writable
    // by others.
    for (const auto& [path, mode] :
         {std::pair{dir->file("home"), 0700U}, std::pair{dir->file("home/.ssh"), 0700U}})
        if (auto made = make_dir(path, mode); !made) return tl::unexpected(made.error());
    if (auto written =
            write_text_file(dir->file("home/.ssh/authorized_keys"), *client_pubkey, 0600);
        !written)
        return tl::unexpected(written.error());

    const int attempts = std::max(1, options.bind_attempts);
    dropbear_fixture dropbear(std::move(*dir), options, std::move(host_pubkey));
    core::error last{core::errc::connection_failed, "no attempt made"};
    for (int attempt = 0; attempt < attempts; ++attempt) {
        auto port = unused_port();
        if (!port) return tl::unexpected(port.error());
        dropbear.port_ = *port;
        auto launched = dropbear.launch();
        if (launched) {
            const auto known = "[127.0.0.1]:" + std::to_string(dropbear.port_) + " " +
                               dropbear.host_pubkey_ + "\n";
            if (auto written = write_text_file(dropbear.known_hosts_path(), known); !written)
                return tl::unexpected(written.error());
            return dropbear;
        }
        last = launched.error();
        if (last.code != core::errc::connection_failed) break;  // only a lost port race is retried
    }
    return tl::unexpected(last);
}

dropbear_fixture::dropbear_fixture(dropbear_fixture&& other) noexcept
    : dir_(std::move(other.dir_)),
      options_(other.options_),
      host_pubkey_(std::move(other.host_pubkey_)),
      port_(std::exchange(other.port_, 0)),
      server_(std::move(other.server_)) {
    other.server_.reset();
}

dropbear_fixture& dropbear_fixture::operator=(dropbear_fixture&& other) noexcept {
    if (this != &other) {
        stop();
        dir_ = std::move(other.dir_);
        options_ = other.options_;
        host_pubkey_ = std::move(other.host_pubkey_);
        port_ = std::exchange(other.port_, 0);
        server_ = std::move(other.server_);
        other.server_.reset();
    }
    return *this;
}

dropbear_fixture::~dropbear_fixture() {
    stop();
}

std::string dropbear_fixture::log() const {
    return log_tail(read_text_file(log_path()).value_or(std::string{}));
}

std::vector<std::string> dropbear_fixture::client_flags(std::string_view port_option) const {
    return strict_client_flags(port_option, port_, client_key_path(), known_hosts_path());
}

core::result<void> dropbear_fixture::launch() {
    auto server = private_server::launch(
        {.script = launch_script(dir_.path(), port_, options_.receive_window),
         .listener = dropbear_binary,
         .port = port_,
         .log_path = log_path(),
         .start_timeout = options_.start_timeout,
         .what = "dropbear"});
    if (!server) return tl::unexpected(server.error());
    server_.emplace(std::move(*server));
    return {};
}

void dropbear_fixture::stop() {
    server_.reset();
}

}  // namespace tunnel::test
