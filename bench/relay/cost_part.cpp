// bench/relay cost: what one request costs the relay and `tunnel connect`,
// as counts that a loaded machine does not change (unlike req/s):
//   wrk-less driver -> tunnel relay (plain HTTP, path-routed) -> WebSocket
//   -> SSH -> tunnel connect -> nginx (1 KiB page),
// exactly --requests N requests, one at a time over --connections C
// connections (keep-alive), then N with `Connection: close` (a connection
// each). Per request, for the relay and for the client:
//   counts:    CPU time, wake-ups (voluntary context switches of all
//              threads, /proc/PID/task/*/status), and then, in a second
//              pass of N, syscalls by kind (`strace -f -c -p PID`);
//   callgrind: instructions (both processes run under
//              `valgrind --tool=callgrind`; counters zeroed before the N
//              requests and dumped after them with callgrind_control).
// The counts are then taken the same way for the peer: `ssh -N -L` and the
// sshd processes serving it, in front of the same nginx page.
// `--tools counts,callgrind` (default both), `--workers W` (default 1: one
// event loop, so the counts do not depend on which worker the kernel picks),
// `--keep-dumps DIR` (the callgrind dumps, for callgrind_annotate),
// `--strace-log DIR` (every syscall of the strace pass, with its descriptors),
// `--ciphers C` (the tunnel's SSH cipher, `tunnel connect --ciphers`).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "relay_parts.hpp"
#include "ssh_peer.hpp"
#include "support/net.hpp"
#include "support/relay_fixture.hpp"

namespace tunnel::bench {

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A blocking loopback HTTP/1.1 client for one request at a time.
class http_conn {
  public:
    explicit http_conn(std::uint16_t port) : port_(port) {}
    http_conn(const http_conn&) = delete;
    http_conn& operator=(const http_conn&) = delete;
    ~http_conn() { drop(); }

    // One GET; true when a 200 with the whole body came back.
    bool get(const std::string& path, bool close) {
        if (fd_ < 0 && !open()) return false;
        const std::string req = fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{}\r\n", path,
                                            port_, close ? "Connection: close\r\n" : "");
        if (!send_all(req)) return drop();
        std::string in;
        std::size_t head_end = std::string::npos;
        while ((head_end = in.find("\r\n\r\n")) == std::string::npos)
            if (!recv_more(in)) return drop();
        if (in.rfind("HTTP/1.1 200", 0) != 0) return drop();
        std::smatch m;
        const std::string head = in.substr(0, head_end);
        static const std::regex cl(R"(\r\n[Cc]ontent-[Ll]ength: *(\d+))");
        if (!std::regex_search(head, m, cl)) return drop();
        const std::size_t want = head_end + 4 + std::stoul(m[1].str());
        while (in.size() < want)
            if (!recv_more(in)) return drop();
        if (close) {
            while (recv_more(in)) {
            }
            drop();
        }
        return true;
    }

  private:
    bool open() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) return false;
        int one = 1;
        (void)::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port_);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return drop();
        return true;
    }
    bool send_all(const std::string& s) {
        for (std::size_t at = 0; at < s.size();) {
            const ssize_t n = ::send(fd_, s.data() + at, s.size() - at, MSG_NOSIGNAL);
            if (n <= 0) return false;
            at += static_cast<std::size_t>(n);
        }
        return true;
    }
    bool recv_more(std::string& in) {
        char buf[16384];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) return false;
        in.append(buf, static_cast<std::size_t>(n));
        return true;
    }
    bool drop() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        return false;
    }
    std::uint16_t port_;
    int fd_ = -1;
};

// N requests over `conns` connections (one thread each, one request in
// flight per connection); false when any failed.
bool drive(std::uint16_t port, const std::string& path, int n, int conns, bool close) {
    std::vector<std::thread> threads;
    std::vector<int> ok(static_cast<std::size_t>(conns), 0);
    for (int c = 0; c < conns; ++c)
        threads.emplace_back([&, c] {
            http_conn h(port);
            const int mine = n / conns + (c < n % conns ? 1 : 0);
            int good = 0;
            for (int i = 0; i < mine; ++i) good += h.get(path, close) ? 1 : 0;
            ok[static_cast<std::size_t>(c)] = good == mine ? 1 : 0;
        });
    for (auto& t : threads) t.join();
    return std::all_of(ok.begin(), ok.end(), [](int v) { return v == 1; });
}

