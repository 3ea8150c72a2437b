#include "ssh/client_auth.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "ssh/user_certificate.hpp"

namespace tunnel::ssh {

namespace {

using core::errc;
using core::fail;

constexpr int max_auth_rounds = 8;      // partial successes followed
constexpr int max_kbdint_rounds = 32;   // INFO_REQUESTs in one keyboard-interactive attempt
constexpr int max_kbdint_prompts = 64;  // prompts in one INFO_REQUEST

enum class step { failed, partial, success };

// What was tried and why things could not be used, for the final message.
struct auth_log {
    std::vector<std::string> tried;
    std::vector<std::string> notes;
};

bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

step step_of(int rc) {
    if (rc == SSH_AUTH_SUCCESS) return step::success;
    if (rc == SSH_AUTH_PARTIAL) return step::partial;
    return step::failed;
}

class authenticator {
  public:
    authenticator(session& s, time_point deadline)
        : s_(s), ssh_(s.native()), opts_(s.options()), deadline_(deadline) {}

    asio::awaitable<core::result<void>> run() {
        // Keys first, without the `none` probe for the server's methods: it
        // costs a round trip, and nearly every server takes public keys. The
        // probe still runs when the keys were refused (a server that lets
        // `none` in, or that wants a password).
        bool tried_pubkey = false;
        std::optional<step> keys;
        if (keys_at_hand()) {
            if (auto loaded = load_certificates(); !loaded)
                co_return tl::unexpected(loaded.error());
            tried_pubkey = true;
            auto r = co_await public_keys();
            if (!r) co_return tl::unexpected(r.error());
            if (*r == step::success) co_return core::result<void>{};
            keys = *r;
        }
        if (keys != step::partial) {
            auto none = co_await s_.drive([this] { return ssh_userauth_none(ssh_, nullptr); },
                                          SSH_AUTH_AGAIN, deadline_);
            if (!none) co_return tl::unexpected(none.error());
            if (*none == SSH_AUTH_SUCCESS) co_return core::result<void>{};
            if (*none == SSH_AUTH_ERROR)
                co_return fail(errc::auth_unavailable,
                               fmt::format("{} did not answer the authentication request: {}",
                                           opts_.destination(), s_.last_error()));
            if (!tried_pubkey)
                if (auto loaded = load_certificates(); !loaded)
                    co_return tl::unexpected(loaded.error());
        } else {
            spdlog::debug("{}: partial success, the server wants more", opts_.destination());
        }

        for (int round = 0; round < max_auth_rounds; ++round) {
            const int methods = ssh_userauth_list(ssh_, nullptr);
            auto r = co_await one_round(methods, tried_pubkey);
            if (!r) co_return tl::unexpected(r.error());
            if (*r == step::success) co_return core::result<void>{};
            if (*r == step::failed) co_return tl::unexpected(denied(methods));
            spdlog::debug("{}: partial success, the server wants more", opts_.destination());
        }
        co_return fail(errc::auth_failed,
                       fmt::format("{} asked for more than {} authentication steps",
                                   opts_.destination(), max_auth_rounds));
    }

  private:
    // A key to offer before asking the server which methods it takes: the
    // agent (when it is used and its socket exists) or an identity file.
    [[nodiscard]] bool keys_at_hand() const {
        if (!opts_.pubkey_authentication) return false;
        if (opts_.use_agent) {
            const char* sock =
                opts_.identity_agent ? opts_.identity_agent->c_str() : std::getenv("SSH_AUTH_SOCK");
            if (sock && *sock && file_exists(sock)) return true;
        }
        return std::any_of(opts_.identity_files.begin(), opts_.identity_files.end(), file_exists);
    }

