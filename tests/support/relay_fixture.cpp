#include "support/relay_fixture.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <nlohmann/json.hpp>

#include "core/encoding.hpp"
#include "support/net.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {

namespace {

using namespace std::chrono_literals;

std::string b64url(std::string_view in) {
    std::string out;
    out.resize(4 * ((in.size() + 2) / 3) + 1);
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(n));
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (auto& c : out) {
        if (c == '+') c = '-';
        if (c == '/') c = '_';
    }
    return out;
}

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    return s;
}

}  // namespace

relay_client::~relay_client() {
    if (process_) {
        process_->signal(SIGCONT);
        process_->terminate();
    }
}

std::string relay_client::log() const {
    return read_text_file(log_path_).value_or("");
}

core::result<relay_fixture> relay_fixture::start(relay_options options) {
    auto dir = temp_dir::create("tunnel-relay");
    if (!dir) return tl::unexpected(dir.error());
    relay_fixture f(std::move(*dir));
    f.secret_path_ = f.dir_.file("jwt.secret");
    std::string secret_text;
    if (!options.share_secret_of.empty()) {
        auto shared = read_text_file(options.share_secret_of);
        if (!shared) return tl::unexpected(shared.error());
        secret_text = *shared;
    } else {
        secret_text =
            b64url(random_bytes(32, static_cast<uint64_t>(::getpid()) * 7919 + 17)) + "\n";
    }
    if (auto w = write_text_file(f.secret_path_, secret_text, 0600); !w)
        return tl::unexpected(w.error());

    f.tls_ = options.tls;
    if (options.tls) {
        auto r = run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                      "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                      f.dir_.file("key.pem"), "-out", f.dir_.file("cert.pem")});
        if (!r.ok()) return core::fail(core::errc::io_error, "openssl req failed: " + r.describe());
    }
    std::vector<std::string> argv = options.launcher;
    argv.insert(argv.end(), options.command_prefix.begin(), options.command_prefix.end());
    argv.insert(argv.end(), {tunnel_binary(), "-v", "relay"});
    if (!options.audit_log_path.empty()) {
        options.audit_log = true;
        f.audit_path_ = options.audit_log_path;
    }
    f.admin_token_ = options.admin_token;
    if (options.extra_yaml.empty() && options.jwt_yaml.empty() && !options.audit_log &&
        !options.tls && options.admin_token.empty()) {
        argv.insert(argv.end(), {"--dev", "--listen", "127.0.0.1:0", "--admin-listen",
                                 "127.0.0.1:0", "--jwt-secret-file", f.secret_path_});
    } else {
        std::string yaml = fmt::format(
            "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nhost_key_file: {}\njwt:\n  "
            "secret_file: {}\n",
            f.dir_.file("host_key"), f.secret_path_);
        yaml += options.jwt_yaml;
        if (options.audit_log) yaml += fmt::format("audit_log: {}\n", f.audit_path());
        if (!options.admin_token.empty()) {
            if (auto w =
                    write_text_file(f.dir_.file("admin.token"), options.admin_token + "\n", 0600);
                !w)
                return tl::unexpected(w.error());
            yaml += fmt::format("admin:\n  token_file: {}\n", f.dir_.file("admin.token"));
        }
        if (options.tls)
            yaml += fmt::format("tls:\n  cert_file: {}\n  key_file: {}\n", f.dir_.file("cert.pem"),
                                f.dir_.file("key.pem"));
        yaml += options.extra_yaml;
        if (auto w = write_text_file(f.dir_.file("relay.yaml"), yaml); !w)
            return tl::unexpected(w.error());
        argv.insert(argv.end(), {"--config", f.dir_.file("relay.yaml")});
    }
    f.argv_ = std::move(argv);
    f.start_timeout_ = options.start_timeout;
    if (auto up = f.launch(); !up) return tl::unexpected(up.error());
    return f;
}