// Voluntary and involuntary context switches of all threads of `pid`.
std::pair<long, long> switches(int pid) {
    long vol = 0, invol = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
        std::ifstream f(e.path() / "status");
        for (std::string line; std::getline(f, line);) {
            if (line.rfind("voluntary_ctxt_switches:", 0) == 0)
                vol += std::atol(line.c_str() + 24);
            else if (line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
                invol += std::atol(line.c_str() + 27);
        }
    }
    return {vol, invol};
}

struct syscall_count {
    long calls = 0, errors = 0;
};
using syscall_table = std::map<std::string, syscall_count>;

// `strace -c` summary lines: "% time seconds usecs/call calls [errors] name".
syscall_table parse_strace(const std::string& text) {
    syscall_table t;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream w(line);
        std::vector<std::string> f;
        for (std::string x; w >> x;) f.push_back(x);
        if (f.size() < 5 || f.back() == "total" || f[0].find('.') == std::string::npos) continue;
        if (!std::isdigit(static_cast<unsigned char>(f[0][0]))) continue;
        syscall_count c;
        c.calls = std::atol(f[3].c_str());
        if (f.size() >= 6) c.errors = std::atol(f[4].c_str());
        t[f.back()] = c;
    }
    return t;
}

std::string per_request(const syscall_table& t, int n) {
    std::vector<std::pair<long, std::string>> order;
    long total = 0;
    for (const auto& [name, c] : t) {
        order.emplace_back(c.calls, name);
        total += c.calls;
    }
    std::sort(order.rbegin(), order.rend());
    std::string s = fmt::format("{:.2f} syscalls/req:", static_cast<double>(total) / n);
    for (const auto& [calls, name] : order) {
        if (static_cast<double>(calls) / n < 0.02) continue;
        const auto& c = t.at(name);
        s += fmt::format(" {} {:.2f}", name, static_cast<double>(calls) / n);
        if (c.errors > 0) s += fmt::format(" ({:.2f} failed)", static_cast<double>(c.errors) / n);
    }
    return s;
}

struct stack {
    std::optional<test::temp_dir> dir;
    std::optional<children> procs;
    std::optional<test::relay_fixture> relay;
    std::optional<test::relay_client> client;  // counts
    int relay_pid = -1, client_pid = -1;
    std::uint16_t port = 0;
    std::string path = "/t/bench/web/1k";
};

// nginx, the relay and the client, the relay and the client under
// `wrap` (argv prefix; empty: none).
bool start_stack(stack& s, const std::vector<std::string>& wrap, const std::string& workers,
                 const std::string& ciphers, const std::string& tag) {
    auto dir = test::temp_dir::create("tunnel-relay-cost-" + tag);
    if (!dir) return false;
    s.dir.emplace(std::move(*dir));
    s.procs.emplace(*s.dir);
    auto nginx = nginx_server::start(*s.dir, *s.procs, {{"1k", std::string(1024, 'x')}});
    if (!nginx) return false;
    test::relay_options ro;
    ro.extra_yaml =
        "limits:\n"
        "  tenant_rps: 1000000\n"
        "  tenant_burst: 1000000\n"
        "  route_rps: 1000000\n"
        "  route_burst: 1000000\n"
        "  max_streams_per_tunnel: 4096\n"
        "  max_connections_per_ip: 100000\n";
    ro.extra_yaml += fmt::format("workers: {}\n", workers);
    ro.launcher = wrap;
    if (!wrap.empty()) {
        ro.launcher.push_back("--callgrind-out-file=" + s.dir->file("relay.cg"));
        ro.start_timeout = 120s;
    }
    auto relay = test::relay_fixture::start(ro);
    if (!relay) {
        fmt::print(stderr, "cannot start the relay: {}\n", relay.error().message);
        return false;
    }
    s.relay.emplace(std::move(*relay));
    s.relay_pid = s.relay->pid();
    s.port = s.relay->public_port();
    auto token = s.relay->mint("bench", "web", "2h", {"--rps", "1000000", "--max-streams", "4096"});
    if (!token) {
        fmt::print(stderr, "tunnel token: {}\n", token.error().message);
        return false;
    }
    const std::string expose = fmt::format("web=127.0.0.1:{}", nginx->port());
    if (wrap.empty()) {
        std::vector<std::string> extra;
        if (!ciphers.empty()) extra = {"--ciphers", ciphers};
        auto client = s.relay->connect(*token, {{"web", nginx->port()}}, true, extra);
        if (!client) {
            fmt::print(stderr, "tunnel connect: {}\n", client.error().message);
            return false;
        }
        s.client_pid = client->process().pid();
        s.client.emplace(std::move(*client));
    } else {
        std::vector<std::string> argv = wrap;
        argv.push_back("--callgrind-out-file=" + s.dir->file("client.cg"));
        argv.insert(argv.end(), {TUNNEL_BINARY, "connect", s.relay->attach_url(), "--json",
                                 "--token-file", s.relay->token_file(*token), "--expose", expose});
        if (!ciphers.empty()) argv.insert(argv.end(), {"--ciphers", ciphers});
        if (!s.procs->start(argv, "client.log")) return false;
        s.client_pid = s.procs->pid(1);
        if (!s.procs->wait_log("client.log", std::regex(R"("event":"published")"), 120s))
            return false;
    }
    if (!wait_http_ok(s.port, s.path, wrap.empty() ? 30s : 120s)) {
        fmt::print(stderr, "the path did not come up\nrelay:\n{}\n", s.relay->log());
        return false;
    }
    return true;
}

