// bench/deploy: a rolling deploy to 4 hosts (batch 2) of a 20 MiB tar.gz of
// random data with one HTTP health check per host, `tunnel deploy` vs the
// equivalent `ansible-playbook` (serial: 2, unarchive into releases/<id>,
// file state=link for current, uri), as wall time; interleaved (the order
// alternates every round), medians (shared/PEERS.md). The hosts are real
// sshd servers on 127.0.0.1 (deploy_hosts.hpp).
//
// Every measured round deploys a new artifact (new random bytes), so both
// tools upload and unpack it on every host; a tool's run is checked after
// the fact (every host's current/health.txt is this round's). Ansible runs
// as people run it: pipelining on, ControlMaster/ControlPersist (its
// defaults) but without its default -C (the data is random: compression
// only costs it CPU), no fact gathering, forks 4. Its ControlMasters are
// closed after every run, so each run starts from fresh connections like
// tunnel's. Both tools use the same key, known_hosts, -F /dev/null and the
// same cipher (--cipher, default chacha20-poly1305, both tools' default).
// Then --rerun-rounds runs with the artifact unchanged: tunnel skips the
// upload (checksum) and makes a new release from its cached copy; Ansible
// re-runs the play with the same release id (unarchive copies the archive
// again and finds the tree unchanged).
//   deploy_bench [--rounds 5] [--hosts 4] [--mib 20] [--cipher C] [--rerun-rounds 3]
//   deploy_bench --hold SECONDS   start the hosts, print both commands and the
//                                 artifact's path, wait (to profile one tool by hand)
//                                 until SECONDS pass or DIR/stop exists
// The last line is the ratio ours/peer (lower is better).
#include <stdlib.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_support.hpp"
#include "core/shell_quote.hpp"
#include "deploy_hosts.hpp"
#include "support/process.hpp"

namespace {

using namespace tunnel;
using bench::arg_int;
using bench::arg_text;
using bench::median;
using clk = std::chrono::steady_clock;
namespace fs = std::filesystem;

const char* deploy_yaml = R"(app: bench
root: "{{ deploy_root }}"
artifact: app.tar.gz
keep_releases: 5
health:
  - {command: "curl -fsS -o /dev/null http://127.0.0.1:$HTTP_PORT/tunnel/current/health.txt", timeout: 10s, interval: 100ms}
strategy: {type: rolling, batch: 2}
)";

const char* playbook = R"(- hosts: web
  serial: 2
  gather_facts: false
  tasks:
    - name: release directory
      ansible.builtin.file: {path: "{{ deploy_root }}/releases/{{ release_id }}", state: directory, mode: "0755"}
    - name: unpack the artifact
      ansible.builtin.unarchive: {src: "{{ artifact }}", dest: "{{ deploy_root }}/releases/{{ release_id }}"}
    - name: switch current
      ansible.builtin.file: {src: "{{ deploy_root }}/releases/{{ release_id }}", dest: "{{ deploy_root }}/current", state: link, force: true}
    - name: health check
      ansible.builtin.uri: {url: "http://127.0.0.1:{{ http_port }}/ansible/current/health.txt", status_code: 200}
)";