    // Tries each method the server accepts once; stops at the first success
    // or partial success.
    asio::awaitable<core::result<step>> one_round(int methods, bool& tried_pubkey) {
        if ((methods & SSH_AUTH_METHOD_PUBLICKEY) && opts_.pubkey_authentication && !tried_pubkey) {
            tried_pubkey = true;
            auto r = co_await public_keys();
            if (!r || *r != step::failed) co_return r;
        }
        if ((methods & SSH_AUTH_METHOD_INTERACTIVE) && opts_.kbd_interactive_authentication) {
            auto r = co_await keyboard_interactive();
            if (!r || *r != step::failed) co_return r;
        }
        if ((methods & SSH_AUTH_METHOD_PASSWORD) && opts_.password_authentication) {
            auto r = co_await password();
            if (!r || *r != step::failed) co_return r;
        }
        co_return step::failed;
    }

    // CertificateFile entries: a missing one is skipped (as ssh does), one
    // that exists but cannot be used is an error naming it.
    core::result<void> load_certificates() {
        for (const auto& path : opts_.certificate_files) {
            if (!file_exists(path)) {
                spdlog::debug("CertificateFile {} does not exist: skipped", path);
                continue;
            }
            auto c = load_user_certificate(path);
            if (!c) return tl::unexpected(c.error());
            configured_.push_back(std::move(*c));
            configured_used_.push_back(false);
        }
        return {};
    }

    asio::awaitable<core::result<step>> public_keys() {
        if (opts_.use_agent) {
            const char* sock =
                opts_.identity_agent ? opts_.identity_agent->c_str() : std::getenv("SSH_AUTH_SOCK");
            if (sock && *sock && file_exists(sock)) {
                auto rc = co_await s_.drive([this] { return ssh_userauth_agent(ssh_, nullptr); },
                                            SSH_AUTH_AGAIN, deadline_);
                if (!rc) co_return tl::unexpected(rc.error());
                if (step_of(*rc) != step::failed) co_return step_of(*rc);
                log_.tried.emplace_back("ssh-agent");
            }
        }
        for (const auto& path : opts_.identity_files) {
            auto r = co_await identity(path);
            if (!r || *r != step::failed) co_return r;
        }
        for (std::size_t i = 0; i < configured_.size(); ++i)
            if (!configured_used_[i])
                log_.notes.push_back(fmt::format(
                    "certificate {} certifies key {}, which is not among the identity files "
                    "(give its private key with -i or IdentityFile)",
                    configured_[i].path, key_blob_fingerprint(configured_[i].cert.key_blob)));
        co_return step::failed;
    }

    // The private key at `path`, asking for its passphrase when it is
    // encrypted (only once the server showed it would accept the key).
    core::result<key_handle> load_private(const std::string& path) {
        ssh_key raw = nullptr;
        if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &raw) == SSH_OK)
            return key_handle(raw);
        if (!opts_.ask_secret || opts_.batch_mode)
            return fail(errc::auth_failed, "needs a passphrase");
        auto pass = opts_.ask_secret(fmt::format("Enter passphrase for key '{}': ", path));
        if (!pass) return fail(errc::auth_failed, "needs a passphrase");
        int rc = ssh_pki_import_privkey_file(path.c_str(), pass->c_str(), nullptr, nullptr, &raw);
        std::fill(pass->begin(), pass->end(), '\0');
        if (rc != SSH_OK) {
            spdlog::warn("wrong passphrase for {}", path);
            return fail(errc::auth_failed, "wrong passphrase");
        }
        return key_handle(raw);
    }

    asio::awaitable<core::result<int>> offer(ssh_key pub) {
        auto rc = co_await s_.drive([&] { return ssh_userauth_try_publickey(ssh_, nullptr, pub); },
                                    SSH_AUTH_AGAIN, deadline_);
        co_return rc;
    }

    asio::awaitable<core::result<step>> sign_with(ssh_key priv) {
        auto a = co_await s_.drive([&] { return ssh_userauth_publickey(ssh_, nullptr, priv); },
                                   SSH_AUTH_AGAIN, deadline_);
        if (!a) co_return tl::unexpected(a.error());
        if (*a == SSH_AUTH_ERROR)
            co_return fail(errc::auth_unavailable,
                           fmt::format("authentication with {} failed: {}", opts_.destination(),
                                       s_.last_error()));
        co_return step_of(*a);
    }