// Runs argv to completion while, every 50 ms, one request nudges the
// processes (a valgrind'ed process blocked in epoll_wait reads
// callgrind_control's command only once it wakes). The nudges sent.
int run_nudging(const std::vector<std::vector<std::string>>& argvs, stack& s, bool close) {
    std::atomic<int> running{static_cast<int>(argvs.size())};
    std::vector<std::thread> threads;
    for (const auto& argv : argvs)
        threads.emplace_back([&running, &argv] {
            (void)time_process(argv);
            --running;
        });
    int nudges = 0;
    while (running > 0) {
        std::this_thread::sleep_for(50ms);
        if (running == 0) break;
        http_conn h(s.port);
        (void)h.get(s.path, close);
        ++nudges;
    }
    for (auto& t : threads) t.join();
    return nudges;
}

// The newest "<prefix>.N" callgrind dump's total instructions; copied to
// `keep` (a file path) unless that is empty.
long long newest_dump_total(const test::temp_dir& dir, const std::string& prefix,
                            const std::string& keep) {
    fs::path best;
    fs::file_time_type when{};
    for (const auto& e : fs::directory_iterator(dir.path())) {
        const auto name = e.path().filename().string();
        if (name.rfind(prefix + ".", 0) != 0) continue;
        if (best.empty() || e.last_write_time() > when) {
            best = e.path();
            when = e.last_write_time();
        }
    }
    if (best.empty()) return -1;
    if (!keep.empty()) {
        std::error_code ec;
        fs::copy_file(best, keep, fs::copy_options::overwrite_existing, ec);
        if (ec) fmt::print(stderr, "cannot copy {} to {}: {}\n", best.string(), keep, ec.message());
    }
    std::ifstream f(best);
    for (std::string line; std::getline(f, line);)
        if (line.rfind("summary:", 0) == 0 || line.rfind("totals:", 0) == 0)
            return std::atoll(line.c_str() + line.find(':') + 1);
    return -1;
}

struct variant {
    const char* name;
    bool close;
};
constexpr variant variants[] = {{"keep-alive", false}, {"Connection: close", true}};

// Processes measured as one (ssh's sshd: its session processes).
struct measured {
    std::string who;
    std::vector<int> pids;
};

double cpu_of(const measured& m) {
    double sum = 0;
    for (int p : m.pids) sum += cpu_seconds(p);
    return sum;
}

std::pair<long, long> switches_of(const measured& m) {
    std::pair<long, long> sum{0, 0};
    for (int p : m.pids) {
        const auto s = switches(p);
        sum.first += s.first;
        sum.second += s.second;
    }
    return sum;
}

// The pids of `root`'s descendants (not `root` itself).
std::vector<int> descendants(int root) {
    std::map<int, std::vector<int>> children_of;
    for (const auto& e : fs::directory_iterator("/proc")) {
        const auto name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream f(e.path() / "stat");
        std::string stat((std::istreambuf_iterator<char>(f)), {});
        const auto close = stat.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(stat.substr(close + 2));
        std::string state;
        int ppid = 0;
        rest >> state >> ppid;
        children_of[ppid].push_back(std::stoi(name));
    }
    std::vector<int> out, todo{root};
    while (!todo.empty()) {
        const int p = todo.back();
        todo.pop_back();
        for (int c : children_of[p]) {
            out.push_back(c);
            todo.push_back(c);
        }
    }
    return out;
}