core::result<void> relay_fixture::launch() {
    spawn_options so;
    so.stdout_path = dir_.file("relay.out");
    so.stderr_path = dir_.file("relay.log");
    so.env.set.push_back({"HOME", dir_.path()});
    auto child = spawn(argv_, so);
    if (!child) return tl::unexpected(child.error());
    process_.emplace(std::move(*child));
    const auto deadline = std::chrono::steady_clock::now() + start_timeout_;
    while (std::chrono::steady_clock::now() < deadline) {
        auto out = read_text_file(dir_.file("relay.out")).value_or("");
        auto pub = out.find("public: ");
        auto adm = out.find("admin: ");
        if (pub != std::string::npos && adm != std::string::npos &&
            out.find('\n', adm) != std::string::npos) {
            auto port_of = [&](std::size_t at) {
                auto eol = out.find('\n', at);
                auto colon = out.rfind(':', eol);
                return static_cast<std::uint16_t>(
                    std::stoi(out.substr(colon + 1, eol - colon - 1)));
            };
            public_port_ = port_of(pub);
            admin_port_ = port_of(adm);
            return {};
        }
        if (!process_->running())
            return core::fail(core::errc::connection_failed, "tunnel relay exited: " + log());
        std::this_thread::sleep_for(10ms);
    }
    return core::fail(core::errc::timeout, "tunnel relay did not print its ports: " + log());
}

core::result<void> relay_fixture::restart() {
    if (process_ && process_->running()) {
        process_->signal(SIGKILL);
        (void)process_->wait(5s);
    }
    process_.reset();
    // The same ports as before (the config's listen addresses, pinned on the
    // first restart), so clients find it where it was.
    const auto config = dir_.file("relay.yaml");
    auto yaml = read_text_file(config);
    if (!yaml) return core::fail(core::errc::invalid_argument, "restart() needs a config file");
    auto pin = [&](const std::string& key, std::uint16_t port) {
        const std::string from = key + ": 127.0.0.1:0\n";
        if (auto at = yaml->find(from); at != std::string::npos)
            yaml->replace(at, from.size(), fmt::format("{}: 127.0.0.1:{}\n", key, port));
    };
    pin("listen", public_port_);
    pin("admin_listen", admin_port_);
    if (auto w = write_text_file(config, *yaml); !w) return tl::unexpected(w.error());
    // Its stdout again says when it listens (the log goes on, appended).
    (void)std::remove(dir_.file("relay.out").c_str());
    return launch();
}

relay_fixture::~relay_fixture() {
    if (process_) {
        process_->signal(SIGCONT);
        process_->terminate();
    }
}

std::string relay_fixture::attach_url() const {
    return fmt::format("{}://127.0.0.1:{}/v1/tunnel", tls_ ? "wss" : "ws", public_port_);
}

std::string relay_fixture::log() const {
    return read_text_file(dir_.file("relay.log")).value_or("");
}

core::result<std::string> relay_fixture::mint(const std::string& tenant, const std::string& allow,
                                              const std::string& ttl,
                                              std::vector<std::string> extra) const {
    std::vector<std::string> args{"token",   "--secret-file", secret_path_, "--tenant", tenant,
                                  "--allow", allow,           "--ttl",      ttl};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_tunnel(args);
    if (!r.ok())
        return core::fail(core::errc::invalid_argument, "tunnel token failed: " + r.describe());
    return trim(r.out);
}

std::string relay_fixture::craft(const std::string& claims_json, bool alg_none,
                                 const std::string& secret) const {
    std::string header =
        alg_none ? R"({"alg":"none","typ":"JWT"})" : R"({"alg":"HS256","typ":"JWT"})";
    std::string signing = b64url(header) + "." + b64url(claims_json);
    if (alg_none) return signing + ".";
    std::string key = secret.empty() ? trim(read_text_file(secret_path_).value_or("")) : secret;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(signing.data()), signing.size(), mac, &len);
    return signing + "." + b64url(std::string(reinterpret_cast<char*>(mac), len));
}

