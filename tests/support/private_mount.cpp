#include "support/private_mount.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <sstream>
#include <string_view>
#include <thread>

#include "support/net.hpp"
#include "support/process.hpp"

namespace tunnel::test {
namespace {

constexpr std::chrono::milliseconds kill_grace{2'000};

// Every process (not a zombie) in mount namespace `ns`, except us.
std::vector<pid_t> processes_in(const std::string& ns) {
    std::vector<pid_t> found;
    if (ns.empty()) return found;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) return found;
    while (const dirent* entry = ::readdir(proc)) {
        char* end = nullptr;
        const long pid = std::strtol(entry->d_name, &end, 10);
        if (pid <= 0 || *end != '\0' || pid == ::getpid()) continue;
        if (mount_namespace_of(static_cast<pid_t>(pid)) == ns)
            found.push_back(static_cast<pid_t>(pid));
    }
    ::closedir(proc);
    return found;
}

bool is_executable(const std::string& path) {
    return ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::string mount_namespace_of(pid_t pid) {
    char target[64] = {};
    const auto link = "/proc/" + std::to_string(pid) + "/ns/mnt";
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    return n > 0 ? std::string(target, static_cast<std::size_t>(n)) : std::string{};
}

bool runs_in_own_mount_namespace(pid_t pid, const std::string& binary) {
    char target[256] = {};
    const auto link = "/proc/" + std::to_string(pid) + "/exe";
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0 || std::string_view(target, static_cast<std::size_t>(n)) != binary) return false;
    const auto ns = mount_namespace_of(pid);
    return !ns.empty() && ns != mount_namespace_of(::getpid());
}

mount_namespace mount_namespace::of(pid_t pid) {
    mount_namespace ns;
    const auto link = "/proc/" + std::to_string(pid) + "/ns/mnt";
    ns.pin_.reset(::open(link.c_str(), O_RDONLY | O_CLOEXEC));
    // Read the name after pinning: the pinned namespace is the one named.
    if (ns.pin_.get() >= 0) ns.id_ = mount_namespace_of(pid);
    if (ns.id_.empty()) ns.pin_.reset();
    return ns;
}

void mount_namespace::kill_all(std::chrono::milliseconds grace) {
    // Never our own namespace: that would be every process on the machine.
    if (!id_.empty() && id_ != mount_namespace_of(::getpid())) {
        for (const pid_t pid : processes_in(id_)) ::kill(pid, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + grace;
        while (!processes_in(id_).empty() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        for (const pid_t pid : processes_in(id_)) ::kill(pid, SIGKILL);
    }
    id_.clear();
    pin_.reset();
}

std::string log_tail(const std::string& text, std::size_t max_bytes) {
    return text.size() <= max_bytes ? text : "..." + text.substr(text.size() - max_bytes);
}

core::result<private_server> private_server::launch(const launch_spec& spec) {
    const std::size_t log_offset = read_text_file(spec.log_path).value_or(std::string{}).size();
    auto child = spawn(
        {"unshare", "--mount", "--", "sh", "-c", spec.script},
        spawn_options{
            .env = {}, .stdout_path = spec.log_path, .stderr_path = spec.log_path, .cwd = {}});
    if (!child) return tl::unexpected(child.error());

    const auto output_since_start = [&] {
        const auto text = read_text_file(spec.log_path).value_or(std::string{});
        return text.size() > log_offset ? text.substr(log_offset) : std::string{};
    };
    const auto port = std::to_string(spec.port);
    const auto deadline = std::chrono::steady_clock::now() + spec.start_timeout;
    for (;;) {
        if (runs_in_own_mount_namespace(child->pid(), spec.listener) && port_accepts(spec.port)) {
            auto ns = mount_namespace::of(child->pid());
            return private_server(std::move(*child), std::move(ns));
        }
        if (const auto code = child->wait(std::chrono::milliseconds(5))) {
            const auto output = output_since_start();
            const bool bind_failed = output.find("Address already in use") != std::string::npos;
            return core::fail(bind_failed ? core::errc::connection_failed : core::errc::io_error,
                              spec.what + " exited with " + std::to_string(*code) + " on port " +
                                  port + ": " + log_tail(output));
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            child->terminate(kill_grace);
            return core::fail(
                core::errc::timeout,
                spec.what + " did not listen on 127.0.0.1:" + port +
                    " within the start timeout; log: " + log_tail(output_since_start()));
        }
    }
}

private_server::private_server(private_server&& other) noexcept
    : process_(std::move(other.process_)), namespace_(std::move(other.namespace_)) {
    other.process_.reset();
}

private_server& private_server::operator=(private_server&& other) noexcept {
    if (this != &other) {
        stop();
        process_ = std::move(other.process_);
        other.process_.reset();
        namespace_ = std::move(other.namespace_);
    }
    return *this;
}

void private_server::stop() {
    if (!process_) return;
    process_->terminate(kill_grace);
    process_.reset();
    namespace_.kill_all(kill_grace);
}

std::string find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':'))
        if (!dir.empty() && is_executable(dir + "/" + name)) return dir + "/" + name;
    return {};
}

const std::optional<std::string>& private_mount_unavailable() {
    static const std::optional<std::string> reason = []() -> std::optional<std::string> {
        for (const char* program : {"unshare", "mount"})
            if (find_program(program).empty()) return std::string(program) + " is not on PATH";
        run_options quick;
        quick.timeout = std::chrono::milliseconds(5'000);
        const auto probe =
            run({"unshare", "--mount", "--", "mount", "--bind", "/tmp", "/tmp"}, quick);
        if (!probe.ok())
            return "cannot bind-mount in a private mount namespace here (the server must find "
                   "authorized_keys in root's home; run as root): " +
                   probe.describe();
        return std::nullopt;
    }();
    return reason;
}

core::result<void> make_dir(const std::string& path, mode_t mode) {
    if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
        return core::fail(core::errc::io_error, "cannot create " + path);
    if (::chmod(path.c_str(), mode) != 0)
        return core::fail(core::errc::io_error, "cannot chmod " + path);
    return {};
}

std::string ed25519_line(const std::string& text) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("ssh-ed25519 ", 0) != 0) continue;
        const auto second = line.find(' ', std::string_view("ssh-ed25519 ").size());
        return second == std::string::npos ? line : line.substr(0, second);
    }
    return {};
}

}  // namespace tunnel::test
