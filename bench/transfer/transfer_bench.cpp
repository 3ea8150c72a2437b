// bench/transfer: `tunnel cp` / `tunnel sync` vs OpenSSH sftp/scp and rsync,
// same sshd, same cipher (aes128-gcm@openssh.com on both sides; --defaults:
// each side's own default cipher, what users get), interleaved rounds,
// medians (shared/PEERS.md). --wan-rounds 0 / --sync-rounds 0 skip parts 2/3. Files live on tmpfs
// (/dev/shm) so the disk is not what is measured (ours fsyncs every file; sftp and scp do not).
//  1. 512 MiB upload and download on loopback: tunnel cp vs sftp put/get vs scp
//  2. the same upload through the test fault proxy's delay mode (10 ms RTT): vs sftp put
//  3. sync of 10,000 small files with nothing changed: tunnel sync vs rsync -a
// The last lines are the ratios: throughput ours/peer (higher is better) and
// time ours/peer for the sync (lower is better). --baseline PATH adds another
// tunnel binary (an older build) to the loopback rounds: before and after in
// one interleaved run, under the same load.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "support/fault_proxy.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"

extern char** environ;

namespace {

using namespace tunnel;
using bench::arg_int;
using bench::median;
namespace fs = std::filesystem;
using clk = std::chrono::steady_clock;
constexpr const char* cipher = "aes128-gcm@openssh.com";

// Runs argv with stdout/stderr to /dev/null (stderr kept on failure); wall seconds or -1.
double time_process(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
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
    double t = std::chrono::duration<double>(clk::now() - start).count();
    posix_spawn_file_actions_destroy(&fa);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fmt::print(stderr, "failed: {}\n", fmt::join(argv, " "));
        return -1;
    }
    return t;
}

bool arg_flag(int argc, char** argv, const char* name) {
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return true;
    return false;
}

void write_random(const std::string& path, std::size_t size) {
    std::ofstream out(path, std::ios::binary);
    std::mt19937_64 rng(42);
    std::vector<std::uint64_t> block(1 << 17);
    for (std::size_t done = 0; done < size; done += block.size() * 8) {
        for (auto& w : block) w = rng();
        out.write(reinterpret_cast<const char*>(block.data()),
                  static_cast<std::streamsize>(std::min(size - done, block.size() * 8)));
    }
}

// The first three fields of /proc/loadavg: how busy the machine was.
std::string loadavg() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

struct peer_run {
    std::string name;
    std::vector<std::string> argv;
    std::vector<double> times;
};

// Interleaved rounds: A B C A B C ...; `before` runs untimed before each.
void interleave(std::vector<peer_run>& runs, int rounds, const std::function<void()>& before) {
    for (int r = 0; r < rounds; ++r)
        for (auto& p : runs) {
            if (before) before();
            double t = time_process(p.argv);
            if (t > 0) p.times.push_back(t);
        }
}

}  // namespace

