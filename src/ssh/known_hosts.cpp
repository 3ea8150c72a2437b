#include "ssh/known_hosts.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core/ascii.hpp"
#include "core/glob.hpp"

namespace tunnel::ssh {

namespace {

using core::errc;
using core::fail;
using entry = known_hosts::entry;

constexpr std::string_view hash_magic = "|1|";
constexpr std::size_t sha1_len = 20;

int b64_value(char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// Strict standard base64 with padding, as OpenSSH writes it.
std::optional<std::string> b64_decode(std::string_view in) {
    if (in.empty() || in.size() % 4 != 0) return std::nullopt;
    std::size_t pad = 0;
    if (in.back() == '=') ++pad;
    if (in.size() >= 2 && in[in.size() - 2] == '=') ++pad;
    std::string out;
    out.reserve(in.size() / 4 * 3);
    for (std::size_t i = 0; i < in.size(); i += 4) {
        std::array<int, 4> v{};
        for (std::size_t j = 0; j < 4; ++j) {
            char c = in[i + j];
            bool pad_slot = c == '=' && i + 4 == in.size() && j >= 4 - pad;
            v[j] = pad_slot ? 0 : b64_value(c);
            if (v[j] < 0) return std::nullopt;
        }
        unsigned n = (static_cast<unsigned>(v[0]) << 18) | (static_cast<unsigned>(v[1]) << 12) |
                     (static_cast<unsigned>(v[2]) << 6) | static_cast<unsigned>(v[3]);
        out += static_cast<char>((n >> 16) & 0xff);
        out += static_cast<char>((n >> 8) & 0xff);
        out += static_cast<char>(n & 0xff);
    }
    out.erase(out.size() >= pad ? out.size() - pad : 0);
    return out;
}

std::string b64_encode(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
}

std::string hmac_sha1(std::string_view key, std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    if (!HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(data.data()), data.size(), md.data(), &len))
        return {};
    return std::string(reinterpret_cast<const char*>(md.data()), len);
}

// The key type named inside an SSH public key blob (first string).
std::optional<std::string_view> blob_key_type(std::string_view blob) {
    if (blob.size() < 4) return std::nullopt;
    auto b = [&](std::size_t i) {
        return static_cast<uint32_t>(static_cast<unsigned char>(blob[i]));
    };
    uint32_t len = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
    if (len == 0 || len > blob.size() - 4) return std::nullopt;
    return blob.substr(4, len);
}

bool valid_key_type(std::string_view t) {
    return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '@' || c == '.' ||
               c == '_';
    });
}

// `|1|salt|hmac`: does it hash `name`?
bool hashed_matches(std::string_view field, std::string_view name) {
    std::string_view rest = field.substr(hash_magic.size());
    auto bar = rest.find('|');
    if (bar == std::string_view::npos) return false;
    auto salt = b64_decode(rest.substr(0, bar));
    auto hash = b64_decode(rest.substr(bar + 1));
    if (!salt || !hash) return false;
    std::string mine = hmac_sha1(*salt, name);
    return mine.size() == hash->size() &&
           CRYPTO_memcmp(mine.data(), hash->data(), mine.size()) == 0;
}

bool valid_hashed_field(std::string_view field) {
    std::string_view rest = field.substr(hash_magic.size());
    auto bar = rest.find('|');
    if (bar == std::string_view::npos) return false;
    auto salt = b64_decode(rest.substr(0, bar));
    auto hash = b64_decode(rest.substr(bar + 1));
    return salt && hash && salt->size() == sha1_len && hash->size() == sha1_len;
}

// OpenSSH's match_hostname: comma-separated patterns, `!` negates and wins.
bool patterns_match(std::string_view list, std::string_view name) {
    return core::pattern_list_match(list, name, true);
}

bool entry_matches(const entry& e, std::string_view name) {
    if (std::string_view(e.hosts).starts_with(hash_magic)) return hashed_matches(e.hosts, name);
    return patterns_match(e.hosts, name);
}

std::vector<std::string_view> split_fields(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        if (i == line.size()) break;
        std::size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
        out.push_back(line.substr(start, i - start));
    }
    return out;
}

}  // namespace

std::string known_hosts_name(std::string_view host, uint16_t port) {
    if (port == 22) return core::lowercase(host);
    return "[" + core::lowercase(host) + "]:" + std::to_string(port);
}

std::string normalize_key_type(std::string_view algorithm) {
    if (algorithm == "rsa-sha2-256" || algorithm == "rsa-sha2-512") return "ssh-rsa";
    return std::string(algorithm);
}

