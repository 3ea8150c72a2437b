#include "transfer/local_checks.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace tunnel::transfer {

namespace {

core::error stat_error(const std::string& path, int e) {
    const auto code =
        e == EACCES || e == EPERM ? core::errc::permission_denied : core::errc::not_found;
    return {code, fmt::format("cannot read {}: {}", path, std::strerror(e))};
}

}  // namespace

std::vector<core::error> check_upload_sources(const std::vector<std::string>& paths,
                                              bool recursive) {
    std::vector<core::error> problems;
    for (const auto& path : paths) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) {
            problems.push_back(stat_error(path, errno));
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (!recursive)
                problems.push_back({core::errc::invalid_argument,
                                    fmt::format("{} is a directory (use -r)", path)});
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            problems.push_back({core::errc::invalid_argument,
                                fmt::format("{} is not a regular file or directory", path)});
            continue;
        }
        if (::access(path.c_str(), R_OK) != 0) problems.push_back(stat_error(path, errno));
    }
    return problems;
}

core::result<void> check_download_destination(const std::string& dest, std::size_t source_count) {
    struct stat st {};
    const bool exists = ::stat(dest.c_str(), &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) return {};
    if (source_count > 1 || (!dest.empty() && dest.back() == '/'))
        return core::fail(exists ? core::errc::invalid_argument : core::errc::not_found,
                          exists
                              ? fmt::format("{} is not a directory (several sources, or a "
                                            "trailing '/', need one)",
                                            dest)
                              : fmt::format("directory {} does not exist: create it first", dest));
    if (exists) return {};  // a file, replaced atomically
    const auto slash = dest.find_last_of('/');
    const std::string parent =
        slash == std::string::npos ? "." : (slash == 0 ? "/" : dest.substr(0, slash));
    struct stat pst {};
    if (::stat(parent.c_str(), &pst) != 0 || !S_ISDIR(pst.st_mode))
        return core::fail(
            core::errc::not_found,
            fmt::format("cannot write {}: directory {} does not exist", dest, parent));
    return {};
}

}  // namespace tunnel::transfer
