#include "ssh/host_certificate.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/ascii.hpp"
#include "core/log_text.hpp"
#include "ssh/certificate.hpp"
#include "ssh/known_hosts.hpp"

namespace tunnel::ssh {

namespace {

using core::errc;
using core::fail;

core::result<std::string> key_blob_of(ssh_key key) {
    char* raw = nullptr;
    if (ssh_pki_export_pubkey_base64(key, &raw) != SSH_OK || raw == nullptr)
        return fail(errc::protocol_error, "cannot encode the server's host key");
    ssh_string_handle b64(raw);
    auto blob = decode_base64(b64.get());
    if (!blob) return fail(errc::protocol_error, "cannot decode the server's host key");
    return std::move(*blob);
}

}  // namespace

bool wants_host_certificate(const connect_options& opts, ssh_key server_key) {
    if (opts.host_key_fingerprint || opts.host_keys == host_key_policy::accept_any) return false;
    return wants_host_certificate(opts, server_key, known_hosts::load(opts.known_hosts_files()));
}

bool wants_host_certificate(const connect_options& opts, ssh_key server_key,
                            const known_hosts& kh) {
    if (opts.host_key_fingerprint || opts.host_keys == host_key_policy::accept_any) return false;
    const auto [host, port] = opts.known_hosts_name();
    if (kh.cert_authorities_for(host, port).empty()) return false;
    char* raw = nullptr;
    if (ssh_pki_export_pubkey_base64(server_key, &raw) != SSH_OK || raw == nullptr) return false;
    ssh_string_handle b64(raw);
    auto c = kh.check(host, port, ssh_key_type_to_char(ssh_key_type(server_key)), b64.get());
    return c.status != host_key_status::match && c.status != host_key_status::revoked;
}

std::string host_certificate_algorithm(ssh_key server_key) {
    return certificate_algorithm_for(ssh_key_type_to_char(ssh_key_type(server_key)));
}

core::result<std::string> check_host_certificate(const connect_options& opts, ssh_key server_key,
                                                 std::string_view cert_blob, std::int64_t now) {
    auto refuse = [](std::string why) { return fail(errc::host_key_unknown, std::move(why)); };
    auto server_blob = key_blob_of(server_key);
    if (!server_blob) return tl::unexpected(server_blob.error());
    auto cert = parse_certificate(cert_blob);
    if (!cert)
        return refuse(fmt::format("the server's host certificate: {}", cert.error().message));
    const std::string what = fmt::format("host certificate ({})", describe_certificate(*cert));
    if (cert->role != certificate_role::host)
        return refuse(fmt::format("the server's {} is a user certificate", what));
    if (cert->key_blob != *server_blob)
        return refuse(fmt::format(
            "the server's {} certifies another key ({}) than the one it "
            "used ({})",
            what, key_blob_fingerprint(cert->key_blob), key_blob_fingerprint(*server_blob)));

    auto kh = known_hosts::load(opts.known_hosts_files());
    const auto [host, port] = opts.known_hosts_name();
    const std::string name = known_hosts_name(host, port);
    const auto cas = kh.cert_authorities_for(host, port);
    auto trusted = std::find_if(cas.begin(), cas.end(),
                                [&](const auto& ca) { return ca.key_blob == cert->ca_key_blob; });
    if (trusted == cas.end())
        return refuse(fmt::format(
            "the server's {} is signed by CA {}, which no @cert-authority line for {} trusts ({} "
            "other CA(s) match that name)",
            what, key_blob_fingerprint(cert->ca_key_blob), name, cas.size()));
    if (auto r = kh.revoked_for(host, port, cert->ca_key_blob))
        return refuse(fmt::format("the CA of the server's {} is marked @revoked in {}:{}", what,
                                  r->path, r->line));
    if (auto v = verify_certificate_signature(*cert); !v)
        return refuse(fmt::format("the server's {}: {}", what, v.error().message));
    if (auto t = check_certificate_time(*cert, now); !t)
        return refuse(fmt::format("the server's {} {}", what, t.error().message));
    if (!cert->critical_options.empty()) {
        const std::string options = fmt::format("{}", fmt::join(cert->critical_options, ","));
        return refuse(
            fmt::format("the server's {} has critical options ({}), which host "
                        "certificates must not have",
                        what, core::log_text(options)));
    }
    const std::string principal = core::lowercase(host);
    if (cert->principals.empty())  // OpenSSH 9.2 takes it as valid for any host: so do we
        spdlog::warn(
            "the {} names no host: accepted for {} as ssh does (sign host "
            "certificates with -n HOST)",
            what, principal);
    else if (std::none_of(cert->principals.begin(), cert->principals.end(),
                          [&](const std::string& p) { return core::lowercase(p) == principal; }))
        return refuse(fmt::format("the server's {} is not for {}", what, principal));
    return fmt::format("{} from {}:{}", what, trusted->where.path, trusted->where.line);
}

}  // namespace tunnel::ssh
