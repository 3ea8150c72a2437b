// Everything needed to open one authenticated SSH session. Built by the CLI
// (or a library user) from ssh_config resolution plus flags.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ssh/byte_stream.hpp"

namespace tunnel::ssh {

enum class host_key_policy { strict, accept_new, accept_any };

// Asks the user for a secret (password, passphrase). Returns nullopt when no
// one can answer (no TTY, no askpass): the caller then gives up that method.
using secret_prompt = std::function<std::optional<std::string>(std::string_view prompt)>;

// One keyboard-interactive prompt from the server (name, instruction and
// prompt are the server's text, not yet sanitised). `first` marks the first
// prompt of a round, when name and instruction are to be shown.
struct interactive_prompt {
    std::string_view name;
    std::string_view instruction;
    std::string_view prompt;
    bool echo = false;  // the answer may be shown as it is typed
    bool first = true;
};
// Asks one keyboard-interactive prompt; nullopt when no one can answer (no
// terminal): authentication then fails with a message saying so.
using interactive_asker = std::function<std::optional<std::string>(const interactive_prompt&)>;

struct connect_options {
    std::string host;  // network address or name to resolve (HostName)
    uint16_t port = 22;
    std::string user;

    // Authentication, tried in OpenSSH's order: agent, identity files (each with its
    // certificates first), keyboard-interactive, password.
    bool use_agent = true;
    std::optional<std::string> identity_agent;  // socket path; default SSH_AUTH_SOCK
    std::vector<std::string> identity_files;    // tried in order
    // CertificateFile: user certificates, each offered with the identity
    // file whose key it certifies (`KEY-cert.pub` beside KEY is used too).
    std::vector<std::string> certificate_files;
    bool skip_missing_identities = true;  // defaults may be absent; -i files are checked by the CLI
    bool pubkey_authentication = true;
    bool password_authentication = true;
    bool kbd_interactive_authentication = true;
    bool batch_mode = false;  // never prompt
    secret_prompt ask_secret;
    interactive_asker ask_interactive;  // keyboard-interactive prompts, one at a time

    // Agent forwarding (-A, ForwardAgent; off by default, as in ssh): the
    // agent socket the server's `auth-agent@openssh.com` channels reach. A
    // path, or `$NAME` for an environment variable read when it is needed
    // ($SSH_AUTH_SOCK for ForwardAgent yes). Empty: asked for, but there is
    // no agent to forward (IdentityAgent none). See ssh/agent_forward.hpp.
    std::optional<std::string> forward_agent;

    // Host keys.
    host_key_policy host_keys = host_key_policy::strict;
    std::vector<std::string> user_known_hosts_files;
    std::vector<std::string> global_known_hosts_files;
    std::optional<std::string>
        host_key_alias;             // name looked up in known_hosts instead of host:port
    bool hash_known_hosts = false;  // hash the name when accept-new records a key
    // "SHA256:..." : accept only the key with this fingerprint (known_hosts is not consulted).
    std::optional<std::string> host_key_fingerprint;
    // Called when accept-new records a key seen for the first time (TOFU):
    // the known_hosts name ("[relay]:8443"), its "SHA256:..." and the file.
    std::function<void(const std::string& name, const std::string& fingerprint,
                       const std::string& file)>
        on_host_key_recorded;

    // Transport.
    std::chrono::milliseconds connect_timeout{30'000};
    std::chrono::seconds server_alive_interval{0};
    int server_alive_count_max = 3;
    std::optional<std::string> ciphers, kex_algorithms, macs, host_key_algorithms;
    bool compression = false;

    // ProxyJump hops, outermost first; each hop is a full session of its own.
    std::vector<connect_options> jumps;
    // When set, the session runs over the stream this opens (e.g. a WebSocket
    // to a relay) instead of TCP to host:port or the jumps; host and port then
    // only name the server (messages, known_hosts).
    stream_opener open_stream;

    // "user@host:port": pool key and the name used in messages.
    [[nodiscard]] std::string destination() const;
    // UserKnownHostsFile then GlobalKnownHostsFile.
    [[nodiscard]] std::vector<std::string> known_hosts_files() const;
    // The name and port known_hosts is searched for: HostKeyAlias (in its
    // port-22 form) or the real host:port.
    [[nodiscard]] std::pair<std::string, std::uint16_t> known_hosts_name() const;
};

}  // namespace tunnel::ssh