std::string relay_fixture::token_file(const std::string& token) const {
    static int counter = 0;
    std::string path = dir_.file(fmt::format("token-{}", ++counter));
    (void)write_text_file(path, token + "\n", 0600);
    return path;
}

core::result<relay_client> relay_fixture::publish(const std::string& tenant,
                                                  const std::string& token, const std::string& name,
                                                  std::uint16_t port, bool wait) const {
    static int counter = 0;
    const std::string log_path = dir_.file(fmt::format("ssh-{}.log", ++counter));
    std::string proxy = fmt::format("{} ws-connect {} --token-file {}", tunnel_binary(),
                                    attach_url(), token_file(token));
    if (tls_) proxy += " --ca-file " + cert_path();
    std::vector<std::string> argv{"ssh",
                                  "-F",
                                  "/dev/null",
                                  "-N",
                                  "-o",
                                  "StrictHostKeyChecking=no",
                                  "-o",
                                  "UserKnownHostsFile=/dev/null",
                                  "-o",
                                  "LogLevel=ERROR",
                                  "-o",
                                  "BatchMode=yes",
                                  "-o",
                                  "ExitOnForwardFailure=yes",
                                  "-o",
                                  "ProxyCommand=" + proxy,
                                  "-R",
                                  fmt::format("{}:80:127.0.0.1:{}", name, port),
                                  tenant + "@relay"};
    spawn_options so;
    so.stdout_path = so.stderr_path = log_path;
    so.env.set.push_back({"HOME", dir_.path()});
    auto child = spawn(argv, so);
    if (!child) return tl::unexpected(child.error());
    relay_client c(log_path, std::move(*child));
    if (wait && !wait_published(tenant, name, 15s))
        return core::fail(core::errc::timeout,
                          fmt::format("{} was not published for {}: ssh: {} relay: {}", name,
                                      tenant, c.log(), log()));
    return c;
}

core::result<relay_client> relay_fixture::connect(
    const std::string& token, const std::vector<std::pair<std::string, std::uint16_t>>& expose,
    bool wait, std::vector<std::string> extra_args) const {
    static int counter = 0;
    const std::string log_path = dir_.file(fmt::format("connect-{}.log", ++counter));
    std::vector<std::string> args{"connect", attach_url(), "--json"};
    if (!token.empty()) args.insert(args.end(), {"--token-file", token_file(token)});
    if (tls_) args.insert(args.end(), {"--ca-file", cert_path()});
    for (const auto& [name, port] : expose)
        args.insert(args.end(), {"--expose", fmt::format("{}=127.0.0.1:{}", name, port)});
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    auto child = spawn_tunnel(args, dir_.path(), log_path, log_path);
    if (!child) return tl::unexpected(child.error());
    relay_client c(log_path, std::move(*child));
    if (!wait) return c;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
        std::size_t answered = 0;
        for (const auto& [name, port] : expose) {
            bool seen = false;
            std::istringstream lines(c.log());
            for (std::string line; std::getline(lines, line);) {
                auto j = nlohmann::json::parse(line, nullptr, false);
                if (j.is_object() && j.value("name", "") == name &&
                    (j.value("event", "") == "published" || j.value("event", "") == "refused"))
                    seen = true;
            }
            answered += seen ? 1 : 0;
        }
        if (answered == expose.size()) return c;
        if (!c.process().running() || std::chrono::steady_clock::now() >= deadline)
            return core::fail(core::errc::timeout,
                              fmt::format("tunnel connect did not report its names: {} relay: {}",
                                          c.log(), log()));
        std::this_thread::sleep_for(20ms);
    }
}

int relay_fixture::pid() const {
    return process_ ? static_cast<int>(process_->pid()) : -1;
}

core::result<http_reply> relay_fixture::admin_request(const std::string& path) const {
    std::string auth =
        admin_token_.empty() ? "" : fmt::format("Authorization: Bearer {}\r\n", admin_token_);
    return http_request(
        admin_port_,
        fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{}\r\n", path, admin_port_, auth),
        5s);
}

