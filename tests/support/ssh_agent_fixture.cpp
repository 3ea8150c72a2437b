#include "support/ssh_agent_fixture.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace tunnel::test {
namespace {

bool socket_accepts(const std::string& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0 || !S_ISSOCK(info.st_mode)) return false;
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof address.sun_path) {
        ::close(fd);
        return false;
    }
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

core::result<ssh_agent_fixture> ssh_agent_fixture::start(std::chrono::milliseconds timeout) {
    auto dir = temp_dir::create("tunnel-agent");
    if (!dir) return tl::unexpected(dir.error());
    ssh_agent_fixture agent(std::move(*dir));
    const auto log = agent.log_path();
    auto child =
        spawn({"ssh-agent", "-D", "-a", agent.socket_path()},
              spawn_options{.env = {.set = {}, .unset = {"SSH_AUTH_SOCK", "SSH_AGENT_PID"}},
                            .stdout_path = log,
                            .stderr_path = log,
                            .cwd = {}});
    if (!child) return tl::unexpected(child.error());

    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (socket_accepts(agent.socket_path())) {
            agent.process_ = std::move(*child);
            return agent;
        }
        if (const auto code = child->wait(std::chrono::milliseconds(5)))
            return core::fail(core::errc::io_error,
                              "ssh-agent exited with " + std::to_string(*code) + ": " +
                                  read_text_file(log).value_or(std::string{}));
        if (std::chrono::steady_clock::now() >= deadline)
            return core::fail(core::errc::timeout,
                              "ssh-agent did not create " + agent.socket_path() + " in time");
    }
}

ssh_agent_fixture::ssh_agent_fixture(ssh_agent_fixture&& other) noexcept
    : dir_(std::move(other.dir_)), process_(std::move(other.process_)) {
    other.process_.reset();
}

ssh_agent_fixture& ssh_agent_fixture::operator=(ssh_agent_fixture&& other) noexcept {
    if (this != &other) {
        stop();
        dir_ = std::move(other.dir_);
        process_ = std::move(other.process_);
        other.process_.reset();
    }
    return *this;
}

ssh_agent_fixture::~ssh_agent_fixture() {
    stop();
}

void ssh_agent_fixture::stop() {
    if (process_) process_->terminate();
    process_.reset();
}

env_change ssh_agent_fixture::env() const {
    return env_change{.set = {{"SSH_AUTH_SOCK", socket_path()}}, .unset = {"SSH_AGENT_PID"}};
}

core::result<void> ssh_agent_fixture::add_key(const std::string& path) const {
    const auto added =
        run({"ssh-add", "-q", path}, run_options{.env = env(),
                                                 .stdin_text = std::nullopt,
                                                 .cwd = {},
                                                 .timeout = std::chrono::seconds(10)});
    if (!added.ok())
        return core::fail(core::errc::auth_unavailable,
                          "ssh-add " + path + ": " + added.describe());
    return {};
}

core::result<std::string> ssh_agent_fixture::list_keys() const {
    const auto listed = run({"ssh-add", "-L"}, run_options{.env = env(),
                                                           .stdin_text = std::nullopt,
                                                           .cwd = {},
                                                           .timeout = std::chrono::seconds(10)});
    if (listed.exit_code == 1) return std::string{};  // the agent holds no identities
    if (!listed.ok())
        return core::fail(core::errc::auth_unavailable, "ssh-add -L: " + listed.describe());
    return listed.out;
}

}  // namespace tunnel::test