    asio::awaitable<core::result<step>> identity(const std::string& path) {
        if (!file_exists(path)) {
            if (opts_.skip_missing_identities) co_return step::failed;
            co_return fail(errc::not_found, fmt::format("identity file {} does not exist", path));
        }
        log_.tried.push_back(path);

        // The key's public half, without a passphrase if possible.
        key_handle priv;
        std::string blob;
        ssh_key raw = nullptr;
        if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &raw) == SSH_OK) {
            priv.reset(raw);
        } else if (ssh_pki_import_pubkey_file((path + ".pub").c_str(), &raw) == SSH_OK) {
            key_handle pub(raw);
            if (auto b = plain_public_key_blob(pub.get())) blob = std::move(*b);
        }
        if (priv)
            if (auto b = plain_public_key_blob(priv.get())) blob = std::move(*b);

        // Certificates for this key: KEY-cert.pub beside it, then CertificateFile.
        std::vector<const user_certificate*> certs;
        std::optional<user_certificate> beside;
        if (const std::string cert_path = path + "-cert.pub"; file_exists(cert_path)) {
            auto c = load_user_certificate(cert_path);
            if (!c) co_return tl::unexpected(c.error());
            beside = std::move(*c);
            certs.push_back(&*beside);
        }
        for (std::size_t i = 0; i < configured_.size(); ++i)
            if (blob.empty() || configured_[i].cert.key_blob == blob) {
                configured_used_[i] = true;
                certs.push_back(&configured_[i]);
            }
        const auto now = unix_now();
        for (const user_certificate* c : certs) {
            // Encrypted key without a .pub: assume the certificate is for it
            // until the key is decrypted.
            const std::string& key_blob = blob.empty() ? c->cert.key_blob : blob;
            if (auto problem = user_certificate_problem(*c, key_blob, now); !problem.empty()) {
                log_.notes.push_back(fmt::format("certificate {} {}", c->path, problem));
                continue;
            }
            auto q = co_await offer(c->key.get());
            if (!q) co_return tl::unexpected(q.error());
            if (*q == SSH_AUTH_ERROR)
                co_return fail(errc::auth_unavailable,
                               fmt::format("authentication with {} failed: {}", opts_.destination(),
                                           s_.last_error()));
            if (*q != SSH_AUTH_SUCCESS) {
                log_.notes.push_back(fmt::format(
                    "the server refused certificate {} ({}): check that its CA is in the "
                    "server's TrustedUserCAKeys and that {} is one of its principals",
                    c->path, describe_certificate(c->cert), core::log_text(opts_.user)));
                continue;
            }
            if (!priv) {
                auto p = load_private(path);
                if (!p) {
                    log_.notes.push_back(fmt::format("{}: {}", path, p.error().message));
                    co_return step::failed;
                }
                priv = std::move(*p);
                auto b = plain_public_key_blob(priv.get());
                if (!b || *b != c->cert.key_blob) {
                    log_.notes.push_back(
                        fmt::format("certificate {} certifies another key than {}", c->path, path));
                    continue;
                }
            }
            auto with_cert = attach_certificate(priv.get(), *c);
            if (!with_cert) co_return tl::unexpected(with_cert.error());
            auto a = co_await sign_with(with_cert->get());
            if (!a || *a != step::failed) {
                if (a) spdlog::debug("authenticated with certificate {}", c->path);
                co_return a;
            }
            log_.notes.push_back(
                fmt::format("the server refused the signature with certificate {}", c->path));
        }

        // The plain key.
        if (!priv) {
            if (blob.empty()) {
                spdlog::debug(
                    "skipping identity {}: cannot load it without a passphrase and no "
                    ".pub beside it",
                    path);
                co_return step::failed;
            }
            ssh_key pub_raw = nullptr;
            if (ssh_pki_import_pubkey_file((path + ".pub").c_str(), &pub_raw) != SSH_OK)
                co_return step::failed;
            key_handle pub(pub_raw);
            auto q = co_await offer(pub.get());
            if (!q) co_return tl::unexpected(q.error());
            if (*q != SSH_AUTH_SUCCESS) co_return step::failed;
            auto p = load_private(path);
            if (!p) co_return step::failed;
            priv = std::move(*p);
        }
        auto signed_in = co_await sign_with(priv.get());
        co_return signed_in;
    }

    // Asks one prompt through the caller's asker, or its secret prompt.
    std::optional<std::string> ask(const interactive_prompt& p) {
        if (opts_.ask_interactive) return opts_.ask_interactive(p);
        if (opts_.ask_secret) return opts_.ask_secret(p.prompt);
        return std::nullopt;
    }

    asio::awaitable<core::result<step>> keyboard_interactive() {
        if (opts_.batch_mode) {
            log_.notes.emplace_back(
                "the server also offers keyboard-interactive login (prompts such as a one-time "
                "code), which BatchMode=yes does not answer");
            co_return step::failed;
        }
        if (!opts_.ask_interactive && !opts_.ask_secret) co_return step::failed;
        log_.tried.emplace_back("keyboard-interactive");
        // Wrong answers get two more tries, as ssh's NumberOfPasswordPrompts.
        for (int attempt = 0; attempt < 3; ++attempt) {
            if (attempt > 0) spdlog::warn("permission denied, please try again");
            auto r = co_await kbdint_attempt();
            if (!r || *r != step::failed || !retry_kbdint_) co_return r;
        }
        log_.notes.emplace_back("keyboard-interactive answers refused");
        co_return step::failed;
    }

    // One keyboard-interactive exchange, round after round of prompts.
    asio::awaitable<core::result<step>> kbdint_attempt() {
        retry_kbdint_ = false;
        auto rc = co_await s_.drive([this] { return ssh_userauth_kbdint(ssh_, nullptr, nullptr); },
                                    SSH_AUTH_AGAIN, deadline_);
        bool answered = false;
        for (int round = 0; rc && *rc == SSH_AUTH_INFO; ++round) {
            if (round >= max_kbdint_rounds)
                co_return fail(errc::auth_failed,
                               fmt::format("{} sent more than {} keyboard-interactive rounds",
                                           opts_.destination(), max_kbdint_rounds));
            const int n = ssh_userauth_kbdint_getnprompts(ssh_);
            if (n < 0 || n > max_kbdint_prompts)
                co_return fail(errc::protocol_error,
                               fmt::format("{} sent {} keyboard-interactive prompts at once",
                                           opts_.destination(), n));
            const char* name_raw = ssh_userauth_kbdint_getname(ssh_);
            const char* instruction_raw = ssh_userauth_kbdint_getinstruction(ssh_);
            const std::string name = terminal_safe(name_raw ? name_raw : "");
            const std::string instruction = terminal_safe(instruction_raw ? instruction_raw : "");
            for (int i = 0; i < n; ++i) {
                char echo = 0;
                const char* prompt_raw =
                    ssh_userauth_kbdint_getprompt(ssh_, static_cast<unsigned>(i), &echo);
                const std::string prompt = terminal_safe(prompt_raw ? prompt_raw : "");
                auto answer = ask(interactive_prompt{name, instruction, prompt, echo != 0, i == 0});
                if (!answer)
                    co_return fail(
                        errc::auth_failed,
                        fmt::format("{} asks \"{}\" (keyboard-interactive login), but there is no "
                                    "terminal to answer it: run tunnel from a terminal, or log in "
                                    "with a key or certificate the server accepts on its own",
                                    opts_.destination(), core::log_text(prompt, 80)));
                answered = true;
                int set =
                    ssh_userauth_kbdint_setanswer(ssh_, static_cast<unsigned>(i), answer->c_str());
                std::fill(answer->begin(), answer->end(), '\0');
                if (set < 0)
                    co_return fail(
                        errc::auth_unavailable,
                        fmt::format("cannot answer {}: {}", opts_.destination(), s_.last_error()));
            }
            rc = co_await s_.drive([this] { return ssh_userauth_kbdint(ssh_, nullptr, nullptr); },
                                   SSH_AUTH_AGAIN, deadline_);
        }
        if (!rc) co_return tl::unexpected(rc.error());
        if (*rc == SSH_AUTH_ERROR)
            co_return fail(errc::auth_unavailable,
                           fmt::format("keyboard-interactive login to {} failed: {}",
                                       opts_.destination(), s_.last_error()));
        // Refused after we answered something: worth asking again.
        retry_kbdint_ = *rc == SSH_AUTH_DENIED && answered;
        co_return step_of(*rc);
    }

    asio::awaitable<core::result<step>> password() {
        if (opts_.batch_mode || !opts_.ask_secret) co_return step::failed;
        log_.tried.emplace_back("password");
        for (int attempt = 0; attempt < 3; ++attempt) {  // NumberOfPasswordPrompts
            auto pass = opts_.ask_secret(fmt::format("{}@{}'s password: ", opts_.user, opts_.host));
            if (!pass) co_return step::failed;
            auto rc = co_await s_.drive(
                [&] { return ssh_userauth_password(ssh_, nullptr, pass->c_str()); }, SSH_AUTH_AGAIN,
                deadline_);
            std::fill(pass->begin(), pass->end(), '\0');
            if (!rc) co_return tl::unexpected(rc.error());
            if (*rc == SSH_AUTH_ERROR)
                co_return fail(errc::auth_unavailable,
                               fmt::format("password authentication with {} failed: {}",
                                           opts_.destination(), s_.last_error()));
            if (*rc != SSH_AUTH_DENIED) co_return step_of(*rc);
            spdlog::warn("permission denied, please try again");
        }
        co_return step::failed;
    }

    core::error denied(int methods) const {
        std::vector<std::string> offered;
        if (methods & SSH_AUTH_METHOD_PUBLICKEY) offered.emplace_back("publickey");
        if (methods & SSH_AUTH_METHOD_PASSWORD) offered.emplace_back("password");
        if (methods & SSH_AUTH_METHOD_INTERACTIVE) offered.emplace_back("keyboard-interactive");
        std::string notes;
        for (const auto& n : log_.notes) notes += "; " + n;
        return {errc::auth_failed,
                fmt::format(
                    "permission denied for {} (server accepts: {}; tried: {}){}: pass the "
                    "right key with -i, load it into ssh-agent, or check the server's "
                    "authorized_keys",
                    opts_.destination(),
                    offered.empty() ? "none" : fmt::format("{}", fmt::join(offered, ",")),
                    log_.tried.empty() ? "nothing" : fmt::format("{}", fmt::join(log_.tried, ", ")),
                    notes)};
    }

    session& s_;
    ssh_session ssh_;
    const connect_options& opts_;
    time_point deadline_;
    auth_log log_;
    std::vector<user_certificate> configured_;
    std::vector<bool> configured_used_;
    bool retry_kbdint_ = false;
};

}  // namespace

std::string terminal_safe(std::string_view text, std::size_t max_bytes) {
    std::string out;
    for (std::size_t i = 0; i < text.size() && i < max_bytes; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f))
            out.push_back(static_cast<char>(c));
        else
            out += fmt::format("\\x{:02x}", c);
    }
    if (text.size() > max_bytes) out += "...";
    return out;
}

asio::awaitable<core::result<void>> authenticate(session& s, time_point deadline) {
    authenticator a(s, deadline);
    auto r = co_await a.run();
    co_return r;
}

}  // namespace tunnel::ssh
