#include "support/sshd_fixture.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "support/net.hpp"

namespace tunnel::test {
namespace {

using clock = std::chrono::steady_clock;

constexpr const char* sshd_binary = "/usr/sbin/sshd";
constexpr std::chrono::milliseconds kill_grace{2'000};

struct key_pair {
    std::string private_key;
    std::string public_key;  // one line, no trailing newline
};

struct key_material {
    key_pair host;
    key_pair client;
};

std::string trim(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
        text.pop_back();
    return text;
}

core::result<key_pair> generate_key(const temp_dir& dir, const std::string& name) {
    const auto path = dir.file(name);
    const auto keygen = run(
        {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tunnel-test-" + name, "-f", path});
    if (!keygen.ok())
        return core::fail(core::errc::io_error, "ssh-keygen failed: " + keygen.describe());
    auto private_key = read_text_file(path);
    auto public_key = read_text_file(path + ".pub");
    if (!private_key || !public_key)
        return core::fail(core::errc::io_error, "ssh-keygen wrote no key in " + dir.path());
    return key_pair{std::move(*private_key), trim(std::move(*public_key))};
}

// Keys are generated once per test process: ssh-keygen costs more than
// starting sshd.
core::result<key_material> cached_keys() {
    static std::mutex mutex;
    static std::optional<key_material> keys;
    std::lock_guard lock(mutex);
    if (keys) return *keys;
    auto dir = temp_dir::create("tunnel-keygen");
    if (!dir) return tl::unexpected(dir.error());
    auto host = generate_key(*dir, "host_ed25519");
    if (!host) return tl::unexpected(host.error());
    auto client = generate_key(*dir, "client_ed25519");
    if (!client) return tl::unexpected(client.error());
    keys = key_material{std::move(*host), std::move(*client)};
    return *keys;
}

// "ssh-ed25519 AAAA... comment" -> "ssh-ed25519 AAAA..."
std::string without_comment(const std::string& public_key) {
    const auto first = public_key.find(' ');
    if (first == std::string::npos) return public_key;
    const auto second = public_key.find(' ', first + 1);
    return second == std::string::npos ? public_key : public_key.substr(0, second);
}

std::string tail(const std::string& text, std::size_t max_bytes = 4000) {
    return text.size() <= max_bytes ? text : "..." + text.substr(text.size() - max_bytes);
}

// Every live process, by pid, with its parent pid.
std::unordered_map<pid_t, pid_t> parent_pids() {
    std::unordered_map<pid_t, pid_t> parents;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) return parents;
    while (const dirent* entry = ::readdir(proc)) {
        char* end = nullptr;
        const long pid = std::strtol(entry->d_name, &end, 10);
        if (pid <= 0 || *end != '\0') continue;
        std::ifstream stat("/proc/" + std::string(entry->d_name) + "/stat");
        std::string line;
        if (!std::getline(stat, line)) continue;
        const auto close_paren = line.rfind(')');  // the command name may hold spaces
        if (close_paren == std::string::npos) continue;
        std::istringstream fields(line.substr(close_paren + 1));
        char state = 0;
        long parent = 0;
        if (fields >> state >> parent && state != 'Z')
            parents.emplace(static_cast<pid_t>(pid), static_cast<pid_t>(parent));
    }
    ::closedir(proc);
    return parents;
}

// roots and every process below them.
std::vector<pid_t> with_descendants(std::vector<pid_t> found) {
    const auto parents = parent_pids();
    for (std::size_t i = 0; i < found.size(); ++i) {
        for (const auto& [pid, parent] : parents)
            if (parent == found[i] && std::find(found.begin(), found.end(), pid) == found.end())
                found.push_back(pid);
    }
    return found;
}

// Socket inodes of TCP sockets bound to 127.0.0.1:port, in any state.
std::vector<unsigned long> socket_inodes_on(std::uint16_t port) {
    std::vector<unsigned long> inodes;
    std::ifstream table("/proc/net/tcp");
    std::string line;
    std::getline(table, line);  // header
    char wanted[16];
    std::snprintf(wanted, sizeof wanted, "0100007F:%04X", port);
    while (std::getline(table, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state, queues, timer, retransmits;
        unsigned long uid = 0, timeout = 0, inode = 0;
        if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
              timeout >> inode))
            continue;
        if (local == wanted && inode != 0) inodes.push_back(inode);
    }
    return inodes;
}

// Processes holding one of these socket inodes open.
std::vector<pid_t> holders_of(const std::vector<unsigned long>& inodes) {
    std::vector<pid_t> holders;
    if (inodes.empty()) return holders;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) return holders;
    while (const dirent* entry = ::readdir(proc)) {
        char* end = nullptr;
        const long pid = std::strtol(entry->d_name, &end, 10);
        if (pid <= 0 || *end != '\0' || pid == ::getpid()) continue;
        const auto fd_dir = "/proc/" + std::string(entry->d_name) + "/fd";
        DIR* fds = ::opendir(fd_dir.c_str());
        if (fds == nullptr) continue;
        bool holds = false;
        while (const dirent* fd = ::readdir(fds)) {
            if (fd->d_name[0] == '.') continue;
            char target[64] = {};
            const auto link = fd_dir + "/" + fd->d_name;
            const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
            unsigned long inode = 0;
            if (n > 0 && std::sscanf(target, "socket:[%lu]", &inode) == 1 &&
                std::find(inodes.begin(), inodes.end(), inode) != inodes.end()) {
                holds = true;
                break;
            }
        }
        ::closedir(fds);
        if (holds) holders.push_back(static_cast<pid_t>(pid));
    }
    ::closedir(proc);
    return holders;
}

bool alive(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return false;
    const auto close_paren = line.rfind(')');
    return close_paren != std::string::npos && close_paren + 2 < line.size() &&
           line[close_paren + 2] != 'Z';
}

// Processes that are not our children: signal, wait for them to go, then
// SIGKILL the rest.
void kill_processes(const std::vector<pid_t>& pids) {
    if (pids.empty()) return;
    for (const pid_t pid : pids) ::kill(pid, SIGTERM);
    const auto deadline = clock::now() + kill_grace;
    for (;;) {
        bool any = false;
        for (const pid_t pid : pids) any = any || alive(pid);
        if (!any) return;
        if (clock::now() >= deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (const pid_t pid : pids) ::kill(pid, SIGKILL);
}

}  // namespace

core::result<sshd_fixture> sshd_fixture::start(sshd_options options) {
    if (::mkdir("/run/sshd", 0755) != 0 && errno != EEXIST)
        return core::fail(core::errc::permission_denied,
                          "cannot create /run/sshd (sshd's privilege separation dir); run as root");
    auto keys = cached_keys();
    if (!keys) return tl::unexpected(keys.error());
    auto dir = temp_dir::create("tunnel-sshd");
    if (!dir) return tl::unexpected(dir.error());

    for (const auto& [name, text, mode] : {
             std::tuple{"host_ed25519", keys->host.private_key, 0600U},
             std::tuple{"host_ed25519.pub", keys->host.public_key + "\n", 0644U},
             std::tuple{"client_ed25519", keys->client.private_key, 0600U},
             std::tuple{"client_ed25519.pub", keys->client.public_key + "\n", 0644U},
             std::tuple{"authorized_keys", keys->client.public_key + "\n", 0600U},
         }) {
        if (auto written = write_text_file(dir->file(name), text, mode); !written)
            return tl::unexpected(written.error());
    }

    const int attempts = std::max(1, options.bind_attempts);
    sshd_fixture sshd(std::move(*dir), std::move(options), keys->client.public_key,
                      without_comment(keys->host.public_key));
    core::error last{core::errc::connection_failed, "no attempt made"};
    for (int attempt = 0; attempt < attempts; ++attempt) {
        auto port = unused_port();
        if (!port) return tl::unexpected(port.error());
        sshd.port_ = *port;
        auto launched = sshd.launch();
        if (launched) {
            const auto known =
                "[127.0.0.1]:" + std::to_string(sshd.port_) + " " + sshd.host_pubkey_ + "\n";
            if (auto written = write_text_file(sshd.known_hosts_path(), known); !written)
                return tl::unexpected(written.error());
            return sshd;
        }
        last = launched.error();
        if (last.code != core::errc::connection_failed) break;  // only a lost port race is retried
    }
    return tl::unexpected(last);
}

sshd_fixture::sshd_fixture(sshd_fixture&& other) noexcept
    : dir_(std::move(other.dir_)),
      options_(std::move(other.options_)),
      client_pubkey_(std::move(other.client_pubkey_)),
      host_pubkey_(std::move(other.host_pubkey_)),
      port_(std::exchange(other.port_, 0)),
      process_(std::move(other.process_)),
      ssh_configs_written_(other.ssh_configs_written_) {
    other.process_.reset();
}

sshd_fixture& sshd_fixture::operator=(sshd_fixture&& other) noexcept {
    if (this != &other) {
        stop();
        dir_ = std::move(other.dir_);
        options_ = std::move(other.options_);
        client_pubkey_ = std::move(other.client_pubkey_);
        host_pubkey_ = std::move(other.host_pubkey_);
        port_ = std::exchange(other.port_, 0);
        process_ = std::move(other.process_);
        other.process_.reset();
        ssh_configs_written_ = other.ssh_configs_written_;
    }
    return *this;
}

sshd_fixture::~sshd_fixture() {
    stop();
}

std::string sshd_fixture::log() const {
    return read_text_file(log_path()).value_or(std::string{});
}

core::result<void> sshd_fixture::write_config() const {
    std::string head;
    std::string match_section;
    bool in_match = false;
    for (const auto& line : options_.extra_config) {
        const auto first = line.find_first_not_of(" \t");
        if (first != std::string::npos && line.compare(first, 5, "Match") == 0) in_match = true;
        (in_match ? match_section : head) += line + "\n";
    }

    std::string config = "# Written by tunnel::test::sshd_fixture\n";
    if (!head.empty()) config += "# extra_config\n" + head;
    config += "ListenAddress 127.0.0.1:" + std::to_string(port_) + "\n";
    config += "AddressFamily inet\n";
    config += "HostKey " + dir_.file("host_ed25519") + "\n";
    config += "AuthorizedKeysFile " + authorized_keys_path() + "\n";
    config +=
        "UsePAM no\n"
        "PidFile none\n"
        "StrictModes no\n"
        "LogLevel VERBOSE\n"
        "PermitRootLogin yes\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UseDNS no\n"
        "PrintMotd no\n"
        "PrintLastLog no\n"
        "X11Forwarding no\n"
        "AllowTcpForwarding yes\n"
        "AllowAgentForwarding yes\n"
        "MaxStartups 200\n"
        // Otherwise Debian's bash sources root's ~/.bashrc for every command
        // (ARCHITECTURE §7).
        "SetEnv SHLVL=1\n";
    config += "MaxSessions " + std::to_string(options_.max_sessions) + "\n";
    if (!options_.sftp_server.empty()) config += "Subsystem sftp " + options_.sftp_server + "\n";
    config += match_section;
    return write_text_file(config_path(), config, 0600);
}

core::result<void> sshd_fixture::launch() {
    if (auto written = write_config(); !written) return written;
    const auto log_file = log_path();
    const std::size_t log_offset = read_text_file(log_file).value_or(std::string{}).size();
    std::vector<std::string> argv = {sshd_binary, "-D", "-e", "-f", config_path()};
    if (!options_.pam_config_dir.empty())
        // unshare without --fork execs sh, which execs sshd: one pid throughout.
        argv = {"unshare",
                "--mount",
                "--",
                "sh",
                "-c",
                "mount --bind '" + options_.pam_config_dir + "' /etc/pam.d && exec " + sshd_binary +
                    " -D -e -f '" + config_path() + "'"};
    auto child = spawn(
        argv,
        spawn_options{.env = {}, .stdout_path = log_file, .stderr_path = log_file, .cwd = {}});
    if (!child) return tl::unexpected(child.error());

    const auto listening = "Server listening on 127.0.0.1 port " + std::to_string(port_) + ".";
    const auto deadline = clock::now() + options_.start_timeout;
    for (;;) {
        const auto text = read_text_file(log_file).value_or(std::string{});
        const auto since_start = text.size() > log_offset ? text.substr(log_offset) : std::string{};
        if (since_start.find(listening) != std::string::npos && port_accepts(port_)) {
            process_ = std::move(*child);
            return {};
        }
        if (const auto code = child->wait(std::chrono::milliseconds(5))) {
            // Read again: the last lines may have landed after the check above.
            const auto final_text = read_text_file(log_file).value_or(std::string{});
            const auto output = final_text.size() > log_offset ? final_text.substr(log_offset) : "";
            const bool bind_failed = output.find("Address already in use") != std::string::npos ||
                                     output.find("Cannot bind any address") != std::string::npos;
            return core::fail(bind_failed ? core::errc::connection_failed : core::errc::io_error,
                              "sshd exited with " + std::to_string(*code) + " on port " +
                                  std::to_string(port_) + ": " + tail(output));
        }
        if (clock::now() >= deadline) {
            child->terminate(kill_grace);
            return core::fail(core::errc::timeout,
                              "sshd did not listen on 127.0.0.1:" + std::to_string(port_) +
                                  " within the start timeout; log: " + tail(since_start));
        }
    }
}

void sshd_fixture::stop() {
    if (!process_) return;
    // The listener first, so that it forks no more sessions. Its sessions
    // (setsid, then orphaned) are found by the connections they hold on our
    // port, which also catches one forked an instant before SIGTERM.
    process_->terminate(kill_grace);
    process_.reset();
    kill_processes(with_descendants(holders_of(socket_inodes_on(port_))));
}

core::result<void> sshd_fixture::restart() {
    stop();
    return launch();
}

std::string sshd_fixture::write_ssh_config(std::string_view extra, std::string_view alias) {
    ++ssh_configs_written_;
    const auto path = ssh_configs_written_ == 1
                          ? dir_.file("ssh_config")
                          : dir_.file("ssh_config." + std::to_string(ssh_configs_written_));
    std::string config;
    if (!extra.empty()) {
        config += extra;
        if (config.back() != '\n') config += "\n";
    }
    config += "Host " + std::string(alias) + "\n";
    config += "  HostName 127.0.0.1\n";
    config += "  Port " + std::to_string(port_) + "\n";
    config += "  User root\n";
    config += "  IdentityFile " + client_key_path() + "\n";
    config += "  IdentitiesOnly yes\n";
    config += "  UserKnownHostsFile " + known_hosts_path() + "\n";
    config += "  GlobalKnownHostsFile /dev/null\n";
    config += "  StrictHostKeyChecking yes\n";
    config += "  BatchMode yes\n";
    if (auto written = write_text_file(path, config); !written) return {};
    return path;
}

}  // namespace tunnel::test