std::string host_key_algorithms_for_types(const std::vector<std::string>& types) {
    std::vector<std::string> algs;
    auto add = [&](std::string a) {
        if (std::find(algs.begin(), algs.end(), a) == algs.end()) algs.push_back(std::move(a));
    };
    for (const auto& t : types) {
        std::string type = normalize_key_type(t);
        if (type == "ssh-rsa") {
            add("rsa-sha2-512");
            add("rsa-sha2-256");
        } else if (!type.empty()) {
            add(std::move(type));
        }
    }
    std::string out;
    for (const auto& a : algs) out += (out.empty() ? "" : ",") + a;
    return out;
}

known_hosts known_hosts::load(const std::vector<std::string>& paths) {
    known_hosts kh;
    for (const auto& path : paths) {
        std::FILE* f = std::fopen(path.c_str(), "rb");
        if (!f) {
            if (errno != ENOENT)
                kh.skipped_.push_back(
                    {path, 0, std::string("cannot read: ") + std::strerror(errno)});
            continue;
        }
        std::string text;
        std::array<char, 8192> buf{};
        std::size_t n;
        while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) text.append(buf.data(), n);
        bool failed = std::ferror(f) != 0;
        int err = errno;
        std::fclose(f);
        if (failed) {
            kh.skipped_.push_back({path, 0, std::string("cannot read: ") + std::strerror(err)});
            continue;
        }
        kh.add_text(text, path);
    }
    return kh;
}