int main(int argc, char** argv) {
    const int size_mib = arg_int(argc, argv, "--size-mib", 512);
    const int rounds = arg_int(argc, argv, "--rounds", 3);
    const int wan_rounds = arg_int(argc, argv, "--wan-rounds", 2);
    const int files = arg_int(argc, argv, "--files", 10000);
    const int sync_rounds = arg_int(argc, argv, "--sync-rounds", 5);
    const std::string tunnel_bin = TUNNEL_BINARY;
    const std::string baseline_bin = bench::arg_text(argc, argv, "--baseline", "");
    // --defaults: no cipher forced anywhere (the server keeps its own list).
    const bool defaults = arg_flag(argc, argv, "--defaults");
    const std::string label = defaults ? "each side's default cipher" : cipher;
    auto force = [&](std::vector<std::string> args) {
        return defaults ? std::vector<std::string>{} : args;
    };

    test::sshd_options so;
    so.max_sessions = 64;
    so.extra_config = {"LogLevel INFO"};
    if (!defaults) so.extra_config.push_back(std::string("Ciphers ") + cipher);
    auto sshd = test::sshd_fixture::start(so);
    if (!sshd) {
        fmt::print(stderr, "cannot start sshd: {}\n", sshd.error().message);
        return 1;
    }
    auto home = test::temp_dir::create("tunnel-bench-home");
    setenv("HOME", home->path().c_str(), 1);
    unsetenv("SSH_AUTH_SOCK");
    auto delayed = test::fault_proxy::start(sshd->port());
    if (!delayed) {
        fmt::print(stderr, "cannot start the delay proxy: {}\n", delayed.error().message);
        return 1;
    }
    auto& proxy = **delayed;
    proxy.set_delay(std::chrono::microseconds(5000));

    // One known_hosts for the server and the proxy in front of it.
    const std::string kh = home->file("known_hosts");
    {
        std::ofstream k(kh);
        k << "[127.0.0.1]:" << sshd->port() << " " << sshd->host_pubkey() << "\n";
        k << "[127.0.0.1]:" << proxy.port() << " " << sshd->host_pubkey() << "\n";
    }
    char shm_template[] = "/dev/shm/tunnel-bench-XXXXXX";
    if (!::mkdtemp(shm_template)) {
        fmt::print(stderr, "cannot create a directory in /dev/shm\n");
        return 1;
    }
    const std::string data = shm_template;
    struct cleanup_dir {
        std::string path;
        ~cleanup_dir() { fs::remove_all(path); }
    } cleanup{data};

    auto ssh_opts = [&](const char* port_flag, std::uint16_t port) {
        return std::vector<std::string>{"-F",      "/dev/null",
                                        port_flag, std::to_string(port),
                                        "-i",      sshd->client_key_path(),
                                        "-o",      "UserKnownHostsFile=" + kh,
                                        "-o",      "GlobalKnownHostsFile=/dev/null",
                                        "-o",      "BatchMode=yes"};
    };
    auto cmd = [](std::vector<std::string> head, const std::vector<std::string>& mid,
                  std::vector<std::string> tail) {
        head.insert(head.end(), mid.begin(), mid.end());
        head.insert(head.end(), tail.begin(), tail.end());
        return head;
    };
    const std::string src = data + "/src.bin";
    const std::string dst = data + "/dst.bin";
    const std::string remote_src = "root@127.0.0.1:" + src;
    const std::string remote_dst = "root@127.0.0.1:" + dst;
    write_random(src, static_cast<std::size_t>(size_mib) << 20);
    auto batch = [&](const std::string& name, const std::string& line) {
        std::ofstream(data + "/" + name) << line << "\n";
        return data + "/" + name;
    };
    const std::string put_batch = batch("put.batch", "put " + src + " " + dst);
    const std::string get_batch = batch("get.batch", "get " + src + " " + dst);
    auto rm_dst = [&] { fs::remove(dst); };
    const double mib = size_mib;

    auto tunnel_cp = [&](std::uint16_t port, std::string from, std::string to,
                         const std::string& bin = {}) {
        auto tail = force({"-o", std::string("Ciphers=") + cipher});
        tail.insert(tail.end(), {from, to});
        return cmd({bin.empty() ? tunnel_bin : bin, "cp"}, ssh_opts("-P", port), tail);
    };
    auto sftp = [&](std::uint16_t port, const std::string& b) {
        auto head = std::vector<std::string>{"sftp", "-q", "-b", b};
        for (auto& a : force({"-c", cipher})) head.push_back(a);
        return cmd(head, ssh_opts("-P", port), {"root@127.0.0.1"});
    };
    auto scp = [&](std::string from, std::string to) {
        auto head = std::vector<std::string>{"scp", "-q"};
        for (auto& a : force({"-c", cipher})) head.push_back(a);
        return cmd(head, ssh_opts("-P", sshd->port()), {from, to});
    };

    fmt::print("transfer bench: {} MiB, {} rounds, {}, files on tmpfs; loadavg {}\n", size_mib,
               rounds, label, loadavg());

    // 1. Loopback upload and download.
    std::vector<peer_run> up = {{"tunnel cp", tunnel_cp(sshd->port(), src, remote_dst), {}},
                                {"sftp put", sftp(sshd->port(), put_batch), {}},
                                {"scp", scp(src, remote_dst), {}}};
    // With --defaults, also tunnel with chacha20-poly1305 forced: the cipher
    // it used by default before cipher_order.hpp (before/after in one run).
    auto tunnel_chacha = [&](std::string from, std::string to) {
        return cmd({tunnel_bin, "cp"}, ssh_opts("-P", sshd->port()),
                   {"-o", "Ciphers=chacha20-poly1305@openssh.com", from, to});
    };
    if (defaults) up.push_back({"tunnel cp (chacha20)", tunnel_chacha(src, remote_dst), {}});
    if (!baseline_bin.empty())
        up.push_back(
            {"tunnel cp (baseline)", tunnel_cp(sshd->port(), src, remote_dst, baseline_bin), {}});
    interleave(up, rounds, rm_dst);
    std::vector<peer_run> down = {{"tunnel cp", tunnel_cp(sshd->port(), remote_src, dst), {}},
                                  {"sftp get", sftp(sshd->port(), get_batch), {}},
                                  {"scp", scp(remote_src, dst), {}}};
    if (defaults) down.push_back({"tunnel cp (chacha20)", tunnel_chacha(remote_src, dst), {}});
    if (!baseline_bin.empty())
        down.push_back(
            {"tunnel cp (baseline)", tunnel_cp(sshd->port(), remote_src, dst, baseline_bin), {}});
    interleave(down, rounds, rm_dst);
    auto rate = [&](const peer_run& p) { return p.times.empty() ? 0.0 : mib / median(p.times); };
    for (auto* set : {&up, &down})
        for (const auto& p : *set)
            fmt::print("  {:8} {:20} {:8.1f} MiB/s  (median of {})\n",
                       set == &up ? "upload" : "download", p.name, rate(p), p.times.size());

    // 2. Upload through the 10 ms RTT proxy.
    std::vector<peer_run> wan = {{"tunnel cp", tunnel_cp(proxy.port(), src, remote_dst), {}},
                                 {"sftp put", sftp(proxy.port(), put_batch), {}}};
    interleave(wan, wan_rounds, rm_dst);
    if (wan_rounds > 0)
        for (const auto& p : wan)
            fmt::print("  upload 10ms RTT {:10} {:8.1f} MiB/s\n", p.name, rate(p));

    // 3. Sync of many small files with nothing changed.
    std::vector<peer_run> sync;
    if (sync_rounds > 0) {
        const std::string tree = data + "/tree";
        const std::string mirror = data + "/mirror";
        for (int i = 0; i < files; ++i) {
            std::string dir = fmt::format("{}/d{:03}", tree, i / 100);
            if (i % 100 == 0) fs::create_directories(dir);
            std::ofstream(fmt::format("{}/f{:05}.txt", dir, i))
                << std::string(100 + i % 50, 'a' + i % 26);
        }
        const std::string ssh_cmd = fmt::format(
            "ssh -F /dev/null -p {} -i {} -o UserKnownHostsFile={} -o "
            "GlobalKnownHostsFile=/dev/null "
            "-o BatchMode=yes{}",
            sshd->port(), sshd->client_key_path(), kh,
            defaults ? "" : std::string(" -c ") + cipher);
        std::vector<std::string> rsync = {"rsync", "-a",       "-e",
                                          ssh_cmd, tree + "/", "root@127.0.0.1:" + mirror + "/"};
        std::vector<std::string> ours =
            cmd({tunnel_bin, "sync"}, ssh_opts("-p", sshd->port()), [&] {
                auto tail = force({"-o", std::string("Ciphers=") + cipher});
                tail.insert(tail.end(), {tree, "root@127.0.0.1:" + mirror});
                return tail;
            }());
        if (time_process(rsync) < 0 || time_process(ours) < 0)
            return 1;  // populate; both then see nothing to do
        sync = {{"tunnel sync", ours, {}}, {"rsync -a", rsync, {}}};
        interleave(sync, sync_rounds, {});
        for (const auto& p : sync)
            fmt::print("  sync {} files, nothing changed: {:12} {:7.1f} ms\n", files, p.name,
                       median(p.times) * 1000);
    }

    fmt::print("loadavg at the end {}\n", loadavg());
    auto best = [&](const std::vector<peer_run>& set) {
        return std::max(rate(set[1]), rate(set[2]));
    };
    fmt::print("ratio upload   tunnel/best(sftp,scp) {:.2f}  ({}, loopback, higher is better)\n",
               rate(up[0]) / best(up), label);
    fmt::print("ratio download tunnel/best(sftp,scp) {:.2f}  ({}, loopback, higher is better)\n",
               rate(down[0]) / best(down), label);
    if (!baseline_bin.empty()) {
        fmt::print("ratio upload   baseline/best(sftp,scp) {:.2f}\n", rate(up.back()) / best(up));
        fmt::print("ratio download baseline/best(sftp,scp) {:.2f}\n",
                   rate(down.back()) / best(down));
    }
    if (wan_rounds > 0)
        fmt::print("ratio upload 10ms RTT tunnel/sftp    {:.2f}  ({}, higher is better)\n",
                   rate(wan[0]) / rate(wan[1]), label);
    if (sync_rounds > 0)
        fmt::print("ratio sync nothing-changed time tunnel/rsync {:.2f}  (lower is better)\n",
                   median(sync[0].times) / median(sync[1].times));
    return 0;
}