// DIR/app.tar.gz: health.txt (`marker`), app.bin (40%) and 12 asset files,
// `mib` MiB of random bytes in all. Returns false when tar fails.
bool make_artifact(const test::temp_dir& dir, int mib, const std::string& marker) {
    const auto src = dir.file("artifact-src");
    std::error_code ec;
    fs::remove_all(src, ec);
    fs::create_directories(src + "/assets", ec);
    std::mt19937_64 rng{std::random_device{}()};
    auto write_random = [&](const std::string& path, std::size_t bytes) {
        std::vector<std::uint64_t> buf((bytes + 7) / 8);
        for (auto& w : buf) w = rng();
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(bytes));
    };
    const std::size_t total = static_cast<std::size_t>(mib) << 20;
    const std::size_t bin = total * 2 / 5, asset = (total - bin) / 12;
    write_random(src + "/app.bin", bin);
    for (int i = 0; i < 12; ++i) write_random(fmt::format("{}/assets/a{:02d}.dat", src, i), asset);
    std::ofstream(src + "/health.txt") << marker << "\n";
    auto r = test::run({"tar", "-I", "gzip -1", "-cf", dir.file("app.tar.gz"), "-C", src, "."},
                       {{}, std::nullopt, "", std::chrono::milliseconds(120'000)});
    fs::remove_all(src, ec);
    if (!r.ok()) fmt::print(stderr, "tar failed: {}\n", r.describe());
    return r.ok();
}

struct timed_run {
    double ms = -1;
    double cpu_s = 0;  // user + system of the tool and the children it waited for
    test::run_result result;
};

double children_cpu_seconds() {
    rusage u{};
    (void)getrusage(RUSAGE_CHILDREN, &u);
    auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
    return secs(u.ru_utime) + secs(u.ru_stime);
}

timed_run time_run(const std::vector<std::string>& argv, const test::run_options& o) {
    const double cpu = children_cpu_seconds();
    const auto start = clk::now();
    timed_run t;
    t.result = test::run(argv, o);
    t.ms = std::chrono::duration<double, std::milli>(clk::now() - start).count();
    t.cpu_s = children_cpu_seconds() - cpu;
    return t;
}

// Every host's TOOL/current/health.txt holds `marker`; else says which does not.
bool all_on(const bench::deploy_hosts& hosts, const std::string& tool, const std::string& marker) {
    for (std::size_t i = 0; i < hosts.hosts().size(); ++i) {
        auto text = test::read_text_file(hosts.root(i, tool) + "/current/health.txt");
        if (!text || *text != marker + "\n") {
            fmt::print(stderr, "{}: {} is not on the new release (health.txt: {})\n", tool,
                       hosts.hosts()[i].name, text ? *text : text.error().message);
            return false;
        }
    }
    return true;
}

// tunnel's --json report says every host is deployed and whether each uploaded.
bool tunnel_ok(const timed_run& t, bool want_upload) {
    auto j = nlohmann::json::parse(t.result.out, nullptr, false);
    bool ok = t.result.ok() && !j.is_discarded() && j.value("ok", false);
    if (ok)
        for (const auto& h : j["hosts"])
            ok = ok && h.value("status", "") == "deployed" &&
                 h.value("uploaded", !want_upload) == want_upload;
    if (!ok)
        fmt::print(stderr, "tunnel deploy failed or did not {}upload: {}\n{}\n",
                   want_upload ? "" : "skip the ", t.result.describe(), t.result.out);
    return ok;
}

bool ansible_ok(const timed_run& t, bool want_unchanged) {
    bool ok = t.result.ok() && t.result.out.find("failed=0") != std::string::npos &&
              t.result.out.find("failed=1") == std::string::npos;
    if (want_unchanged)
        ok = ok && t.result.out.find(" changed=0 ") != std::string::npos &&
             t.result.out.find("changed=1") == std::string::npos &&
             t.result.out.find("changed=2") == std::string::npos;
    if (!ok)
        fmt::print(stderr, "ansible-playbook failed{}: {}\n{}\n",
                   want_unchanged ? " or changed something" : "", t.result.describe(),
                   t.result.out);
    return ok;
}

// Closes Ansible's ControlMasters (not timed), so its next run connects afresh.
void close_masters(const std::string& control_dir) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(control_dir, ec))
        (void)test::run({"ssh", "-o", "ControlPath=" + entry.path().string(), "-O", "exit", "x"});
}

std::string loadavg() {
    double l[3] = {};
    if (getloadavg(l, 3) != 3) return "?";
    return fmt::format("{:.2f} {:.2f} {:.2f}", l[0], l[1], l[2]);
}

}  // namespace

