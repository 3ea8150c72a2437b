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

#include "support/process.hpp"

namespace tunnel::test {
namespace {

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
