#include "ssh/ssh_config_syntax.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include <openssl/evp.h>

namespace tunnel::ssh::config_syntax {

using core::errc;
using core::fail;

// ---------------------------------------------------------------------------
// Keywords

namespace {

// Every keyword of ssh_config(5) in OpenSSH 9.2, plus the deprecated and
// removed names OpenSSH still accepts so that old configs keep loading.
constexpr std::array keywords{
    keyword_info{"Host", k_host},
    keyword_info{"Match", k_match},
    keyword_info{"Include", k_include},
    keyword_info{"IgnoreUnknown", k_ignore_unknown},
    keyword_info{"HostName", k_hostname},
    keyword_info{"User", k_user},
    keyword_info{"Port", k_port},
    keyword_info{"IdentityFile", k_identity_file},
    keyword_info{"IdentityFile2", k_identity_file},  // deprecated alias
    keyword_info{"CertificateFile", k_certificate_file},
    keyword_info{"IdentitiesOnly", k_identities_only},
    keyword_info{"IdentityAgent", k_identity_agent},
    keyword_info{"ProxyJump", k_proxy_jump},
    keyword_info{"ProxyCommand", k_proxy_command},
    keyword_info{"ConnectTimeout", k_connect_timeout},
    keyword_info{"ServerAliveInterval", k_server_alive_interval},
    keyword_info{"ServerAliveCountMax", k_server_alive_count_max},
    keyword_info{"StrictHostKeyChecking", k_strict_host_key_checking},
    keyword_info{"UserKnownHostsFile", k_user_known_hosts_file},
    keyword_info{"GlobalKnownHostsFile", k_global_known_hosts_file},
    keyword_info{"HostKeyAlias", k_host_key_alias},
    keyword_info{"HashKnownHosts", k_hash_known_hosts},
    keyword_info{"BatchMode", k_batch_mode},
    keyword_info{"PasswordAuthentication", k_password_authentication},
    keyword_info{"PubkeyAuthentication", k_pubkey_authentication},
    keyword_info{"DSAAuthentication", k_pubkey_authentication},  // OpenSSH alias
    keyword_info{"Ciphers", k_ciphers},
    keyword_info{"KexAlgorithms", k_kex_algorithms},
    keyword_info{"MACs", k_macs},
    keyword_info{"HostKeyAlgorithms", k_host_key_algorithms},
    keyword_info{"Compression", k_compression},
    keyword_info{"ConnectionAttempts", k_connection_attempts},
    keyword_info{"LogLevel", k_log_level},
    keyword_info{"SetEnv", k_set_env},
    keyword_info{"SendEnv", k_send_env},
    keyword_info{"RequestTTY", k_request_tty},
    keyword_info{"ForwardAgent", k_forward_agent},
    // Accepted and ignored (man 5 ssh_config, OpenSSH 9.2).
    keyword_info{"AddKeysToAgent", k_ignored},
    keyword_info{"AddressFamily", k_ignored},
    keyword_info{"BindAddress", k_ignored},
    keyword_info{"BindInterface", k_ignored},
    keyword_info{"CASignatureAlgorithms", k_ignored},
    keyword_info{"CanonicalDomains", k_ignored},
    keyword_info{"CanonicalizeFallbackLocal", k_ignored},
    keyword_info{"CanonicalizeHostname", k_ignored},
    keyword_info{"CanonicalizeMaxDots", k_ignored},
    keyword_info{"CanonicalizePermittedCNAMEs", k_ignored},
    keyword_info{"CheckHostIP", k_ignored},
    keyword_info{"ClearAllForwardings", k_ignored},
    keyword_info{"ControlMaster", k_ignored},
    keyword_info{"ControlPath", k_ignored},
    keyword_info{"ControlPersist", k_ignored},
    keyword_info{"DynamicForward", k_ignored},
    keyword_info{"EnableEscapeCommandline", k_ignored},
    keyword_info{"EnableSSHKeysign", k_ignored},
    keyword_info{"EscapeChar", k_ignored},
    keyword_info{"ExitOnForwardFailure", k_ignored},
    keyword_info{"FingerprintHash", k_ignored},
    keyword_info{"ForkAfterAuthentication", k_ignored},
    keyword_info{"ForwardX11", k_ignored},
    keyword_info{"ForwardX11Timeout", k_ignored},
    keyword_info{"ForwardX11Trusted", k_ignored},
    keyword_info{"GSSAPIAuthentication", k_ignored},
    keyword_info{"GSSAPIClientIdentity", k_ignored},
    keyword_info{"GSSAPIDelegateCredentials", k_ignored},
    keyword_info{"GSSAPIKexAlgorithms", k_ignored},
    keyword_info{"GSSAPIKeyExchange", k_ignored},
    keyword_info{"GSSAPIRenewalForcesRekey", k_ignored},
    keyword_info{"GSSAPIServerIdentity", k_ignored},
    keyword_info{"GSSAPITrustDns", k_ignored},
    keyword_info{"GatewayPorts", k_ignored},
    keyword_info{"HostbasedAcceptedAlgorithms", k_ignored},
    keyword_info{"HostbasedAuthentication", k_ignored},
    keyword_info{"IPQoS", k_ignored},
    keyword_info{"KbdInteractiveAuthentication", k_kbd_interactive_authentication},
    keyword_info{"KbdInteractiveDevices", k_ignored},
    keyword_info{"KnownHostsCommand", k_ignored},
    keyword_info{"LocalCommand", k_ignored},
    keyword_info{"LocalForward", k_ignored},
    keyword_info{"LogVerbose", k_ignored},
    keyword_info{"NoHostAuthenticationForLocalhost", k_ignored},
    keyword_info{"NumberOfPasswordPrompts", k_ignored},
    keyword_info{"PKCS11Provider", k_ignored},
    keyword_info{"PermitLocalCommand", k_ignored},
    keyword_info{"PermitRemoteOpen", k_ignored},
    keyword_info{"PreferredAuthentications", k_ignored},
    keyword_info{"ProxyUseFdpass", k_ignored},
    keyword_info{"PubkeyAcceptedAlgorithms", k_ignored},
    keyword_info{"RekeyLimit", k_ignored},
    keyword_info{"RemoteCommand", k_ignored},
    keyword_info{"RemoteForward", k_ignored},
    keyword_info{"RequiredRSASize", k_ignored},
    keyword_info{"RevokedHostKeys", k_ignored},
    keyword_info{"SecurityKeyProvider", k_ignored},
    keyword_info{"SessionType", k_ignored},
    keyword_info{"StdinNull", k_ignored},
    keyword_info{"StreamLocalBindMask", k_ignored},
    keyword_info{"StreamLocalBindUnlink", k_ignored},
    keyword_info{"SyslogFacility", k_ignored},
    keyword_info{"TCPKeepAlive", k_ignored},
    keyword_info{"Tunnel", k_ignored},
    keyword_info{"TunnelDevice", k_ignored},
    keyword_info{"UpdateHostKeys", k_ignored},
    keyword_info{"VerifyHostKeyDNS", k_ignored},
    keyword_info{"VisualHostKey", k_ignored},
    keyword_info{"XAuthLocation", k_ignored},
    // Deprecated or unsupported names OpenSSH 9.2 still accepts (readconf.c).
    keyword_info{"ChallengeResponseAuthentication", k_kbd_interactive_authentication},
    keyword_info{"SkeyAuthentication", k_ignored},
    keyword_info{"TISAuthentication", k_ignored},
    keyword_info{"PubkeyAcceptedKeyTypes", k_ignored},
    keyword_info{"HostbasedKeyTypes", k_ignored},
    keyword_info{"SmartcardDevice", k_ignored},
    keyword_info{"Cipher", k_ignored},
    keyword_info{"Protocol", k_ignored},
    keyword_info{"CompressionLevel", k_ignored},
    keyword_info{"UseRoaming", k_ignored},
    keyword_info{"UsePrivilegedPort", k_ignored},
    keyword_info{"UseRsh", k_ignored},
    keyword_info{"FallBackToRsh", k_ignored},
    keyword_info{"UseBlacklistedKeys", k_ignored},
    keyword_info{"RhostsAuthentication", k_ignored},
    keyword_info{"RSAAuthentication", k_ignored},
    keyword_info{"RhostsRSAAuthentication", k_ignored},
    keyword_info{"AFSTokenPassing", k_ignored},
    keyword_info{"KerberosAuthentication", k_ignored},
    keyword_info{"KerberosTGTPassing", k_ignored},
    keyword_info{"GlobalKnownHostsFile2", k_ignored},
    keyword_info{"UserKnownHostsFile2", k_ignored},
};

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

const keyword_info* find_keyword(std::string_view name) noexcept {
    for (const auto& k : keywords)
        if (iequals(k.name, name)) return &k;
    return nullptr;
}

std::string_view keyword_name(int id) noexcept {
    for (const auto& k : keywords)
        if (k.id == id) return k.name;
    return "?";
}

// ---------------------------------------------------------------------------
// Line splitting (OpenSSH's strdelim for the keyword, argv_split for values)

bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

core::result<std::optional<split_line>> split_config_line(std::string_view line) {
    std::size_t i = 0;
    while (i < line.size() && is_space(line[i])) ++i;
    if (i == line.size() || line[i] == '#') return std::nullopt;

    split_line out;
    std::size_t start = i;
    while (i < line.size() && !is_space(line[i]) && line[i] != '=') ++i;
    out.keyword = std::string(line.substr(start, i - start));
    while (i < line.size() && is_space(line[i])) ++i;
    if (i < line.size() && line[i] == '=') ++i;
    while (i < line.size() && is_space(line[i])) ++i;
    std::string_view rest = line.substr(i);
    while (!rest.empty() && is_space(rest.back())) rest.remove_suffix(1);
    out.raw_value = std::string(rest);

    // Arguments: whitespace separated, '"' and '\'' quote (and may join with
    // adjacent text), backslash escapes a quote, a backslash or a space, and
    // '#' at the start of an argument begins a comment.
    std::size_t p = 0;
    while (true) {
        while (p < rest.size() && is_space(rest[p])) ++p;
        if (p == rest.size() || rest[p] == '#') break;
        std::string arg;
        char quote = 0;
        while (p < rest.size()) {
            char c = rest[p];
            if (quote == 0 && is_space(c)) break;
            if (c == '\\' && p + 1 < rest.size() &&
                (rest[p + 1] == '\\' || rest[p + 1] == '"' || rest[p + 1] == '\'' ||
                 (quote == 0 && rest[p + 1] == ' '))) {
                arg += rest[p + 1];
                p += 2;
                continue;
            }
            if (quote == 0 && (c == '"' || c == '\'')) {
                quote = c;
            } else if (quote != 0 && c == quote) {
                quote = 0;
            } else {
                arg += c;
            }
            ++p;
        }
        if (quote != 0) {
            std::string msg = "unterminated ";
            msg += quote;
            msg += " quote; close it or escape it with \\";
            return fail(errc::invalid_argument, std::move(msg));
        }
        out.args.push_back(std::move(arg));
    }
    return out;
}

// ---------------------------------------------------------------------------
// Values

std::string quoted_config_value(std::string_view s) {
    return "'" + std::string(s) + "'";
}

// OpenSSH's convtime: `90`, `30s`, `5m`, `1h30m`, `2d`, `1w`; units any case.
std::optional<long long> parse_openssh_time(std::string_view v) {
    if (v.empty()) return std::nullopt;
    long long total = 0;
    std::size_t i = 0;
    while (i < v.size()) {
        if (!std::isdigit(static_cast<unsigned char>(v[i]))) return std::nullopt;
        long long n = 0;
        while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) {
            n = n * 10 + (v[i] - '0');
            if (n > std::numeric_limits<int>::max()) return std::nullopt;
            ++i;
        }
        long long mult = 1;
        if (i < v.size()) {
            switch (std::tolower(static_cast<unsigned char>(v[i]))) {
                case 's':
                    mult = 1;
                    break;
                case 'm':
                    mult = 60;
                    break;
                case 'h':
                    mult = 3600;
                    break;
                case 'd':
                    mult = 86400;
                    break;
                case 'w':
                    mult = 604800;
                    break;
                default:
                    return std::nullopt;
            }
            ++i;
        }
        total += n * mult;
        if (total > std::numeric_limits<int>::max()) return std::nullopt;
    }
    return total;
}

std::optional<long long> parse_uint(std::string_view v, long long max) {
    if (v.empty() || v.size() > 10) return std::nullopt;
    long long n = 0;
    for (char c : v) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
        n = n * 10 + (c - '0');
    }
    if (n > max) return std::nullopt;
    return n;
}