int main(int argc, char** argv) {
    const int rounds = arg_int(argc, argv, "--rounds", 5);
    const int host_count = arg_int(argc, argv, "--hosts", 4);
    const int mib = arg_int(argc, argv, "--mib", 20);
    const int reruns = arg_int(argc, argv, "--rerun-rounds", 3);
    const std::string cipher = arg_text(argc, argv, "--cipher", "chacha20-poly1305@openssh.com");

    auto dir = test::temp_dir::create("tunnel-deploy-bench");
    if (!dir) return 1;
    setenv("HOME", dir->path().c_str(), 1);  // no tool reads the user's ~/.ssh or ~/.ansible
    unsetenv("SSH_AUTH_SOCK");
    bench::children procs(*dir);
    auto hosts = bench::deploy_hosts::start(*dir, procs, host_count);
    if (!hosts) return 1;

    const std::string key = hosts->client_key(), kh = hosts->known_hosts_path();
    const std::string control_dir = dir->file("ansible-cp");
    const std::string ssh_args = fmt::format(
        "-F /dev/null -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o "
        "GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o Ciphers={}",
        kh, cipher);
    (void)test::write_text_file(dir->file("tunnel.ini"), hosts->ini_inventory("tunnel", {}));
    (void)test::write_text_file(
        dir->file("ansible.ini"),
        hosts->ini_inventory("ansible", {"ansible_ssh_private_key_file=" + key,
                                         "ansible_ssh_common_args='" + ssh_args + "'",
                                         "ansible_python_interpreter=/usr/bin/python3"}));
    (void)test::write_text_file(dir->file("deploy.yaml"), deploy_yaml);
    (void)test::write_text_file(dir->file("play.yml"), playbook);

    const std::string forks = std::to_string(host_count);
    const std::vector<std::string> ours{TUNNEL_BINARY,
                                        "deploy",
                                        dir->file("deploy.yaml"),
                                        "-i",
                                        dir->file("tunnel.ini"),
                                        "--private-key",
                                        key,
                                        "-F",
                                        "/dev/null",
                                        "-o",
                                        "UserKnownHostsFile=" + kh,
                                        "-o",
                                        "GlobalKnownHostsFile=/dev/null",
                                        "-o",
                                        "StrictHostKeyChecking=yes",
                                        "-o",
                                        "BatchMode=yes",
                                        "-o",
                                        "Ciphers=" + cipher,
                                        "--forks",
                                        forks,
                                        "--json"};
    auto peer = [&](const std::string& release_id) {
        return std::vector<std::string>{
            "ansible-playbook",
            "-i",
            dir->file("ansible.ini"),
            "-f",
            forks,
            dir->file("play.yml"),
            "-e",
            "release_id=" + release_id + " artifact=" + dir->file("app.tar.gz")};
    };
    test::run_options ours_env;
    ours_env.timeout = std::chrono::minutes(5);
    test::run_options peer_env = ours_env;
    peer_env.env.set = {{"ANSIBLE_PIPELINING", "True"},
                        {"ANSIBLE_SSH_ARGS", "-o ControlMaster=auto -o ControlPersist=60s"},
                        {"ANSIBLE_SSH_CONTROL_PATH_DIR", control_dir},
                        {"ANSIBLE_HOST_KEY_CHECKING", "True"},
                        {"ANSIBLE_RETRY_FILES_ENABLED", "False"},
                        {"ANSIBLE_LOCAL_TEMP", dir->file("ansible-tmp")},
                        {"ANSIBLE_NOCOLOR", "1"}};

    if (const int hold = arg_int(argc, argv, "--hold", 0); hold > 0) {
        if (!make_artifact(*dir, mib, "ok held")) return 1;
        std::string env;
        for (const auto& [k, v] : peer_env.env.set) env += k + "=" + core::shell_quote(v) + " ";
        fmt::print("artifact: {}\nHOME={}\ntunnel: {}\nansible: {}{}\nstop: touch {}\n",
                   dir->file("app.tar.gz"), dir->path(), core::shell_join(ours), env,
                   core::shell_join(peer("held")), dir->file("stop"));
        std::fflush(stdout);
        const auto until = clk::now() + std::chrono::seconds(hold);
        while (clk::now() < until && !fs::exists(dir->file("stop")))
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        return 0;
    }
    const std::string load_before = loadavg();
    std::vector<double> t_ours, t_peer, c_ours, c_peer;
    std::string marker;
    // Round 0 is not measured (page cache, ansible's first compile of its modules).
    for (int round = 0; round <= rounds; ++round) {
        marker = fmt::format("ok round {} {:016x}", round, std::random_device{}());
        if (!make_artifact(*dir, mib, marker)) return 1;
        const auto release_id = fmt::format("r{:02d}", round);
        double ms_ours = -1, ms_peer = -1, cpu_ours = 0, cpu_peer = 0;
        for (int turn = 0; turn < 2; ++turn) {
            if ((turn == 0) == (round % 2 == 0)) {
                auto t = time_run(ours, ours_env);
                if (!tunnel_ok(t, true) || !all_on(*hosts, "tunnel", marker)) return 1;
                ms_ours = t.ms;
                cpu_ours = t.cpu_s;
            } else {
                auto t = time_run(peer(release_id), peer_env);
                close_masters(control_dir);
                if (!ansible_ok(t, false) || !all_on(*hosts, "ansible", marker)) return 1;
                ms_peer = t.ms;
                cpu_peer = t.cpu_s;
            }
        }
        if (round == 0) continue;
        t_ours.push_back(ms_ours);
        t_peer.push_back(ms_peer);
        c_ours.push_back(cpu_ours);
        c_peer.push_back(cpu_peer);
        fmt::print(
            "round {}: tunnel deploy {:.0f} ms ({:.2f} s CPU), ansible-playbook {:.0f} ms ({:.2f} "
            "s "
            "CPU)\n",
            round, ms_ours, cpu_ours, ms_peer, cpu_peer);
    }

    // The same artifact again.
    std::vector<double> r_ours, r_peer;
    for (int round = 0; round < reruns; ++round) {
        auto a = time_run(ours, ours_env);
        if (!tunnel_ok(a, false) || !all_on(*hosts, "tunnel", marker)) return 1;
        auto b = time_run(peer(fmt::format("r{:02d}", rounds)), peer_env);
        close_masters(control_dir);
        if (!ansible_ok(b, true) || !all_on(*hosts, "ansible", marker)) return 1;
        r_ours.push_back(a.ms);
        r_peer.push_back(b.ms);
        fmt::print("unchanged {}: tunnel deploy {:.0f} ms, ansible-playbook {:.0f} ms\n", round + 1,
                   a.ms, b.ms);
    }
    const auto size = fs::file_size(dir->file("app.tar.gz"));
    fmt::print(
        "rolling deploy, {} sshd hosts on loopback, batch 2, {:.1f} MiB tar.gz of random data, "
        "one HTTP health check per host, {}, load average {} before / {} after:\n",
        host_count, static_cast<double>(size) / (1 << 20), cipher, load_before, loadavg());
    if (reruns > 0)
        fmt::print(
            "  unchanged artifact (median of {}): tunnel {:.0f} ms, ansible {:.0f} ms, "
            "ratio {:.3f}\n",
            reruns, median(r_ours), median(r_peer), median(r_ours) / median(r_peer));
    const double m_ours = median(t_ours), m_peer = median(t_peer);
    fmt::print(
        "  new artifact every round (median of {}): tunnel deploy {:.0f} ms, "
        "ansible-playbook {:.0f} ms\n",
        rounds, m_ours, m_peer);
    fmt::print(
        "  CPU (median) of the tool and the processes it waited for (not sshd's side, not "
        "ansible's backgrounded ControlMasters): tunnel {:.2f} s, ansible-playbook {:.2f} s\n",
        median(c_ours), median(c_peer));
    fmt::print("ratio tunnel deploy/ansible-playbook: {:.3f} (target <= 0.2)\n", m_ours / m_peer);
    return 0;
}
