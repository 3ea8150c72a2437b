#include "ssh/host_key_verifier.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ssh/known_hosts.hpp"

namespace tunnel::ssh {

namespace {

std::string key_label(ssh_key key) {
    // "ED25519", "RSA", "ECDSA" as OpenSSH prints them.
    std::string t = ssh_key_type_to_char(ssh_key_type(key));
    if (t == "ssh-ed25519") return "ED25519";
    if (t == "ssh-rsa") return "RSA";
    if (t.rfind("ecdsa", 0) == 0) return "ECDSA";
    return t;
}

// Default libssh 0.10 host-key algorithm preference (same set as OpenSSH 9.2 minus certificates).
constexpr std::string_view default_algorithms =
    "ssh-ed25519,ecdsa-sha2-nistp521,ecdsa-sha2-nistp384,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-"
    "256";

}  // namespace

std::string fingerprint(ssh_key key) {
    unsigned char* raw = nullptr;
    size_t len = 0;
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &raw, &len) != SSH_OK)
        return "SHA256:?";
    hash_handle hash(raw);
    ssh_string_handle text(ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash.get(), len));
    return text ? std::string(text.get()) : std::string("SHA256:?");
}

known_hosts load_known_hosts(const connect_options& opts) {
    return known_hosts::load(opts.known_hosts_files());
}

std::string preferred_host_key_algorithms(const connect_options& opts) {
    return preferred_host_key_algorithms(opts, load_known_hosts(opts));
}

std::string preferred_host_key_algorithms(const connect_options& opts, const known_hosts& kh) {
    auto [host, port] = opts.known_hosts_name();
    auto types = kh.key_types_for(host, port);
    if (types.empty()) return std::string(default_algorithms);
    std::string known = host_key_algorithms_for_types(types);
    std::string order = known;
    // Then the rest of the defaults, so a host whose known key type is gone still negotiates
    // (and is then reported as changed/unknown rather than failing to negotiate).
    std::string_view rest = default_algorithms;
    while (!rest.empty()) {
        auto comma = rest.find(',');
        auto alg = rest.substr(0, comma);
        bool present = false;
        std::string_view k = known;
        while (!k.empty()) {
            auto c = k.find(',');
            if (k.substr(0, c) == alg) present = true;
            k = c == std::string_view::npos ? std::string_view{} : k.substr(c + 1);
        }
        if (!present) order += "," + std::string(alg);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    return order;
}

namespace {

// The fingerprint of the key recorded at a known_hosts line ("SHA256:?" if unreadable).
std::string fingerprint_at(const known_hosts_location& where) {
    std::ifstream in(where.path);
    std::string line;
    for (std::size_t n = 0; n < where.line && std::getline(in, line);) ++n;
    std::istringstream fields(line);
    std::string first, type, b64;
    fields >> first;
    if (!first.empty() && first.front() == '@') fields >> first;  // marker, then host patterns
    fields >> type >> b64;
    ssh_key raw = nullptr;
    if (b64.empty() || ssh_pki_import_pubkey_base64(
                           b64.c_str(), ssh_key_type_from_name(type.c_str()), &raw) != SSH_OK)
        return "SHA256:?";
    key_handle key(raw);
    return fingerprint(key.get());
}

}  // namespace

core::result<std::string> check_host_key(const connect_options& opts, ssh_key server_key) {
    if (opts.host_key_fingerprint || opts.host_keys == host_key_policy::accept_any)
        return check_host_key(opts, server_key, known_hosts{});  // the files are not read
    return check_host_key(opts, server_key, load_known_hosts(opts));
}

core::result<std::string> check_host_key(const connect_options& opts, ssh_key server_key,
                                         const known_hosts& kh) {
    const std::string fp = fingerprint(server_key);
    const std::string type = ssh_key_type_to_char(ssh_key_type(server_key));
    char* b64_raw = nullptr;
    if (ssh_pki_export_pubkey_base64(server_key, &b64_raw) != SSH_OK)
        return core::fail(core::errc::protocol_error, "cannot encode the server's host key");
    ssh_string_handle b64(b64_raw);
    const auto [host, port] = opts.known_hosts_name();
    const std::string name = known_hosts_name(host, port);
    const std::string label = fmt::format("{} key {}", key_label(server_key), fp);

    if (opts.host_key_fingerprint) {
        if (*opts.host_key_fingerprint == fp) return fp;
        return core::fail(
            core::errc::host_key_changed,
            fmt::format(
                "HOST KEY MISMATCH for {}: the server offers {}, but {} was pinned (someone may "
                "be intercepting the connection). If the server's key really changed, check "
                "the new fingerprint with its owner and pin that one",
                name, label, *opts.host_key_fingerprint));
    }
    if (opts.host_keys == host_key_policy::accept_any) {
        spdlog::warn("not checking the host key of {} ({}): StrictHostKeyChecking=no", name, label);
        return fp;
    }

    for (const auto& s : kh.skipped())
        spdlog::debug("{}:{}: ignored known_hosts line: {}", s.path, s.line, s.reason);
    auto c = kh.check(host, port, type, b64.get());
    const std::string user_file = opts.user_known_hosts_files.empty()
                                      ? "~/.ssh/known_hosts"
                                      : opts.user_known_hosts_files.front();
    switch (c.status) {
        case host_key_status::match:
            return fp;
        case host_key_status::revoked:
            return core::fail(
                core::errc::host_key_changed,
                fmt::format(
                    "the host key of {} ({}) is marked @revoked in {}:{}: refusing to connect",
                    name, label, c.where ? c.where->path : user_file, c.where ? c.where->line : 0));
        case host_key_status::changed:
            return core::fail(
                core::errc::host_key_changed,
                fmt::format(
                    "HOST KEY CHANGED for {}: the server now offers {}, but {}:{} records {} "
                    "(someone may be intercepting the connection). If the change is expected, "
                    "remove the "
                    "old entry with: ssh-keygen -R '{}' -f {}",
                    name, label, c.where->path, c.where->line, fingerprint_at(*c.where), name,
                    c.where->path));
        case host_key_status::unknown:
            break;
    }
    if (opts.host_keys == host_key_policy::accept_new) {
        if (auto a =
                known_hosts::append(user_file, host, port, type, b64.get(), opts.hash_known_hosts);
            !a)
            return core::fail(a.error().code, fmt::format("cannot record the host key of {}: {}",
                                                          name, a.error().message));
        spdlog::warn("permanently added {} ({}) to {}", name, label, user_file);
        if (opts.on_host_key_recorded) opts.on_host_key_recorded(name, fp, user_file);
        return fp;
    }
    std::string other;
    if (!c.other_key_types.empty())
        other = fmt::format(
            " ({} has a key of another type ({}) on record: the server may have changed its keys)",
            name, fmt::join(c.other_key_types, ", "));
    return core::fail(
        core::errc::host_key_unknown,
        fmt::format(
            "host key of {} is not known ({}){}: check the fingerprint with the host's owner, "
            "then add it with `ssh-keyscan -p {} {} >> {}` or connect once with "
            "-o StrictHostKeyChecking=accept-new",
            name, label, other, opts.port, opts.host, user_file));
}

}  // namespace tunnel::ssh