// One variant's counts for `ws`: CPU and wake-ups over n requests, then
// syscalls by kind over a second n under `strace -f -c` (it changes timing
// and wake-ups, not which syscalls a request makes).
bool count_variant(const std::vector<measured>& ws, children& procs, const test::temp_dir& dir,
                   std::uint16_t port, const std::string& path, int n, int conns, const variant& v,
                   const std::string& raw_log) {
    const int c = v.close ? 1 : conns;
    std::vector<double> cpu0;
    std::vector<std::pair<long, long>> sw0;
    for (const auto& m : ws) {
        cpu0.push_back(cpu_of(m));
        sw0.push_back(switches_of(m));
    }
    if (!drive(port, path, n, c, v.close)) {
        fmt::print(stderr, "{}: a request failed\n", v.name);
        return false;
    }
    const double dn = n;
    fmt::print("{} x{} over {} connection(s):\n", v.name, n, c);
    for (std::size_t i = 0; i < ws.size(); ++i) {
        const auto sw = switches_of(ws[i]);
        fmt::print("  {:<7} {:.1f} us CPU/req, {:.2f} wake-ups/req ({:.2f} involuntary)\n",
                   ws[i].who + ":", (cpu_of(ws[i]) - cpu0[i]) * 1e6 / dn,
                   static_cast<double>(sw.first - sw0[i].first) / dn,
                   static_cast<double>(sw.second - sw0[i].second) / dn);
    }
    const char* tag = v.close ? "close" : "keepalive";
    for (const auto& m : ws) {
        const std::string out = dir.file(fmt::format("strace-{}.txt", m.who));
        std::error_code ec;
        fs::remove(out, ec);
        std::vector<std::string> argv{"strace", "-f"};
        if (raw_log.empty())
            argv.insert(argv.end(), {"-c", "-o", out});
        else  // every call, with what its descriptors are
            argv.insert(argv.end(),
                        {"-y", "-o", fmt::format("{}/{}-{}.strace", raw_log, m.who, tag)});
        for (int p : m.pids) argv.insert(argv.end(), {"-p", std::to_string(p)});
        if (!procs.start(argv, fmt::format("strace-{}-{}.log", m.who, tag))) return false;
    }
    // strace says "Process N attached" per thread on stderr.
    for (const auto& m : ws)
        if (!procs.wait_log(fmt::format("strace-{}-{}.log", m.who, tag), std::regex("attached"),
                            10s))
            return false;
    std::this_thread::sleep_for(200ms);
    if (!drive(port, path, n, c, v.close)) return false;
    // Stop the straces (SIGINT: they detach and write the summary).
    for (const auto& e : fs::directory_iterator("/proc")) {
        const auto name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream cmd(e.path() / "cmdline");
        std::string argv0;
        std::getline(cmd, argv0, '\0');
        std::string rest((std::istreambuf_iterator<char>(cmd)), {});
        if (argv0 == "strace" && rest.find(dir.path()) != std::string::npos)
            ::kill(std::stoi(name), SIGINT);
    }
    for (const auto& m : ws) {
        const std::string out = dir.file(fmt::format("strace-{}.txt", m.who));
        std::string text;
        for (int i = 0; i < 200 && raw_log.empty(); ++i) {
            text = log_of(out);
            if (text.find("total") != std::string::npos) break;
            std::this_thread::sleep_for(50ms);
        }
        if (raw_log.empty())
            fmt::print("  {:<7} {}\n", m.who + ":", per_request(parse_strace(text), n));
    }
    return true;
}

int run_counts(int n, int conns, const std::string& workers, const std::string& ciphers,
               const std::string& raw_log) {
    stack s;
    if (!start_stack(s, {}, workers, ciphers, "counts")) return 1;
    if (!drive(s.port, s.path, 200, conns, false)) return 1;  // warm-up
    const std::vector<measured> ws{{"relay", {s.relay_pid}}, {"client", {s.client_pid}}};
    for (const auto& v : variants)
        if (!count_variant(ws, *s.procs, *s.dir, s.port, s.path, n, conns, v, raw_log)) {
            fmt::print(stderr, "relay:\n{}\n", s.relay->log());
            return 1;
        }
    return 0;
}

