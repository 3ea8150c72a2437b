#include "support/test_hosts.hpp"

#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <thread>

#include <fmt/format.h>

namespace tunnel::test {

namespace {

std::string env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

std::string run_id() {
    return env_or("TUNNEL_TESTHOSTS_RUN_ID", "manual");
}

run_result script_run(std::vector<std::string> args,
                      std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
    args.insert(args.begin(), test_hosts::script());
    run_options o;
    o.timeout = timeout;
    return run(std::move(args), o);
}

core::error script_error(const std::string& what, const run_result& r) {
    return core::error{core::errc::io_error, fmt::format("{}: {}{}", what, r.describe(),
                                                         r.out.empty() ? "" : "\n" + r.out)};
}

}  // namespace

std::string test_hosts::script() {
#ifdef TUNNEL_TESTHOST_SCRIPT
    return env_or("TUNNEL_TESTHOST_SCRIPT", TUNNEL_TESTHOST_SCRIPT);
#else
    return env_or("TUNNEL_TESTHOST_SCRIPT", "tests/hosts/testhost");
#endif
}

std::string test_hosts::run_dir() {
    return env_or("TUNNEL_TESTHOSTS_RUN", "/tmp/tunnel-testhosts");
}

core::result<test_hosts> test_hosts::start(std::size_t count) {
    if (::geteuid() != 0)
        return core::fail(core::errc::permission_denied,
                          "test hosts need root (systemd-nspawn, network namespaces, overlay "
                          "mounts): run the host "
                          "tests as root, as CI does");
    if (::access((run_dir() + "/rootfs/etc").c_str(), F_OK) != 0 ||
        ::access((run_dir() + "/id_ed25519").c_str(), R_OK) != 0)
        return core::fail(
            core::errc::not_found,
            fmt::format(
                "the test-host harness is not up ({} has no image or key): run the host tests "
                "through CTest (ctest -R hosts, whose hosts.setup runs it) or run '{} up {}' first",
                run_dir(), script(), run_id()));
    auto dir = temp_dir::create("tunnel-testhosts");
    if (!dir) return tl::unexpected(dir.error());

    std::vector<run_result> results(count);
    {
        std::vector<std::thread> starters;
        for (std::size_t i = 0; i < count; ++i)
            starters.emplace_back([&results, i] { results[i] = script_run({"start", run_id()}); });
        for (auto& t : starters) t.join();
    }
    std::vector<test_host> hosts;
    std::optional<core::error> failure;
    for (const auto& r : results) {
        std::istringstream lines(r.out);
        std::string line, last;
        while (std::getline(lines, line))
            if (!line.empty()) last = line;
        std::istringstream words(last);
        test_host h;
        if (!r.ok() || !(words >> h.name >> h.ip) || h.ip.rfind("10.213.79.", 0) != 0) {
            if (!failure) failure = script_error("starting a test host", r);
            if (!h.name.empty() && h.name.rfind("th", 0) == 0)
                hosts.push_back(std::move(h));  // so it gets removed
            continue;
        }
        h.key_path = run_dir() + "/id_ed25519";
        h.known_hosts_path = run_dir() + "/machines/" + h.name + "/known_hosts";
        hosts.push_back(std::move(h));
    }
    test_hosts fixture(std::move(*dir), std::move(hosts));
    if (failure)
        return tl::unexpected(*failure);  // the fixture's destructor removes what did start
    return fixture;
}

test_hosts& test_hosts::operator=(test_hosts&& other) noexcept {
    if (this != &other) {
        remove_all();
        dir_ = std::move(other.dir_);
        hosts_ = std::move(other.hosts_);
    }
    return *this;
}

test_hosts::~test_hosts() {
    remove_all();
}

void test_hosts::remove_all() noexcept {
    std::vector<std::thread> removers;
    for (const auto& h : hosts_)
        removers.emplace_back([name = h.name] { (void)script_run({"remove", name}); });
    for (auto& t : removers) t.join();
    hosts_.clear();
}

core::result<void> test_hosts::stop(std::size_t i, stop_mode mode) {
    auto r = script_run({"stop", hosts_.at(i).name, mode == stop_mode::fast ? "fast" : "orderly"});
    if (!r.ok()) return tl::unexpected(script_error("stopping " + hosts_[i].name, r));
    return {};
}

core::result<void> test_hosts::boot(std::size_t i) {
    auto r = script_run({"boot", hosts_.at(i).name});
    if (!r.ok()) return tl::unexpected(script_error("booting " + hosts_[i].name, r));
    return {};
}

core::result<void> test_hosts::restart(std::size_t i) {
    if (auto s = stop(i); !s) return s;
    return boot(i);
}

bool test_hosts::running(std::size_t i) const {
    auto r = script_run({"status", hosts_.at(i).name});
    return r.ok() && r.out.rfind("running", 0) == 0;
}

run_result test_hosts::ssh(std::size_t i, const std::string& command,
                           std::chrono::milliseconds timeout, const std::string& user) const {
    const auto& h = hosts_.at(i);
    run_options o;
    o.timeout = timeout;
    return run({"ssh",
                "-F",
                "/dev/null",
                "-i",
                h.key_path,
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "UserKnownHostsFile=" + h.known_hosts_path,
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=15",
                "-o",
                "LogLevel=ERROR",
                user + "@" + h.ip,
                command},
               o);
}

run_result test_hosts::exec(std::size_t i, std::vector<std::string> argv,
                            std::chrono::milliseconds timeout) const {
    argv.insert(argv.begin(), {"exec", hosts_.at(i).name, "--"});
    return script_run(std::move(argv), timeout);
}

std::vector<std::string> test_hosts::tunnel_flags(std::size_t i) const {
    const auto& h = hosts_.at(i);
    return {"-F",
            "/dev/null",
            "--private-key",
            h.key_path,
            "-o",
            "UserKnownHostsFile=" + h.known_hosts_path,
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes"};
}

std::string test_hosts::known_hosts_all() const {
    std::string text;
    for (const auto& h : hosts_) {
        auto kh = read_text_file(h.known_hosts_path);
        if (kh) text += *kh;
    }
    const auto path = dir_.file("known_hosts");
    (void)write_text_file(path, text, 0600);
    return path;
}

core::result<std::string> test_hosts::write_inventory(const std::string& group) const {
    std::string yaml = fmt::format("all:\n  children:\n    {}:\n      hosts:\n", group);
    for (const auto& h : hosts_)
        yaml += fmt::format(
            "        {}:\n          ansible_host: {}\n          ansible_user: {}\n"
            "          ansible_ssh_private_key_file: {}\n",
            h.name, h.ip, h.user, h.key_path);
    const auto path = dir_.file("inventory.yml");
    if (auto w = write_text_file(path, yaml); !w) return tl::unexpected(w.error());
    return path;
}

}  // namespace tunnel::test