std::string relay_fixture::admin_get(const std::string& path) const {
    auto r = admin_request(path);
    return r ? r->body : std::string();
}

bool relay_fixture::wait_published(const std::string& tenant, const std::string& name,
                                   std::chrono::milliseconds timeout, bool published) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        bool found = false;
        auto j = nlohmann::json::parse(admin_get("/api/v1/tunnels"), nullptr, false);
        if (j.is_object() && j.contains("tunnels"))
            for (const auto& t : j["tunnels"])
                if (t.value("tenant", "") == tenant)
                    for (const auto& n : t["names"])
                        if (n == name) found = true;
        if (found == published) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
}

std::string jti_of(const std::string& token) {
    const auto first = token.find('.');
    const auto second = token.find('.', first + 1);
    if (first == std::string::npos || second == std::string::npos) return {};
    auto payload = core::base64url_decode(token.substr(first + 1, second - first - 1));
    if (!payload) return {};
    auto j = nlohmann::json::parse(*payload, nullptr, false);
    return j.is_object() ? j.value("jti", "") : "";
}

std::optional<http_reply> parse_http_reply(const std::string& raw) {
    auto end = raw.find("\r\n\r\n");
    if (end == std::string::npos || raw.size() < 12) return std::nullopt;
    http_reply r;
    r.raw = raw;
    r.head = raw.substr(0, end + 4);
    r.status = std::atoi(raw.substr(9, 3).c_str());
    std::string lower = r.head;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string rest = raw.substr(end + 4);
    if (lower.find("transfer-encoding: chunked") != std::string::npos) {
        std::size_t pos = 0;
        for (;;) {
            auto eol = rest.find("\r\n", pos);
            if (eol == std::string::npos) break;
            std::size_t size = std::stoul(rest.substr(pos, eol - pos), nullptr, 16);
            if (size == 0 || eol + 2 + size > rest.size()) break;
            r.body += rest.substr(eol + 2, size);
            pos = eol + 2 + size + 2;
        }
    } else if (auto p = lower.find("content-length:"); p != std::string::npos) {
        r.body = rest.substr(0, std::stoul(lower.substr(p + 15)));
    } else {
        r.body = rest;
    }
    return r;
}

core::result<http_reply> http_request(std::uint16_t port, const std::string& request,
                                      std::chrono::milliseconds timeout) {
    int fd = connect_tcp("127.0.0.1", port, static_cast<int>(timeout.count()));
    if (fd < 0)
        return core::fail(core::errc::connection_failed,
                          fmt::format("cannot connect to port {}", port));
    std::string_view out = request;
    while (!out.empty()) {
        ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
        if (n <= 0) break;
        out.remove_prefix(static_cast<std::size_t>(n));
    }
    std::string raw;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[16384];
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        raw.append(buf, static_cast<std::size_t>(n));
        // Stop at the end of a complete response so keep-alive servers do
        // not hold us until the deadline.
        if (auto r = parse_http_reply(raw)) {
            std::string lower = r->head;
            for (auto& c : lower)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            const bool chunked = lower.find("transfer-encoding: chunked") != std::string::npos;
            if (chunked && raw.size() >= 5 && raw.compare(raw.size() - 5, 5, "0\r\n\r\n") == 0)
                break;
            if (!chunked && lower.find("content-length:") != std::string::npos &&
                r->raw.size() >= r->head.size() + r->body.size() &&
                r->body.size() == std::stoul(lower.substr(lower.find("content-length:") + 15)))
                break;
        }
    }
    ::close(fd);
    auto r = parse_http_reply(raw);
    if (!r)
        return core::fail(core::errc::protocol_error,
                          fmt::format("no HTTP response: {:?}", raw.substr(0, 200)));
    return *r;
}

}  // namespace tunnel::test
