// bench/link_exec: fresh `tunnel exec HOST true` processes through a running
// `tunnel up` (its warm session, over the control socket) against fresh
// `ssh HOST true` processes through an OpenSSH ControlMaster (ControlPersist)
// to the same sshd on 127.0.0.1 (issue 13: target <= 0.5x the time).
// Both masters are up before timing starts; rounds of --batch processes of
// each tool alternate (which goes first alternates too) until --runs each.
// Reported: total wall time per tool, per-process median and p90, and a
// direct `tunnel exec` (no manager: TUNNEL_CONTROL=none) for reference.
// Then `tunnel cp` (--cp-runs fresh processes of a 64 KiB file, --cp-big-runs
// of a --cp-big-mib file, uploads) through the manager against direct, and
// `scp` through the same ControlMaster for the small file.
// The last line is the ratio tunnel-through-manager / ssh-ControlMaster.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"

namespace {

using namespace tunnel;
using bench::arg_int;
using bench::median;
using bench::ms_since;
using bench::quantile;
using bench::time_process;
using clk = std::chrono::steady_clock;

}  // namespace

int main(int argc, char** argv) {
    const int runs = arg_int(argc, argv, "--runs", 500);
    const int batch = std::max(1, arg_int(argc, argv, "--batch", 50));
    const int direct_runs = arg_int(argc, argv, "--direct-runs", 30);
    const int cp_runs = arg_int(argc, argv, "--cp-runs", 30);
    const int cp_big_runs = arg_int(argc, argv, "--cp-big-runs", 3);
    const int cp_big_mib = arg_int(argc, argv, "--cp-big-mib", 256);

    test::sshd_options so;
    so.max_sessions = 64;
    auto sshd = test::sshd_fixture::start(so);
    if (!sshd) {
        fmt::print(stderr, "cannot start sshd: {}\n", sshd.error().message);
        return 1;
    }
    auto home = test::temp_dir::create("tunnel-link-exec-bench");
    if (!home) return 1;
    setenv("HOME", home->path().c_str(), 1);  // neither tool reads the user's ~/.ssh
    unsetenv("SSH_AUTH_SOCK");
    const std::string port = std::to_string(sshd->port());
    const std::string socket = home->file("control.sock");
    setenv("TUNNEL_CONTROL", socket.c_str(), 1);

    const auto links = home->file("links.yaml");
    if (!test::write_text_file(
            links, fmt::format("links:\n  db:\n    target: root@127.0.0.1\n    options: {{Port: "
                               "{}, IdentityFile: {}, IdentitiesOnly: yes, UserKnownHostsFile: "
                               "{}, GlobalKnownHostsFile: /dev/null}}\n    keepalive: 30s\n"
                               "control: {{socket: {}}}\n",
                               port, sshd->client_key_path(), sshd->known_hosts_path(), socket))) {
        fmt::print(stderr, "cannot write {}\n", links);
        return 1;
    }
    test::spawn_options up_opts;
    up_opts.stderr_path = home->file("up.log");
    auto up = test::spawn({TUNNEL_BINARY, "up", "-F", "/dev/null", links}, up_opts);
    if (!up) {
        fmt::print(stderr, "cannot start tunnel up: {}\n", up.error().message);
        return 1;
    }

    const std::vector<std::string> common = {"-F", "/dev/null",
                                             "-p", port,
                                             "-i", sshd->client_key_path(),
                                             "-o", "IdentitiesOnly=yes",
                                             "-o", "UserKnownHostsFile=" + sshd->known_hosts_path(),
                                             "-o", "GlobalKnownHostsFile=/dev/null",
                                             "-o", "BatchMode=yes"};
    auto with = [&](std::vector<std::string> head, std::vector<std::string> tail) {
        head.insert(head.end(), common.begin(), common.end());
        head.insert(head.end(), tail.begin(), tail.end());
        return head;
    };
    const auto ours = with({TUNNEL_BINARY, "exec"}, {"root@127.0.0.1", "--", "true"});
    const std::string cm = "ControlPath=" + home->path() + "/cm-%C";
    const auto ssh_mux =
        with({"ssh", "-o", "ControlMaster=auto", "-o", cm, "-o", "ControlPersist=600"},
             {"root@127.0.0.1", "true"});

    // Warm both: the manager's link up (an exec through it succeeds), the ControlMaster open.
    bool warm = false;
    for (int i = 0; i < 200 && !warm; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        warm = ::access(socket.c_str(), F_OK) == 0 && time_process(ours) >= 0;
    }
    if (!warm || time_process(ssh_mux) < 0) {
        fmt::print(stderr, "could not warm up both masters (see {})\n", home->file("up.log"));
        return 1;
    }

    double load_before[3] = {};
    (void)getloadavg(load_before, 3);
    std::vector<double> t_ours, t_ssh;
    double total_ours = 0, total_ssh = 0;
    int failures = 0;
    for (int round = 0; static_cast<int>(t_ours.size()) < runs; ++round) {
        const int n = std::min(batch, runs - static_cast<int>(t_ours.size()));
        auto one = [&](const std::vector<std::string>& cmd, std::vector<double>& into,
                       double& total) {
            const auto t0 = clk::now();
            for (int i = 0; i < n; ++i) {
                const double t = time_process(cmd);
                if (t < 0) ++failures;
                into.push_back(t < 0 ? 0 : t);
            }
            total += ms_since(t0);
        };
        if (round % 2 == 0) {
            one(ours, t_ours, total_ours);
            one(ssh_mux, t_ssh, total_ssh);
        } else {
            one(ssh_mux, t_ssh, total_ssh);
            one(ours, t_ours, total_ours);
        }
    }
    // Reference: the same exec without the manager.
    std::vector<double> t_direct;
    setenv("TUNNEL_CONTROL", "none", 1);
    for (int i = 0; i < direct_runs; ++i) t_direct.push_back(time_process(ours));
    setenv("TUNNEL_CONTROL", socket.c_str(), 1);

    // tunnel cp: a small file (startup + SFTP session) and a big one (throughput).
    const auto small = home->file("small.bin");
    const auto big = home->file("big.bin");
    (void)test::write_text_file(small, std::string(64 * 1024, 'x'));
    {
        std::string mib(1 << 20, '\0');
        for (std::size_t i = 0; i < mib.size(); ++i) mib[i] = static_cast<char>(i * 7919 >> 3);
        std::string all;
        for (int i = 0; i < cp_big_mib; ++i) all += mib;
        (void)test::write_text_file(big, all);
    }
    auto cp_cmd = [&](const std::string& file) {
        std::vector<std::string> cmd{TUNNEL_BINARY, "cp"};
        for (const auto& c : common) cmd.push_back(c == "-p" ? "-P" : c);
        cmd.push_back(file);
        cmd.push_back("root@127.0.0.1:" + home->file("far.bin"));
        return cmd;
    };
    std::vector<std::string> scp_mux{"scp", "-q", "-o", cm};
    for (const auto& c : common) scp_mux.push_back(c == "-p" ? "-P" : c);
    scp_mux.push_back(small);
    scp_mux.push_back("root@127.0.0.1:" + home->file("far.bin"));
    std::vector<double> cp_small_mgr, cp_small_direct, scp_small, cp_big_mgr, cp_big_direct;
    auto timed = [&](const std::vector<std::string>& cmd, const char* control,
                     std::vector<double>& into) {
        setenv("TUNNEL_CONTROL", control, 1);
        const double t = time_process(cmd);
        if (t < 0) ++failures;
        into.push_back(t < 0 ? 0 : t);
    };
    for (int i = 0; i < cp_runs; ++i) {
        timed(cp_cmd(small), socket.c_str(), cp_small_mgr);
        timed(cp_cmd(small), "none", cp_small_direct);
        timed(scp_mux, "none", scp_small);
    }
    for (int i = 0; i < cp_big_runs; ++i) {
        timed(cp_cmd(big), socket.c_str(), cp_big_mgr);
        timed(cp_cmd(big), "none", cp_big_direct);
    }
    setenv("TUNNEL_CONTROL", socket.c_str(), 1);
    double load_after[3] = {};
    (void)getloadavg(load_after, 3);

    (void)time_process(
        with({"ssh", "-o", cm, "-O", "exit"}, {"root@127.0.0.1"}));  // stop the master
    up->terminate();

    fmt::print("load average before {:.2f}, after {:.2f}; {} failed runs\n", load_before[0],
               load_after[0], failures);
    fmt::print(
        "tunnel exec through tunnel up: {} runs, total {:.0f} ms, median {:.2f} ms, p90 "
        "{:.2f} ms\n",
        t_ours.size(), total_ours, median(t_ours), quantile(t_ours, 0.9));
    fmt::print(
        "ssh through ControlMaster:     {} runs, total {:.0f} ms, median {:.2f} ms, p90 "
        "{:.2f} ms\n",
        t_ssh.size(), total_ssh, median(t_ssh), quantile(t_ssh, 0.9));
    fmt::print("tunnel exec direct (no manager): {} runs, median {:.2f} ms\n", t_direct.size(),
               median(t_direct));
    auto mibs = [&](const std::vector<double>& t) {
        return t.empty() || median(t) <= 0 ? 0.0 : cp_big_mib * 1000.0 / median(t);
    };
    fmt::print("tunnel cp 64 KiB through tunnel up: {} runs, median {:.2f} ms\n",
               cp_small_mgr.size(), median(cp_small_mgr));
    fmt::print("tunnel cp 64 KiB direct:            {} runs, median {:.2f} ms\n",
               cp_small_direct.size(), median(cp_small_direct));
    fmt::print("scp 64 KiB through ControlMaster:   {} runs, median {:.2f} ms\n", scp_small.size(),
               median(scp_small));
    fmt::print("tunnel cp {} MiB through tunnel up: {} runs, median {:.0f} ms ({:.0f} MiB/s)\n",
               cp_big_mib, cp_big_mgr.size(), median(cp_big_mgr), mibs(cp_big_mgr));
    fmt::print("tunnel cp {} MiB direct:            {} runs, median {:.0f} ms ({:.0f} MiB/s)\n",
               cp_big_mib, cp_big_direct.size(), median(cp_big_direct), mibs(cp_big_direct));
    fmt::print("cp 64 KiB through manager ratio (tunnel up / direct, median): {:.2f}\n",
               median(cp_small_mgr) / median(cp_small_direct));
    fmt::print("exec through manager ratio (tunnel up / ssh ControlMaster, total time): {:.2f}\n",
               total_ours / total_ssh);
    return failures == 0 ? 0 : 1;
}
