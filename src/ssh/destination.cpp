#include "ssh/destination.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>

#include "ssh/proxy_command.hpp"

namespace tunnel::ssh {

namespace {

constexpr int max_jump_depth = 8;

host_key_policy to_policy(strict_host_key_checking s) {
    switch (s) {
        case strict_host_key_checking::yes:
            return host_key_policy::strict;
        case strict_host_key_checking::accept_new:
            return host_key_policy::accept_new;
        case strict_host_key_checking::no:
            return host_key_policy::accept_any;
    }
    return host_key_policy::strict;
}

// The agent socket to forward (connect_options::forward_agent): ForwardAgent
// yes (or -A) forwards the agent used to log in, as ssh does: IdentityAgent,
// else $SSH_AUTH_SOCK.
std::optional<std::string> agent_to_forward(const host_config& hc, std::optional<bool> flag) {
    if (flag == false || (!flag && !hc.forward_agent)) return std::nullopt;
    if (hc.forward_agent && *hc.forward_agent != "yes") return hc.forward_agent;
    if (!hc.identity_agent || *hc.identity_agent == "SSH_AUTH_SOCK") return "$SSH_AUTH_SOCK";
    if (*hc.identity_agent == "none") return std::string();
    return hc.identity_agent;
}

core::result<connect_options> from_config(const ssh_config& config, const target& t,
                                          const std::vector<std::string>& explicit_keys, int depth,
                                          std::optional<bool> forward_agent_flag) {
    if (depth > max_jump_depth)
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("ProxyJump chain deeper than {} hops: check for a loop in ssh_config",
                        max_jump_depth));
    auto hc = config.resolve(t.host, t.user, t.port);
    if (!hc) return tl::unexpected(hc.error());

    connect_options o;
    o.host = hc->hostname;
    o.port = hc->port;
    o.user = hc->user;
    o.identity_files = explicit_keys;  // -i first, then IdentityFile, as ssh does
    for (const auto& f : hc->identity_files)
        if (std::find(o.identity_files.begin(), o.identity_files.end(), f) ==
            o.identity_files.end())
            o.identity_files.push_back(f);
    o.certificate_files = hc->certificate_files;
    o.skip_missing_identities = true;  // -i files were checked up front; config ones may be stale
    o.use_agent = !hc->identities_only;
    o.identity_agent = hc->identity_agent;
    if (o.identity_agent && *o.identity_agent == "none") {
        o.use_agent = false;
        o.identity_agent.reset();
    } else if (o.identity_agent && *o.identity_agent == "SSH_AUTH_SOCK") {
        o.identity_agent.reset();
    }
    o.forward_agent = agent_to_forward(*hc, forward_agent_flag);
    o.pubkey_authentication = hc->pubkey_authentication;
    o.password_authentication = hc->password_authentication;
    o.kbd_interactive_authentication = hc->kbd_interactive_authentication;
    o.batch_mode = hc->batch_mode;
    o.host_keys = to_policy(hc->strict);
    o.user_known_hosts_files = hc->user_known_hosts_files;
    o.global_known_hosts_files = hc->global_known_hosts_files;
    o.host_key_alias = hc->host_key_alias;
    o.hash_known_hosts = hc->hash_known_hosts;
    if (hc->connect_timeout) o.connect_timeout = *hc->connect_timeout;
    o.server_alive_interval = hc->server_alive_interval;
    o.server_alive_count_max = hc->server_alive_count_max;
    o.ciphers = hc->ciphers;
    o.kex_algorithms = hc->kex_algorithms;
    o.macs = hc->macs;
    o.host_key_algorithms = hc->host_key_algorithms;
    o.compression = hc->compression;
    // ProxyCommand and ProxyJump exclude each other (the first one obtained won).
    if (hc->proxy_command) o.open_stream = proxy_command_opener(*hc->proxy_command);
    // Each hop is resolved through the same config (its own HostName, User, keys...).
    for (const auto& hop : hc->proxy_jump) {
        auto j = from_config(config, hop, explicit_keys, depth + 1, std::nullopt);
        if (!j) return tl::unexpected(j.error());
        // A hop's own jumps come before it.
        for (auto& inner : j->jumps) o.jumps.push_back(std::move(inner));
        j->jumps.clear();
        o.jumps.push_back(std::move(*j));
    }
    return o;
}

}  // namespace

resolve_context process_resolve_context() {
    resolve_context ctx;
    const passwd* pw = ::getpwuid(::getuid());
    const char* home = std::getenv("HOME");
    ctx.home = home && *home ? home : (pw ? pw->pw_dir : "/");
    ctx.local_user = pw ? pw->pw_name : "root";
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) ctx.local_hostname = host;
    ctx.getenv = [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        if (!v) return std::nullopt;
        return std::string(v);
    };
    return ctx;
}

core::result<ssh_config> load_ssh_config(const client_flags& flags, const resolve_context& ctx) {
    core::result<ssh_config> cfg = flags.config_file
                                       ? ssh_config::load_file(*flags.config_file, ctx)
                                       : ssh_config::load_default(ctx);
    if (!cfg) return cfg;
    for (const auto& o : flags.options)
        if (auto r = cfg->add_override(o); !r) return tl::unexpected(r.error());
    return cfg;
}

core::result<void> check_identity_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return core::fail(
            core::errc::not_found,
            fmt::format("identity file {}: {}: give the path of a private key with -i", path,
                        std::strerror(errno)));
    if (!S_ISREG(st.st_mode))
        return core::fail(core::errc::invalid_argument,
                          fmt::format("identity file {} is not a regular file", path));
    if (st.st_mode & 077)
        return core::fail(
            core::errc::permission_denied,
            fmt::format("permissions {:04o} for identity file {} are too open: the key must not be "
                        "readable by others; run chmod 600 {}",
                        st.st_mode & 07777, path, path));
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return core::fail(
            core::errc::permission_denied,
            fmt::format("cannot read identity file {}: {}", path, std::strerror(errno)));
    ::close(fd);
    return {};
}

core::result<connect_options> resolve_destination(const ssh_config& config,
                                                  std::string_view target_text,
                                                  const client_flags& flags) {
    auto t = parse_target(target_text);
    if (!t) return tl::unexpected(t.error());
    // -l and -p give way to user@ and :port in the target, as with ssh.
    if (!t->user && flags.user) t->user = flags.user;
    if (!t->port && flags.port) t->port = flags.port;
    for (const auto& key : flags.identity_files)
        if (auto c = check_identity_file(key); !c) return tl::unexpected(c.error());
    return from_config(config, *t, flags.identity_files, 0, flags.forward_agent);
}

}  // namespace tunnel::ssh
