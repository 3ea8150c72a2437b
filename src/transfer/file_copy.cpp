#include "transfer/file_copy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "transfer/checksum.hpp"
#include "transfer/local_file.hpp"
#include "transfer/location.hpp"
#include "transfer/retry_policy.hpp"
#include "transfer/run_workers.hpp"

namespace tunnel::transfer {

namespace {

constexpr std::uint64_t verify_block = 1u << 20;  // compared before a resume

// Reads [offset, offset+n) of a remote file.
asio::awaitable<core::result<std::string>> remote_block(sftp::client& c, std::string path,
                                                        std::uint64_t offset, std::size_t n) {
    auto h = co_await c.open_file(path, sftp::open_read);
    if (!h) co_return tl::unexpected(h.error());
    std::string out;
    auto r = co_await c.read_stream(*h, offset, n, [&](std::string_view d) { out.append(d); });
    (void)co_await c.close(*h);
    if (!r) co_return tl::unexpected(r.error());
    co_return out;
}

std::uint64_t window_bytes(const sftp::client& c, remote_host& h) {
    return static_cast<std::uint64_t>(c.chunk_size()) * h.sftp_options().max_inflight;
}

}  // namespace

std::string temp_path_for(const std::string& path) {
    return join_path(dir_name(path), "." + base_name(path) + ".tunnel-part");
}

std::uint64_t resume_offset(std::uint64_t temp_size, std::uint64_t window) noexcept {
    return temp_size > window ? temp_size - window : 0;
}

asio::awaitable<core::result<file_outcome>> upload_file(remote_host& host, sftp::client& c,
                                                        std::string local, std::string remote,
                                                        const copy_options& o, progress& p) {
    fd_guard fd(::open(local.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) co_return tl::unexpected(errno_error("cannot open", local));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) co_return tl::unexpected(errno_error("cannot stat", local));
    if (!S_ISREG(st.st_mode))
        co_return core::fail(core::errc::invalid_argument,
                             fmt::format("{} is not a regular file", local));
    const auto size = static_cast<std::uint64_t>(st.st_size);
    p.start_file(local);

    auto existing = co_await c.stat(remote);
    if (existing && existing->is_dir())
        co_return core::fail(core::errc::invalid_argument,
                             fmt::format("{} is a directory", host.display_path(remote)));
    if (existing && existing->size == size && !o.always) {
        bool same = false;
        if (o.checksum) {
            auto lh = sha256_file(local);
            auto rh = co_await sha256_remote(host, c, remote);
            same = lh && rh && *lh == *rh;
        } else {
            same =
                existing->mtime && static_cast<std::int64_t>(*existing->mtime) == st.st_mtim.tv_sec;
        }
        if (same) co_return file_outcome::skipped;
    }

    // Large files go over several SFTP channels at once: the server grants
    // each channel its own window (OpenSSH: 2 MiB), which bounds one channel
    // to about 2 MiB per round trip. Such a copy cannot be resumed (its
    // ranges complete out of order), so it uses its own temp name.
    // On a fast local link one channel is already CPU-bound, and more only compete for the cores.
    const bool far_away = c.handshake_rtt() >= o.stream_min_rtt;
    const unsigned streams =
        !o.resume && far_away && size >= o.stream_threshold ? std::max(1u, o.streams) : 1u;
    const std::string temp = streams > 1 ? temp_path_for(remote) + "-multi" : temp_path_for(remote);
    std::uint64_t start = 0;
    if (o.resume) {
        auto t = co_await c.lstat(temp);
        if (t && t->is_reg() && t->size && *t->size <= size) {
            start = resume_offset(*t->size, window_bytes(c, host));
            if (start > 0) {
                auto n = static_cast<std::size_t>(std::min<std::uint64_t>(start, verify_block));
                auto theirs = co_await remote_block(c, temp, start - n, n);
                auto ours = pread_block(fd.get(), start - n, n, local);
                if (!theirs || !ours || *theirs != *ours) {
                    spdlog::warn("{}: the partial copy does not match the source; starting over",
                                 host.display_path(temp));
                    start = 0;
                }
            }
        }
    }

    if (c.ext().statvfs) {
        auto vfs = co_await c.statvfs(dir_name(remote));
        if (vfs && vfs->available_bytes() < size - start)
            co_return core::fail(
                core::errc::resource_exhausted,
                fmt::format("not enough space on {} for {}: {} needed, {} available",
                            host.display_path(dir_name(remote)), local, human_bytes(size - start),
                            human_bytes(vfs->available_bytes())));
    }

    sftp::file_attrs create;
    create.permissions = 0600;  // private until complete
    auto flags = sftp::open_write | sftp::open_creat | (start == 0 ? sftp::open_trunc : 0u);
    auto h = co_await c.open_file(temp, flags, create);
    if (!h) {
        if (h.error().code == core::errc::not_found)
            co_return core::fail(core::errc::not_found,
                                 fmt::format("destination directory {} does not exist",
                                             host.display_path(dir_name(remote))));
        co_return tl::unexpected(h.error());
    }
    p.resumed(start);
    core::result<void> up;
    if (streams == 1) {
        up = co_await c.upload(fd.get(), *h, start, size - start,
                               [&](std::uint64_t n) { p.advance(n); });
    } else {
        std::vector<std::unique_ptr<sftp::client>> extra;
        for (unsigned i = 1; i < streams; ++i) {
            auto e = co_await host.borrow_sftp();
            if (!e) break;  // the server allows fewer channels: use what we have
            extra.push_back(std::move(*e));
        }
        const std::uint64_t parts = extra.size() + 1;
        const std::uint64_t chunk = c.chunk_size();
        const std::uint64_t per = (size + parts - 1) / parts / chunk * chunk + chunk;
        co_await run_workers(
            static_cast<unsigned>(parts), [&](unsigned i) -> asio::awaitable<void> {
                const std::uint64_t lo = std::min<std::uint64_t>(size, i * per);
                const std::uint64_t hi = std::min<std::uint64_t>(size, lo + per);
                sftp::client& cc = i == 0 ? c : *extra[i - 1];
                std::string handle = *h;
                if (i > 0) {
                    auto oh = co_await cc.open_file(temp, sftp::open_write);
                    if (!oh) {
                        if (up) up = tl::unexpected(oh.error());
                        co_return;
                    }
                    handle = *oh;
                }
                auto r = co_await cc.upload(fd.get(), handle, lo, hi - lo,
                                            [&](std::uint64_t n) { p.advance(n); });
                if (i > 0) {
                    auto closed = co_await cc.close(handle);
                    if (r && !closed) r = closed;
                }
                if (!r && up) up = r;
            });
        for (auto& e : extra) host.return_sftp(std::move(e));
    }
    if (!up) {
        (void)co_await c.close(*h);
        auto e = up.error();
        if (connection_lost(e)) {
            // Nothing can be removed over a lost connection, and the next
            // attempt (--retries) or a run with --resume continues from it.
            e.message = fmt::format(
                "copying {} to {}: {} ({})", local, host.display_path(remote), e.message,
                streams > 1 ? fmt::format("the partial copy {}, written over several channels, "
                                          "cannot be resumed; the next complete copy removes it",
                                          host.display_path(temp))
                            : fmt::format("the partial copy {} is kept", host.display_path(temp)));
        } else {
            // OpenSSH reports a full disk as a bare "Failure": say what it was.
            if (c.ext().statvfs) {
                auto vfs = co_await c.statvfs(dir_name(remote));
                if (vfs && vfs->available_bytes() < c.chunk_size())
                    e = {
                        core::errc::resource_exhausted,
                        fmt::format("{} is full: copying {} ({}) failed part way",
                                    host.display_path(dir_name(remote)), local, human_bytes(size))};
            }
            // Without --resume nothing will continue from it: give the space back.
            if (!o.resume) (void)co_await c.remove(temp);
        }
        co_return tl::unexpected(e);
    }
    if (auto f = co_await c.fsync(*h); !f) {
        (void)co_await c.close(*h);
        co_return tl::unexpected(f.error());
    }
    sftp::file_attrs final_attrs;
    final_attrs.permissions = o.mode ? *o.mode : (st.st_mode & 07777);
    if (o.preserve) {
        final_attrs.atime = static_cast<std::uint32_t>(st.st_atim.tv_sec);
        final_attrs.mtime = static_cast<std::uint32_t>(st.st_mtim.tv_sec);
    }
    auto set = co_await c.fsetstat(*h, final_attrs);
    auto closed = co_await c.close(*h);
    if (!set) co_return tl::unexpected(set.error());
    if (!closed) co_return tl::unexpected(closed.error());
    if (auto r = co_await c.rename(temp, remote); !r) co_return tl::unexpected(r.error());
    // A large file may have left the other kind of temp file behind when an
    // earlier copy was killed: the target is complete now, so it is stale.
    if (size >= o.stream_threshold) {
        std::string stale = temp_path_for(remote);  // (no ?: inside co_await — g++ 12)
        if (streams == 1) stale += "-multi";
        (void)co_await c.remove(stale);
    }
    if (o.verify)
        if (auto v = co_await verify_same_content(host, c, local, remote); !v)
            co_return tl::unexpected(v.error());
    co_return file_outcome::copied;
}

asio::awaitable<core::result<file_outcome>> download_file(remote_host& host, sftp::client& c,
                                                          std::string remote, std::string local,
                                                          const copy_options& o, progress& p) {
    p.start_file(host.display_path(remote));
    auto h = co_await c.open_file(remote, sftp::open_read);
    if (!h) co_return tl::unexpected(h.error());
    auto close_remote = [&]() -> asio::awaitable<void> { (void)co_await c.close(*h); };
    auto attrs = co_await c.fstat(*h);  // reads are sized from fstat
    if (!attrs) {
        co_await close_remote();
        co_return tl::unexpected(attrs.error());
    }
    if (!attrs->is_reg()) {
        co_await close_remote();
        co_return core::fail(core::errc::invalid_argument,
                             fmt::format("{} is not a regular file", host.display_path(remote)));
    }
    const std::uint64_t size = attrs->size.value_or(0);

    struct stat existing {};
    if (::stat(local.c_str(), &existing) == 0) {
        if (S_ISDIR(existing.st_mode)) {
            co_await close_remote();
            co_return core::fail(core::errc::invalid_argument,
                                 fmt::format("{} is a directory", local));
        }
        if (static_cast<std::uint64_t>(existing.st_size) == size && !o.always) {
            bool same = false;
            if (o.checksum) {
                auto lh = sha256_file(local);
                auto rh = co_await sha256_remote(host, c, remote);
                same = lh && rh && *lh == *rh;
            } else {
                same = attrs->mtime &&
                       static_cast<std::int64_t>(*attrs->mtime) == existing.st_mtim.tv_sec;
            }
            if (same) {
                co_await close_remote();
                co_return file_outcome::skipped;
            }
        }
    }

    const std::string dir = dir_name(local);
    struct stat dst_dir {};
    if (::stat(dir.c_str(), &dst_dir) != 0 || !S_ISDIR(dst_dir.st_mode)) {
        co_await close_remote();
        co_return core::fail(core::errc::not_found,
                             fmt::format("destination directory {} does not exist", dir));
    }
    const std::string temp = temp_path_for(local);
    std::uint64_t start = 0;
    struct stat ts {};
    if (o.resume && ::lstat(temp.c_str(), &ts) == 0 && S_ISREG(ts.st_mode) &&
        static_cast<std::uint64_t>(ts.st_size) <= size) {
        start = resume_offset(static_cast<std::uint64_t>(ts.st_size), window_bytes(c, host));
    }
    fd_guard fd(::open(temp.c_str(),
                       O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (start == 0 ? O_TRUNC : 0),
                       0600));
    if (fd.get() < 0) {
        auto e = errno_error("cannot create", temp);
        co_await close_remote();
        co_return tl::unexpected(e);
    }
    if (start > 0) {
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(start, verify_block));
        fd_guard rfd(::open(temp.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        auto ours = pread_block(rfd.get(), start - n, n, temp);
        std::string theirs;
        auto r =
            co_await c.read_stream(*h, start - n, n, [&](std::string_view d) { theirs.append(d); });
        if (!r || !ours || *ours != theirs) {
            spdlog::warn("{}: the partial copy does not match the source; starting over", temp);
            start = 0;
            if (::ftruncate(fd.get(), 0) != 0) {
                auto e = errno_error("cannot truncate", temp);
                co_await close_remote();
                co_return tl::unexpected(e);
            }
        }
    }
    if (auto free = local_free(dir); free && *free < size - start) {
        co_await close_remote();
        ::unlink(temp.c_str());
        co_return core::fail(
            core::errc::resource_exhausted,
            fmt::format("not enough space in {} for {}: {} needed, {} available", dir,
                        host.display_path(remote), human_bytes(size - start), human_bytes(*free)));
    }
    p.resumed(start);
    auto got = co_await c.download(
        *h, fd.get(), start, size - start, [&](std::uint64_t n) { p.advance(n); }, true);
    co_await close_remote();
    if (!got) {
        auto e = got.error();
        if (connection_lost(e)) {
            // Kept for the next attempt (--retries) or a run with --resume.
            e.message = fmt::format("copying {} to {}: {} (the partial copy {} is kept)",
                                    host.display_path(remote), local, e.message, temp);
        } else if (!o.resume) {
            ::unlink(temp.c_str());  // nothing will continue from it: give the space back
        }
        co_return tl::unexpected(e);
    }
    if (::ftruncate(fd.get(), static_cast<off_t>(start + *got)) != 0)
        co_return tl::unexpected(errno_error("cannot size", temp));
    if (::fsync(fd.get()) != 0) co_return tl::unexpected(errno_error("cannot sync", temp));
    std::uint32_t perm = o.mode ? *o.mode : (attrs->permissions.value_or(0644) & 07777);
    if (!o.mode && !o.preserve) {
        mode_t mask = ::umask(0);
        ::umask(mask);
        perm &= ~static_cast<std::uint32_t>(mask);
    }
    if (::fchmod(fd.get(), perm) != 0) co_return tl::unexpected(errno_error("cannot chmod", temp));
    if (o.preserve && attrs->mtime) {
        struct timespec times[2] = {{static_cast<time_t>(attrs->atime.value_or(*attrs->mtime)), 0},
                                    {static_cast<time_t>(*attrs->mtime), 0}};
        if (::futimens(fd.get(), times) != 0)
            co_return tl::unexpected(errno_error("cannot set times on", temp));
    }
    fd.reset();
    if (::rename(temp.c_str(), local.c_str()) != 0)
        co_return tl::unexpected(errno_error("cannot rename onto", local));
    if (o.verify)
        if (auto v = co_await verify_same_content(host, c, local, remote); !v)
            co_return tl::unexpected(v.error());
    co_return file_outcome::copied;
}

}  // namespace tunnel::transfer