// The same counts for the peer: `ssh -N -L` (the client) and the sshd
// processes serving its connection, in front of the same nginx page.
int run_peer_counts(int n, int conns, const std::string& raw_log) {
    auto dir = test::temp_dir::create("tunnel-relay-cost-peer");
    if (!dir) return 1;
    children procs(*dir);
    auto nginx = nginx_server::start(*dir, procs, {{"1k", std::string(1024, 'x')}});
    if (!nginx) return 1;
    auto ssh = start_ssh_forward(procs, nginx->port());
    if (!ssh) return 1;
    const std::uint16_t lp = ssh->port;
    const std::string path = "/1k";
    if (!wait_http_ok(lp, path, 30s)) {
        fmt::print(stderr, "ssh -L did not come up:\n{}\n", log_of(dir->file("ssh-L.log")));
        return 1;
    }
    if (!drive(lp, path, 200, conns, false)) return 1;  // warm-up
    const std::vector<measured> ws{{"ssh", {procs.pid(1)}}, {"sshd", descendants(ssh->sshd.pid())}};
    fmt::print("peer: ssh -N -L -> sshd ({} session processes) -> nginx\n", ws[1].pids.size());
    for (const auto& v : variants)
        if (!count_variant(ws, procs, *dir, lp, path, n, conns, v, raw_log)) return 1;
    return 0;
}

int run_callgrind(int n, int conns, const std::string& workers, const std::string& ciphers,
                  const std::string& keep) {
    stack s;
    if (!start_stack(s, {"valgrind", "--tool=callgrind", "--dump-line=no", "--trace-children=yes"},
                     workers, ciphers, "cg"))
        return 1;
    if (!drive(s.port, s.path, 50, conns, false)) return 1;  // warm-up
    auto control = [&](const char* what, bool close) {
        return run_nudging({{"callgrind_control", what, std::to_string(s.relay_pid)},
                            {"callgrind_control", what, std::to_string(s.client_pid)}},
                           s, close);
    };
    (void)control("-z", false);
    for (const auto& v : variants) {
        const int c = v.close ? 1 : conns;
        if (!drive(s.port, s.path, n, c, v.close)) {
            fmt::print(stderr, "{}: a request failed under callgrind\n", v.name);
            return 1;
        }
        const int nudges = control("-d", v.close);
        const char* tag = v.close ? "close" : "keepalive";
        auto kept = [&](const char* who) {
            return keep.empty() ? std::string() : fmt::format("{}/{}-{}.cg", keep, who, tag);
        };
        const long long relay_ir = newest_dump_total(*s.dir, "relay.cg", kept("relay"));
        const long long client_ir = newest_dump_total(*s.dir, "client.cg", kept("client"));
        // The nudges that reached a process before its dump count as
        // requests too (at most `nudges`; usually 0-2).
        fmt::print(
            "{} x{} under callgrind (+{} nudges): relay {:.0f} instructions/req, client {:.0f} "
            "instructions/req\n",
            v.name, n, nudges, static_cast<double>(relay_ir) / n,
            static_cast<double>(client_ir) / n);
    }
    if (!keep.empty())
        fmt::print("  dumps in {} (callgrind_annotate --inclusive=yes FILE)\n", keep);
    return 0;
}

}  // namespace

int run_cost_part(int argc, char** argv) {
    const int n = arg_int(argc, argv, "--requests", 2000);
    const int conns = std::max(1, arg_int(argc, argv, "--connections", 1));
    const std::string workers = arg_text(argc, argv, "--workers", "1");
    const std::string tools = arg_text(argc, argv, "--tools", "counts,callgrind");
    // --keep-dumps DIR: the callgrind dumps are copied there
    // ({relay,client}-{keepalive,close}.cg) for callgrind_annotate.
    const std::string keep = arg_text(argc, argv, "--keep-dumps", "");
    // --strace-log DIR: the strace pass logs every call (strace -y) to
    // DIR/{relay,client}-{keepalive,close}.strace instead of counting.
    const std::string raw_log = arg_text(argc, argv, "--strace-log", "");
    // --ciphers C: `tunnel connect --ciphers C` (the SSH cipher of the tunnel).
    const std::string ciphers = arg_text(argc, argv, "--ciphers", "");
    for (const auto& dir : {keep, raw_log}) {
        std::error_code ec;
        if (!dir.empty() && !fs::create_directories(dir, ec) && ec) {
            fmt::print(stderr, "cannot create {}: {}\n", dir, ec.message());
            return 2;
        }
    }
    double load[3] = {};
    (void)getloadavg(load, 3);
    fmt::print("relay cost per request, 1 KiB nginx page, relay workers {}, load average {:.2f}\n",
               workers, load[0]);
    int status = 0;
    if (tools.find("counts") != std::string::npos) {
        status |= run_counts(n, conns, workers, ciphers, raw_log);
        status |= run_peer_counts(n, conns, raw_log);
    }
    if (tools.find("callgrind") != std::string::npos)
        status |= run_callgrind(n, conns, workers, ciphers, keep);
    return status;
}

}  // namespace tunnel::bench
