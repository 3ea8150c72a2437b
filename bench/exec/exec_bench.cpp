// bench/exec: tunnel vs OpenSSH on a local sshd, interleaved, medians (shared/PEERS.md).
//  (a) a fresh `tunnel exec HOST true` process vs a fresh `ssh HOST true`
//  (b) `true` on one warm pooled session through libtunnel vs `ssh` over a ControlMaster
// The last two lines are the ratios ours/peer (lower is better).
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "core/asio.hpp"
#include "core/spawn.hpp"
#include "exec/executor.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"

extern char** environ;

namespace {

using namespace tunnel;
using bench::arg_int;
using bench::median;
using clk = std::chrono::steady_clock;

double ms_since(clk::time_point t) {
    return std::chrono::duration<double, std::milli>(clk::now() - t).count();
}

// Runs argv to completion with stdio to /dev/null; returns wall milliseconds (or -1 on failure).
double time_process(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    auto start = clk::now();
    pid_t pid;
    if (posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ) != 0) return -1;
    int status = 0;
    waitpid(pid, &status, 0);
    double t = ms_since(start);
    posix_spawn_file_actions_destroy(&fa);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? t : -1;
}

}  // namespace

int main(int argc, char** argv) {
    const int fresh_runs = arg_int(argc, argv, "--fresh-runs", 30);
    const int warm_runs = arg_int(argc, argv, "--warm-runs", 500);

    test::sshd_options so;
    so.max_sessions = 64;
    so.extra_config = {"LogLevel INFO"};
    auto sshd = test::sshd_fixture::start(so);
    if (!sshd) {
        fmt::print(stderr, "cannot start sshd: {}\n", sshd.error().message);
        return 1;
    }
    auto home = test::temp_dir::create("tunnel-bench-home");
    setenv("HOME", home->path().c_str(), 1);  // neither tool reads the user's ~/.ssh
    unsetenv("SSH_AUTH_SOCK");
    const std::string port = std::to_string(sshd->port());
    const std::string kh = "UserKnownHostsFile=" + sshd->known_hosts_path();
    const std::vector<std::string> common = {"-p", port,
                                             "-i", sshd->client_key_path(),
                                             "-o", kh,
                                             "-o", "GlobalKnownHostsFile=/dev/null",
                                             "-o", "BatchMode=yes"};
    auto with = [&](std::vector<std::string> head, std::vector<std::string> tail) {
        head.insert(head.end(), common.begin(), common.end());
        head.insert(head.end(), tail.begin(), tail.end());
        return head;
    };
    // The same cipher on both sides whatever their defaults (ours may prefer AES-GCM).
    const std::string cipher = "Ciphers=chacha20-poly1305@openssh.com";
    const auto ours_fresh =
        with({TUNNEL_BINARY, "exec", "-o", cipher}, {"root@127.0.0.1", "--", "true"});
    const auto ssh_fresh =
        with({"ssh", "-o", "IdentitiesOnly=yes", "-o", cipher}, {"root@127.0.0.1", "true"});
    // OpenSSH 9.2 defaults to the post-quantum sntrup761x25519 key exchange, libssh 0.10
    // to curve25519: also time ssh with our KEX so the protocol cost is compared like for like.
    const auto ssh_fresh_kex = with(
        {"ssh", "-o", "IdentitiesOnly=yes", "-o", cipher, "-o", "KexAlgorithms=curve25519-sha256"},
        {"root@127.0.0.1", "true"});

    // (a) fresh processes, interleaved.
    double load_before[3] = {};
    (void)getloadavg(load_before, 3);
    std::vector<double> a_ours, a_ssh, a_ssh_kex;
    time_process(ours_fresh);
    time_process(ssh_fresh);  // warm the page cache for both
    for (int i = 0; i < fresh_runs; ++i) {
        double o = time_process(ours_fresh), s = time_process(ssh_fresh),
               k = time_process(ssh_fresh_kex);
        if (o < 0 || s < 0 || k < 0) {
            fmt::print(stderr,
                       "a run failed (tunnel {:.1f} ms, ssh {:.1f} ms, ssh same kex {:.1f} ms)\n",
                       o, s, k);
            return 1;
        }
        a_ours.push_back(o);
        a_ssh.push_back(s);
        a_ssh_kex.push_back(k);
    }

    // (b) warm: libtunnel on one pooled session vs ssh through a ControlMaster.
    const std::string cm = "ControlPath=" + home->path() + "/cm-%C";
    const auto ssh_mux = with({"ssh", "-o", "IdentitiesOnly=yes", "-o", "ControlMaster=auto", "-o",
                               cm, "-o", "ControlPersist=60"},
                              {"root@127.0.0.1", "true"});
    if (time_process(ssh_mux) < 0) {  // opens the master
        fmt::print(stderr, "cannot open the ssh ControlMaster\n");
        return 1;
    }
    asio::io_context io;
    pool::session_pool pool(io.get_executor());
    pool::breaker_registry breakers({5, std::chrono::seconds(30)});
    exec::executor runner(pool, breakers);
    ssh::connect_options target;
    target.host = "127.0.0.1";
    target.port = sshd->port();
    target.user = "root";
    target.use_agent = false;
    target.identity_files = {sshd->client_key_path()};
    target.user_known_hosts_files = {sshd->known_hosts_path()};
    exec::command cmd;
    cmd.argv = {"true"};
    std::vector<double> b_ours, b_ssh;
    bool failed = false;
    core::spawn(
        io,
        [&]() -> asio::awaitable<void> {
            (void)co_await runner.run(target, cmd);  // connect once: the pool keeps it warm
            for (int i = 0; i < warm_runs && !failed; ++i) {
                auto t = clk::now();
                auto r = co_await runner.run(target, cmd);
                b_ours.push_back(ms_since(t));
                double s = time_process(ssh_mux);
                b_ssh.push_back(s);
                if (!r || r->exit_status != 0 || s < 0) failed = true;
            }
        },
        "exec benchmark");
    io.run();
    (void)test::run(
        {"ssh", "-o", cm, "-O", "exit", "-p", port, "root@127.0.0.1"});  // close the master
    if (failed) {
        fmt::print(stderr, "a warm run failed\n");
        return 1;
    }

    double load_after[3] = {};
    (void)getloadavg(load_after, 3);
    const double ak = median(a_ssh_kex);
    const double ao = median(a_ours), as = median(a_ssh), bo = median(b_ours), bs = median(b_ssh);
    fmt::print(
        "cipher: chacha20-poly1305 on both sides (fresh runs), sshd on 127.0.0.1; load average "
        "{:.2f} before, {:.2f} after (/proc/loadavg, 1 min)\n",
        load_before[0], load_after[0]);
    fmt::print(
        "(a) fresh process, {} runs each: tunnel exec median {:.2f} ms, ssh median {:.2f} ms, "
        "ssh -o KexAlgorithms=curve25519-sha256 median {:.2f} ms\n",
        fresh_runs, ao, as, ak);
    fmt::print("    fastest run: tunnel exec {:.2f} ms, ssh {:.2f} ms, ssh same KEX {:.2f} ms\n",
               *std::min_element(a_ours.begin(), a_ours.end()),
               *std::min_element(a_ssh.begin(), a_ssh.end()),
               *std::min_element(a_ssh_kex.begin(), a_ssh_kex.end()));
    fmt::print(
        "(b) warm session, {} runs each: libtunnel pooled median {:.3f} ms, ssh ControlMaster "
        "median {:.3f} ms\n",
        warm_runs, bo, bs);
    fmt::print("exec fresh ratio, same key exchange (tunnel/ssh curve25519): {:.2f}\n", ao / ak);
    fmt::print("exec fresh ratio (tunnel/ssh): {:.2f}\n", ao / as);
    fmt::print("exec warm ratio (tunnel pooled/ssh ControlMaster): {:.2f}\n", bo / bs);
    return 0;
}