core::result<uint16_t> parse_port_value(std::string_view v) {
    auto n = parse_uint(v, 65535);
    if (!n || *n == 0)
        return fail(errc::invalid_argument,
                    "Port must be a number from 1 to 65535, got " + quoted_config_value(v));
    return static_cast<uint16_t>(*n);
}

core::result<bool> parse_flag(std::string_view name, std::string_view v) {
    if (iequals(v, "yes") || iequals(v, "true")) return true;
    if (iequals(v, "no") || iequals(v, "false")) return false;
    return fail(errc::invalid_argument,
                std::string(name) + " must be yes or no, got " + quoted_config_value(v));
}

// ---------------------------------------------------------------------------
// Token expansion: `~`, `%x`, `${VAR}`

// With `values == nullptr` only checks the syntax (used when loading).
core::result<std::string> expand_tokens(std::string_view in, std::string_view allowed,
                                        bool tilde_and_env, const token_fn* values,
                                        const resolve_context& ctx) {
    std::string out;
    std::size_t i = 0;
    if (tilde_and_env && !in.empty() && in[0] == '~') {
        if (in.size() == 1 || in[1] == '/') {
            out = ctx.home;
            i = 1;
        } else {
            return fail(errc::invalid_argument, "~user paths are not supported in " +
                                                    quoted_config_value(in) +
                                                    "; write the full path");
        }
    }
    while (i < in.size()) {
        char c = in[i];
        if (c == '%') {
            if (i + 1 == in.size())
                return fail(errc::invalid_argument, "trailing % in " + quoted_config_value(in) +
                                                        "; write %% for a literal %");
            char t = in[i + 1];
            if (allowed.find(t) == std::string_view::npos) {
                std::string list;
                for (char a : allowed) list += std::string(list.empty() ? "" : " ") + "%" + a;
                return fail(errc::invalid_argument, "unknown token %" + std::string(1, t) + " in " +
                                                        quoted_config_value(in) +
                                                        " (supported here: " + list + ")");
            }
            if (t == '%')
                out += '%';
            else if (values)
                out += (*values)(t);
            i += 2;
        } else if (tilde_and_env && c == '$' && i + 1 < in.size() && in[i + 1] == '{') {
            auto close = in.find('}', i + 2);
            if (close == std::string_view::npos)
                return fail(errc::invalid_argument,
                            "unterminated ${ in " + quoted_config_value(in));
            std::string name(in.substr(i + 2, close - i - 2));
            if (name.empty())
                return fail(errc::invalid_argument, "empty ${} in " + quoted_config_value(in));
            if (values) {
                std::optional<std::string> v = ctx.getenv ? ctx.getenv(name) : std::nullopt;
                if (!v)
                    return fail(errc::invalid_argument, "environment variable " + name +
                                                            " used in " + quoted_config_value(in) +
                                                            " is not set");
                out += *v;
            }
            i = close + 1;
        } else {
            out += c;
            ++i;
        }
    }
    return out;
}

std::string sha1_hex(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr) != 1) return {};
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 0xf];
    }
    return out;
}

}  // namespace tunnel::ssh::config_syntax
