#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_support.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "support/net.hpp"
#include "support/tcp_servers.hpp"

extern char** environ;

namespace tunnel::bench {

using clk = std::chrono::steady_clock;

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double quantile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

double ms_since(clk::time_point t) {
    return std::chrono::duration<double, std::milli>(clk::now() - t).count();
}

double time_process(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    const auto start = clk::now();
    pid_t pid;
    const int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return -1;
    int status = 0;
    waitpid(pid, &status, 0);
    const double t = ms_since(start);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? t : -1;
}

int arg_int(int argc, char** argv, const char* name, int def) {
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
    return def;
}

std::string arg_text(int argc, char** argv, const char* name, std::string def) {
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
    return def;
}

std::vector<std::string> arg_words(int argc, char** argv, const char* name) {
    const std::string text = arg_text(argc, argv, name, "");
    std::vector<std::string> words;
    for (std::size_t at = 0; at < text.size();) {
        const auto space = std::min(text.find(' ', at), text.size());
        if (space > at) words.push_back(text.substr(at, space - at));
        at = space + 1;
    }
    return words;
}

bool arg_flag(int argc, char** argv, const char* name) {
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return true;
    return false;
}

std::string log_of(const std::string& path) {
    return test::read_text_file(path).value_or("(no log)");
}

bool children::start(std::vector<std::string> argv, const std::string& log) {
    test::spawn_options o;
    o.stdout_path = o.stderr_path = dir_.file(log);
    auto c = test::spawn(std::move(argv), o);
    if (!c) {
        fmt::print(stderr, "cannot start {}: {}\n", log, c.error().message);
        return false;
    }
    procs_.push_back(std::move(*c));
    return true;
}

std::optional<std::string> children::wait_log(const std::string& log, const std::regex& re,
                                              std::chrono::milliseconds timeout) const {
    const auto deadline = clk::now() + timeout;
    std::string text;
    std::smatch m;
    while (clk::now() < deadline) {
        text = log_of(dir_.file(log));
        if (std::regex_search(text, m, re)) return m.size() > 1 ? m[1].str() : m[0].str();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    fmt::print(stderr, "{} did not say what was expected in {} ms:\n{}\n", log, timeout.count(),
               text);
    return std::nullopt;
}

void children::clear() {
    while (!procs_.empty()) {
        (void)procs_.back().terminate();
        procs_.pop_back();
    }
}

double cpu_seconds(int pid) {
    std::ifstream f(fmt::format("/proc/{}/stat", pid));
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto close = s.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream rest(s.substr(close + 2));
    std::string field;
    // Fields after the command: state(3) ... utime(14) stime(15).
    for (int i = 3; i <= 13; ++i) rest >> field;
    double utime = 0, stime = 0;
    rest >> utime >> stime;
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long rss_kib(int pid) {
    std::ifstream f(fmt::format("/proc/{}/status", pid));
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

namespace {

// "1.23ms", "850.00us", "1.01s" -> milliseconds.
double to_ms(const std::string& value, const std::string& unit) {
    const double v = std::atof(value.c_str());
    if (unit == "us") return v / 1000;
    if (unit == "s") return v * 1000;
    if (unit == "m") return v * 60'000;
    return v;
}

}  // namespace

std::optional<wrk_result> parse_wrk(const std::string& out) {
    wrk_result r;
    r.output = out;
    std::smatch m;
    static const std::regex rps(R"(Requests/sec:\s+([0-9.]+))");
    static const std::regex total(R"((\d+) requests in )");
    static const std::regex p50(R"(\n\s+50%\s+([0-9.]+)(us|ms|s|m)\b)");
    static const std::regex p99(R"(\n\s+99%\s+([0-9.]+)(us|ms|s|m)\b)");
    static const std::regex non2xx(R"(Non-2xx or 3xx responses:\s+(\d+))");
    static const std::regex sock(
        R"(Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+))");
    if (!std::regex_search(out, m, rps)) return std::nullopt;
    r.requests_per_second = std::atof(m[1].str().c_str());
    if (!std::regex_search(out, m, total)) return std::nullopt;
    r.requests = std::atoll(m[1].str().c_str());
    if (std::regex_search(out, m, p50)) r.p50_ms = to_ms(m[1], m[2]);
    if (std::regex_search(out, m, p99)) r.p99_ms = to_ms(m[1], m[2]);
    if (std::regex_search(out, m, non2xx)) r.non_2xx = std::atoll(m[1].str().c_str());
    if (std::regex_search(out, m, sock))
        for (int i = 1; i <= 4; ++i) r.socket_errors += std::atoll(m[i].str().c_str());
    return r;
}

std::optional<wrk_result> run_wrk(const std::string& url, const wrk_options& o) {
    std::vector<std::string> argv{"wrk",
                                  "-t",
                                  std::to_string(o.threads),
                                  "-c",
                                  std::to_string(o.connections),
                                  "-d",
                                  fmt::format("{}s", o.duration.count()),
                                  "--latency"};
    for (const auto& h : o.headers) {
        argv.push_back("-H");
        argv.push_back(h);
    }
    if (!o.script.empty()) {
        argv.push_back("-s");
        argv.push_back(o.script);
    }
    argv.push_back(url);
    test::run_options ro;
    ro.timeout = o.duration + std::chrono::seconds(30);
    auto r = test::run(argv, ro);
    if (!r.ok()) {
        fmt::print(stderr, "wrk {} failed: {}\n", url, r.describe());
        return std::nullopt;
    }
    auto parsed = parse_wrk(r.out);
    if (!parsed) fmt::print(stderr, "cannot read wrk's output:\n{}\n", r.out);
    return parsed;
}

std::optional<nginx_server> nginx_server::start(
    const test::temp_dir& dir, children& procs,
    const std::vector<std::pair<std::string, std::string>>& files) {
    const std::string www = dir.file("www");
    const std::string prefix = dir.file("nginx");
    std::error_code ec;
    for (const auto& d : {www, prefix + "/logs"})
        if (std::filesystem::create_directories(d, ec); ec) {
            fmt::print(stderr, "cannot create {}: {}\n", d, ec.message());
            return std::nullopt;
        }
    for (const auto& [name, content] : files)
        if (!test::write_text_file(www + "/" + name, content)) return std::nullopt;
    auto port = test::unused_port();
    if (!port) return std::nullopt;
    const std::string conf = fmt::format(
        "worker_processes 1;\n"
        "daemon off;\n"
        "master_process off;\n"
        "pid {0}/nginx.pid;\n"
        "error_log stderr warn;\n"
        "events {{ worker_connections 4096; }}\n"
        "http {{\n"
        "  access_log off;\n"
        "  client_body_temp_path {0}/body;\n"
        "  proxy_temp_path {0}/proxy;\n"
        "  fastcgi_temp_path {0}/fastcgi;\n"
        "  uwsgi_temp_path {0}/uwsgi;\n"
        "  scgi_temp_path {0}/scgi;\n"
        "  keepalive_requests 1000000;\n"
        "  keepalive_timeout 75s;\n"
        "  server {{\n"
        "    listen 127.0.0.1:{1};\n"
        "    root {2};\n"
        "  }}\n"
        "}}\n",
        prefix, *port, www);
    if (!test::write_text_file(prefix + "/nginx.conf", conf)) return std::nullopt;
    if (!procs.start({"nginx", "-p", prefix, "-c", prefix + "/nginx.conf"}, "nginx.log"))
        return std::nullopt;
    nginx_server n;
    n.port_ = *port;
    if (!files.empty() &&
        !wait_http_ok(n.port_, "/" + files.front().first, std::chrono::seconds(10))) {
        fmt::print(stderr, "nginx did not answer:\n{}\n", log_of(dir.file("nginx.log")));
        return std::nullopt;
    }
    return n;
}

bool wait_http_ok(std::uint16_t port, const std::string& path, std::chrono::milliseconds timeout) {
    const auto deadline = clk::now() + timeout;
    const std::string request =
        fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    while (clk::now() < deadline) {
        // No half-close after the request: a proxy may take that for a
        // caller that hung up (nginx does, and so does the relay).
        int fd = test::connect_tcp("127.0.0.1", port, 1000);
        std::string reply;
        if (fd >= 0 && ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
                           static_cast<ssize_t>(request.size())) {
            char buf[4096];
            for (;;) {
                pollfd pf{fd, POLLIN, 0};
                if (::poll(&pf, 1, 5000) <= 0) break;
                const auto n = ::recv(fd, buf, sizeof buf, 0);
                if (n <= 0) break;
                reply.append(buf, static_cast<std::size_t>(n));
            }
        }
        if (fd >= 0) ::close(fd);
        if (reply.rfind("HTTP/1.1 200", 0) == 0) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

}  // namespace tunnel::bench