void known_hosts::add_text(std::string_view text, std::string_view source_name) {
    const std::string path(source_name);
    std::size_t line_no = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

        auto fields = split_fields(line);
        if (fields.empty() || fields[0][0] == '#') continue;
        auto skip = [&](std::string reason) {
            skipped_.push_back({path, line_no, std::move(reason)});
        };

        entry e;
        e.path = path;
        e.line = line_no;
        std::size_t f = 0;
        if (fields[0][0] == '@') {
            if (fields[0] == "@revoked")
                e.mark = entry::marker::revoked;
            else if (fields[0] == "@cert-authority")
                e.mark = entry::marker::cert_authority;
            else {
                skip("unknown marker " + std::string(fields[0]));
                continue;
            }
            f = 1;
        }
        if (fields.size() < f + 3) {
            skip("expected [@marker] hosts keytype base64-key [comment]");
            continue;
        }
        std::string_view hosts = fields[f], type = fields[f + 1], key = fields[f + 2];
        if (std::all_of(type.begin(), type.end(),
                        [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
            skip("SSH-1 RSA key (unsupported)");
            continue;
        }
        if (hosts.starts_with(hash_magic) && !valid_hashed_field(hosts)) {
            skip("malformed hashed host name");
            continue;
        }
        auto blob = b64_decode(key);
        if (!blob) {
            skip("key is not valid base64");
            continue;
        }
        auto inner = blob_key_type(*blob);
        if (!inner || *inner != type) {
            skip("key type " + std::string(type) + " does not match the key");
            continue;
        }
        e.hosts = std::string(hosts);
        e.key_type = normalize_key_type(type);
        e.key_blob = std::move(*blob);
        entries_.push_back(std::move(e));
    }
}

host_key_check known_hosts::check(std::string_view host, uint16_t port, std::string_view key_type,
                                  std::string_view key_base64) const {
    const std::string name = known_hosts_name(host, port);
    const std::string type = normalize_key_type(key_type);
    auto decoded = b64_decode(key_base64);
    // A key we cannot decode never equals a stored one.
    const std::optional<std::string>& blob = decoded;

    const entry* revoked = nullptr;
    const entry* matched = nullptr;
    const entry* changed = nullptr;
    host_key_check out;
    for (const auto& e : entries_) {
        if (e.mark == entry::marker::cert_authority) continue;
        if (!entry_matches(e, name)) continue;
        const bool same_key = blob && e.key_blob == *blob;
        if (e.mark == entry::marker::revoked) {
            if (same_key && !revoked) revoked = &e;
            continue;
        }
        if (e.key_type != type) {
            if (std::find(out.other_key_types.begin(), out.other_key_types.end(), e.key_type) ==
                out.other_key_types.end())
                out.other_key_types.push_back(e.key_type);
            continue;
        }
        if (same_key) {
            if (!matched) matched = &e;
        } else if (!changed) {
            changed = &e;
        }
    }
    const entry* where = nullptr;
    if (revoked) {
        out.status = host_key_status::revoked;
        where = revoked;
    } else if (matched) {
        out.status = host_key_status::match;
        where = matched;
    } else if (changed) {
        out.status = host_key_status::changed;
        where = changed;
    }
    if (where) out.where = known_hosts_location{where->path, where->line};
    return out;
}

std::vector<std::string> known_hosts::key_types_for(std::string_view host, uint16_t port) const {
    const std::string name = known_hosts_name(host, port);
    std::vector<std::string> types;
    for (const auto& e : entries_) {
        if (e.mark != entry::marker::none || !entry_matches(e, name)) continue;
        if (std::find(types.begin(), types.end(), e.key_type) == types.end())
            types.push_back(e.key_type);
    }
    return types;
}

std::vector<known_hosts::cert_authority> known_hosts::cert_authorities_for(std::string_view host,
                                                                           uint16_t port) const {
    const std::string name = known_hosts_name(host, port);
    std::vector<cert_authority> out;
    for (const auto& e : entries_)
        if (e.mark == entry::marker::cert_authority && entry_matches(e, name))
            out.push_back({e.key_blob, known_hosts_location{e.path, e.line}});
    return out;
}

std::optional<known_hosts_location> known_hosts::revoked_for(std::string_view host, uint16_t port,
                                                             std::string_view key_blob) const {
    const std::string name = known_hosts_name(host, port);
    for (const auto& e : entries_)
        if (e.mark == entry::marker::revoked && e.key_blob == key_blob && entry_matches(e, name))
            return known_hosts_location{e.path, e.line};
    return std::nullopt;
}

core::result<void> known_hosts::append(const std::string& path, std::string_view host,
                                       uint16_t port, std::string_view key_type,
                                       std::string_view key_base64, bool hash_host) {
    auto invalid = [&](std::string what) {
        return fail(errc::invalid_argument, "cannot add host key to " + path + ": " + what);
    };
    if (host.empty() || host[0] == '|' || host[0] == '@' || host[0] == '#' || host[0] == '!' ||
        std::any_of(host.begin(), host.end(), [](char c) {
            return std::isspace(static_cast<unsigned char>(c)) ||
                   std::iscntrl(static_cast<unsigned char>(c)) || c == ',' || c == '*' || c == '?';
        }))
        return invalid("invalid host name '" + std::string(host) + "'");
    if (!valid_key_type(key_type))
        return invalid("invalid key type '" + std::string(key_type) + "'");
    const std::string type = normalize_key_type(key_type);
    auto blob = b64_decode(key_base64);
    if (!blob) return invalid("key is not valid base64");
    auto inner = blob_key_type(*blob);
    if (!inner || normalize_key_type(*inner) != type)
        return invalid("key type " + type + " does not match the key");

    std::string name = known_hosts_name(host, port);
    if (hash_host) {
        std::array<unsigned char, sha1_len> salt{};
        if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1)
            return fail(errc::io_error,
                        "cannot add host key to " + path + ": no random bytes for the salt");
        std::string_view s(reinterpret_cast<const char*>(salt.data()), salt.size());
        name = std::string(hash_magic) + b64_encode(s) + "|" + b64_encode(hmac_sha1(s, name));
    }
    std::string line = name + " " + std::string(*inner) + " " + std::string(key_base64) + "\n";

    auto sys_fail = [&](const std::string& what, int err) {
        errc code = err == EACCES || err == EPERM ? errc::permission_denied : errc::io_error;
        return fail(code,
                    "cannot add host key to " + path + ": " + what + ": " + std::strerror(err));
    };

    // Create the directory (e.g. ~/.ssh) if it is missing, private like ssh does.
    auto slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) {
        std::string dir = path.substr(0, slash);
        struct stat st {};
        if (::stat(dir.c_str(), &st) != 0) {
            if (errno != ENOENT) return sys_fail("stat " + dir, errno);
            if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
                return sys_fail("mkdir " + dir, errno);
        }
    }

    int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return sys_fail("open", errno);
    struct closer {
        int fd;
        ~closer() {
            if (fd >= 0) ::close(fd);
        }
    } guard{fd};

    // Serialise with other appenders so the newline check and the write are
    // one step; the line goes out in a single O_APPEND write.
    if (::flock(fd, LOCK_EX) != 0) return sys_fail("lock", errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) return sys_fail("stat", errno);
    if (st.st_size > 0) {
        char last = '\n';
        if (::pread(fd, &last, 1, st.st_size - 1) != 1) return sys_fail("read", errno);
        if (last != '\n') line.insert(line.begin(), '\n');
    }
    std::size_t done = 0;
    while (done < line.size()) {
        ssize_t n = ::write(fd, line.data() + done, line.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return sys_fail("write", errno);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) return sys_fail("fsync", errno);
    guard.fd = -1;
    if (::close(fd) != 0) return sys_fail("close", errno);
    return {};
}

}  // namespace tunnel::ssh
