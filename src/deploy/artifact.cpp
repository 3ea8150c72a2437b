#include "deploy/artifact.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "transfer/checksum.hpp"

namespace tunnel::deploy {

namespace {

std::string sha256_text(const std::string& text) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(text.data(), text.size(), md, &n, EVP_sha256(), nullptr);
    std::string out;
    for (unsigned i = 0; i < n; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
}

core::result<artifact> inspect_directory(artifact a) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<std::string> lines;
    fs::recursive_directory_iterator it(a.path, fs::directory_options::none, ec), end;
    if (ec)
        return core::fail(core::errc::io_error, fmt::format("cannot read artifact directory {}: {}",
                                                            a.path, ec.message()));
    constexpr std::size_t max_entries = 1'000'000;
    for (; it != end; it.increment(ec)) {
        if (ec)
            return core::fail(
                core::errc::io_error,
                fmt::format("cannot read artifact directory {}: {}", a.path, ec.message()));
        if (lines.size() >= max_entries)
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("artifact directory {} has more than {} entries", a.path, max_entries));
        const auto& p = it->path();
        auto rel = fs::relative(p, a.path, ec).generic_string();
        struct stat st {};
        if (::lstat(p.c_str(), &st) != 0) continue;
        if (S_ISLNK(st.st_mode)) {
            lines.push_back(fmt::format("l {} {}", rel, fs::read_symlink(p, ec).string()));
        } else if (S_ISDIR(st.st_mode)) {
            lines.push_back(fmt::format("d {} {:o}", rel, st.st_mode & 07777));
        } else if (S_ISREG(st.st_mode)) {
            auto h = transfer::sha256_file(p.string());
            if (!h) return tl::unexpected(h.error());
            a.bytes += static_cast<std::uint64_t>(st.st_size);
            lines.push_back(fmt::format("f {} {:o} {}", rel, st.st_mode & 07777, *h));
        }
    }
    std::sort(lines.begin(), lines.end());
    std::string all;
    for (const auto& l : lines) all += l + "\n";
    a.sha256 = sha256_text(all);
    return a;
}

}  // namespace

core::result<artifact> inspect_artifact(const deploy_config& c) {
    artifact a;
    a.path = c.artifact;
    a.kind = c.kind;
    struct stat st {};
    if (::stat(a.path.c_str(), &st) != 0)
        return core::fail(core::errc::not_found,
                          fmt::format("{}: artifact {} does not exist (build it first, or fix "
                                      "artifact:)",
                                      c.file, a.path));
    if (S_ISDIR(st.st_mode)) {
        a.kind = artifact_kind::directory;
        return inspect_directory(std::move(a));
    }
    if (a.kind == artifact_kind::directory)
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("{}: artifact {} ends with / but is not a directory", c.file, a.path));
    if (!S_ISREG(st.st_mode))
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("{}: artifact {} is not a regular file or a directory", c.file, a.path));
    auto h = transfer::sha256_file(a.path);
    if (!h) return tl::unexpected(h.error());
    a.sha256 = *h;
    a.bytes = static_cast<std::uint64_t>(st.st_size);
    auto slash = a.path.rfind('/');
    a.file_name = slash == std::string::npos ? a.path : a.path.substr(slash + 1);
    return a;
}

}  // namespace tunnel::deploy
