#include "transfer/copier.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <functional>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "core/shell_quote.hpp"
#include "transfer/location.hpp"

namespace tunnel::transfer {

namespace {

constexpr std::uint64_t verify_block = 1u << 20;  // compared before a resume

core::error errno_error(std::string_view what, const std::string& path, int e = errno) {
    auto code = core::errc::io_error;
    if (e == ENOENT || e == ENOTDIR) code = core::errc::not_found;
    if (e == EACCES || e == EPERM) code = core::errc::permission_denied;
    if (e == ENOSPC || e == EDQUOT) code = core::errc::resource_exhausted;
    return {code, fmt::format("{} {}: {}", what, path, std::strerror(e))};
}

class fd_guard {
  public:
    explicit fd_guard(int fd = -1) noexcept : fd_(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() { reset(); }
    [[nodiscard]] int get() const noexcept { return fd_; }
    void reset() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

  private:
    int fd_;
};

struct sha256 {
    sha256() : ctx(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
    sha256(const sha256&) = delete;
    sha256& operator=(const sha256&) = delete;
    ~sha256() { EVP_MD_CTX_free(ctx); }
    void update(std::string_view d) { EVP_DigestUpdate(ctx, d.data(), d.size()); }
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_DigestFinal_ex(ctx, md, &n);
        std::string out;
        for (unsigned i = 0; i < n; ++i) out += fmt::format("{:02x}", md[i]);
        return out;
    }
    EVP_MD_CTX* ctx;
};

std::string rname(remote_host& h, std::string_view path) {
    return fmt::format("{}:{}", h.session()->options().host, path);
}

core::result<std::string> pread_block(int fd, std::uint64_t offset, std::size_t n,
                                      const std::string& path) {
    std::string buf(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::pread(fd, buf.data() + got, n - got, static_cast<off_t>(offset + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return tl::unexpected(errno_error("cannot read", path));
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    buf.resize(got);
    return buf;
}

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

// Free space at a local directory, or nullopt if unknown.
std::optional<std::uint64_t> local_free(const std::string& dir) {
    struct statvfs v {};
    if (::statvfs(dir.c_str(), &v) != 0) return std::nullopt;
    return static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
}

asio::awaitable<core::result<void>> check_verified(remote_host& host, sftp::client& c,
                                                   const std::string& local,
                                                   const std::string& remote) {
    auto lh = sha256_file(local);
    if (!lh) co_return tl::unexpected(lh.error());
    auto rh = co_await sha256_remote(host, c, remote);
    if (!rh) co_return tl::unexpected(rh.error());
    if (*lh != *rh)
        co_return core::fail(
            core::errc::io_error,
            fmt::format("verification failed: SHA-256 of {} ({}) differs from {} ({})", local,
                        lh->substr(0, 16), rname(host, remote), rh->substr(0, 16)));
    co_return core::result<void>{};
}

// Runs `work(slot)` on `n` concurrent coroutines and waits for all.
asio::awaitable<void> run_workers(unsigned n, std::function<asio::awaitable<void>(unsigned)> work) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer done(ex, asio::steady_timer::time_point::max());
    unsigned left = n;
    std::exception_ptr failure;
    for (unsigned i = 0; i < n; ++i)
        asio::co_spawn(ex, work(i), [&](std::exception_ptr e) {
            if (e && !failure) failure = e;
            if (--left == 0) done.cancel();
        });
    boost::system::error_code ec;
    co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (failure) std::rethrow_exception(failure);
}

}  // namespace

std::string temp_path_for(const std::string& path) {
    return join_path(dir_name(path), "." + base_name(path) + ".tunnel-part");
}

std::uint64_t resume_offset(std::uint64_t temp_size, std::uint64_t window) noexcept {
    return temp_size > window ? temp_size - window : 0;
}

core::result<std::string> sha256_file(const std::string& path) {
    fd_guard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return tl::unexpected(errno_error("cannot open", path));
    sha256 h;
    std::string buf(1 << 20, '\0');
    for (;;) {
        ssize_t n = ::read(fd.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return tl::unexpected(errno_error("cannot read", path));
        if (n == 0) break;
        h.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    }
    return h.hex();
}

asio::awaitable<core::result<std::string>> sha256_remote(remote_host& host, sftp::client& c,
                                                         std::string path) {
    if (co_await host.exec_allowed()) {
        auto r =
            co_await host.run("sha256sum -- " + core::shell_quote(path), std::chrono::minutes(30));
        if (r && r->exit_status == 0 && r->out.size() >= 64) co_return r->out.substr(0, 64);
        spdlog::debug("sha256sum on {} failed; reading the file back instead", host.destination());
    }
    auto h = co_await c.open_file(path, sftp::open_read);
    if (!h) co_return tl::unexpected(h.error());
    auto st = co_await c.fstat(*h);
    if (!st) co_return tl::unexpected(st.error());
    sha256 hash;
    auto r = co_await c.read_stream(*h, 0, st->size.value_or(0),
                                    [&](std::string_view d) { hash.update(d); });
    (void)co_await c.close(*h);
    if (!r) co_return tl::unexpected(r.error());
    co_return hash.hex();
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
                             fmt::format("{} is a directory", rname(host, remote)));
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
                                 rname(host, temp));
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
                            rname(host, dir_name(remote)), local, human_bytes(size - start),
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
                                             rname(host, dir_name(remote))));
        co_return tl::unexpected(h.error());
    }
    p.advance(start);
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
        if (e.code != core::errc::disconnected && e.code != core::errc::timeout) {
            // OpenSSH reports a full disk as a bare "Failure": say what it was.
            if (c.ext().statvfs) {
                auto vfs = co_await c.statvfs(dir_name(remote));
                if (vfs && vfs->available_bytes() < c.chunk_size())
                    e = {core::errc::resource_exhausted,
                         fmt::format("{} is full: copying {} ({}) failed part way",
                                     rname(host, dir_name(remote)), local, human_bytes(size))};
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
        if (auto v = co_await check_verified(host, c, local, remote); !v)
            co_return tl::unexpected(v.error());
    co_return file_outcome::copied;
}

asio::awaitable<core::result<file_outcome>> download_file(remote_host& host, sftp::client& c,
                                                          std::string remote, std::string local,
                                                          const copy_options& o, progress& p) {
    p.start_file(rname(host, remote));
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
                             fmt::format("{} is not a regular file", rname(host, remote)));
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
                        rname(host, remote), human_bytes(size - start), human_bytes(*free)));
    }
    p.advance(start);
    auto got = co_await c.download(
        *h, fd.get(), start, size - start, [&](std::uint64_t n) { p.advance(n); }, true);
    co_await close_remote();
    if (!got) {
        if (!o.resume && got.error().code != core::errc::disconnected) ::unlink(temp.c_str());
        co_return tl::unexpected(got.error());
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
        if (auto v = co_await check_verified(host, c, local, remote); !v)
            co_return tl::unexpected(v.error());
    co_return file_outcome::copied;
}

// ---- trees -----------------------------------------------------------------

namespace {

core::result<void> walk_local(const std::string& root, const std::string& rel,
                              const path_filter* filter, std::vector<tree_entry>& out) {
    std::string dir = rel.empty() ? root : join_path(root, rel);
    DIR* d = ::opendir(dir.c_str());
    if (!d) return tl::unexpected(errno_error("cannot list", dir));
    std::vector<std::string> names;
    while (auto* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n != "." && n != "..") names.emplace_back(n);
    }
    int dfd = ::dirfd(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
        struct stat st {};
        if (::fstatat(dfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // vanished
        tree_entry e;
        e.rel = rel.empty() ? n : rel + "/" + n;
        e.size = static_cast<std::uint64_t>(st.st_size);
        e.mode = st.st_mode & 07777;
        e.mtime = st.st_mtim.tv_sec;
        if (S_ISREG(st.st_mode))
            e.type = tree_entry::kind::file;
        else if (S_ISDIR(st.st_mode))
            e.type = tree_entry::kind::dir;
        else if (S_ISLNK(st.st_mode))
            e.type = tree_entry::kind::link;
        if (filter && filter->excluded(e.rel, e.type == tree_entry::kind::dir)) continue;
        if (e.type == tree_entry::kind::link) {
            char buf[4096];
            ssize_t k = ::readlinkat(dfd, n.c_str(), buf, sizeof buf);
            if (k > 0) e.link_target.assign(buf, static_cast<std::size_t>(k));
        }
        const bool is_dir = e.type == tree_entry::kind::dir;
        const std::string sub = e.rel;  // `out` may reallocate below
        out.push_back(std::move(e));
        if (is_dir) {
            auto r = walk_local(root, sub, filter, out);
            if (!r) {
                ::closedir(d);
                return r;
            }
        }
    }
    ::closedir(d);
    return {};
}

asio::awaitable<core::result<void>> walk_remote(sftp::client& c, const std::string& root,
                                                const std::string& rel, const path_filter* filter,
                                                std::vector<tree_entry>& out) {
    std::string dir = rel.empty() ? root : join_path(root, rel);
    auto names = co_await c.list(dir);
    if (!names) co_return tl::unexpected(names.error());
    std::sort(names->begin(), names->end(),
              [](const auto& a, const auto& b) { return a.filename < b.filename; });
    for (auto& n : *names) {
        if (!safe_entry_name(n.filename))
            co_return core::fail(
                core::errc::protocol_error,
                fmt::format("refusing remote name \"{}\" in {}: it would escape the destination",
                            n.filename, dir));
        tree_entry e;
        e.rel = rel.empty() ? n.filename : rel + "/" + n.filename;
        e.size = n.attrs.size.value_or(0);
        e.mode = n.attrs.permissions.value_or(0) & 07777;
        e.mtime = n.attrs.mtime.value_or(0);
        if (n.attrs.is_reg())
            e.type = tree_entry::kind::file;
        else if (n.attrs.is_dir())
            e.type = tree_entry::kind::dir;
        else if (n.attrs.is_link())
            e.type = tree_entry::kind::link;
        if (filter && filter->excluded(e.rel, e.type == tree_entry::kind::dir)) continue;
        out.push_back(std::move(e));
        if (out.back().type == tree_entry::kind::dir) {
            auto sub = out.back().rel;
            if (auto r = co_await walk_remote(c, root, sub, filter, out); !r) co_return r;
        }
    }
    co_return core::result<void>{};
}

}  // namespace

void record_failure(transfer_stats& stats, progress& p, const core::error& e) {
    ++stats.failed;
    stats.errors.push_back(e.message);
    if (e.code != core::errc::invalid_argument && e.code != core::errc::not_found)
        stats.only_input_errors = false;
    p.finish();
}

asio::awaitable<void> copy_file_tasks(remote_host& host, std::vector<file_task> tasks, bool up,
                                      const copy_options& o, progress& p, transfer_stats& stats) {
    std::size_t next = 0;
    unsigned workers = std::max(
        1u,
        std::min<unsigned>(o.jobs, static_cast<unsigned>(std::max<std::size_t>(tasks.size(), 1))));
    co_await run_workers(workers, [&](unsigned slot) -> asio::awaitable<void> {
        auto c = co_await host.sftp(slot);
        if (!c) {
            // Fewer channels than asked (MaxSessions): leave the work to the others.
            if (slot > 0) co_return;
            while (next < tasks.size()) {
                ++next;
                record_failure(stats, p, c.error());
            }
            co_return;
        }
        while (next < tasks.size()) {
            const auto& t = tasks[next++];
            // (no co_await inside ?: — g++ 12 destroys its temporaries twice)
            core::result<file_outcome> r;
            if (up)
                r = co_await upload_file(host, **c, t.from, t.to, o, p);
            else
                r = co_await download_file(host, **c, t.from, t.to, o, p);
            if (!r)
                record_failure(stats, p, r.error());
            else if (*r == file_outcome::skipped)
                ++stats.skipped;
            else
                ++stats.files;
        }
    });
}

namespace {

// Entries below a directory that could not be created are left out.
struct failed_dirs {
    std::vector<std::string> rels;
    [[nodiscard]] bool covers(const std::string& rel) const {
        for (const auto& d : rels)
            if (rel.size() > d.size() && rel.compare(0, d.size(), d) == 0 && rel[d.size()] == '/')
                return true;
        return false;
    }
};

core::result<void> make_local_dir(const std::string& path, std::uint32_t mode) {
    if (::mkdir(path.c_str(), mode) == 0) return {};
    int e = errno;
    struct stat st {};
    if (e == EEXIST && ::lstat(path.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) return {};
        if (S_ISLNK(st.st_mode))
            return core::fail(core::errc::permission_denied,
                              fmt::format("refusing to write through the symlink {}", path));
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{} exists and is not a directory", path));
    }
    return tl::unexpected(errno_error("cannot create directory", path, e));
}

}  // namespace

core::result<std::vector<tree_entry>> list_local_tree(const std::string& root,
                                                      const path_filter* filter) {
    std::vector<tree_entry> out;
    if (auto r = walk_local(root, "", filter, out); !r) return tl::unexpected(r.error());
    return out;
}

asio::awaitable<core::result<std::vector<tree_entry>>> list_remote_tree(sftp::client& c,
                                                                        std::string root,
                                                                        const path_filter* filter) {
    std::vector<tree_entry> out;
    if (auto r = co_await walk_remote(c, root, "", filter, out); !r)
        co_return tl::unexpected(r.error());
    co_return out;
}

asio::awaitable<core::result<void>> upload(remote_host& host, std::vector<std::string> sources,
                                           std::string dest, const copy_options& o, progress& p,
                                           transfer_stats& stats) {
    auto c0 = co_await host.sftp(0);
    if (!c0) co_return tl::unexpected(c0.error());
    sftp::client& c = **c0;
    auto dst = co_await c.stat(dest);
    const bool dest_is_dir = dst && dst->is_dir();
    if (sources.size() > 1 && !dest_is_dir)
        co_return core::fail(
            dst ? core::errc::invalid_argument : core::errc::not_found,
            fmt::format("{} is not a directory (several sources need one)", rname(host, dest)));
    if (!dst && !dest.empty() && dest.back() == '/')
        co_return core::fail(core::errc::not_found,
                             fmt::format("directory {} does not exist", rname(host, dest)));

    std::vector<file_task> tasks;
    std::vector<std::pair<std::string, tree_entry>> dirs;  // remote path, entry: times set last
    for (const auto& src : sources) {
        struct stat st {};
        if (::stat(src.c_str(), &st) != 0) {
            record_failure(stats, p, errno_error("cannot read", src));
            continue;
        }
        std::string target = dest_is_dir ? join_path(dest, base_name(src)) : dest;
        if (!S_ISDIR(st.st_mode)) {
            p.add_total(static_cast<std::uint64_t>(st.st_size));
            tasks.push_back({src, target});
            continue;
        }
        if (!o.recursive) {
            record_failure(
                stats, p,
                {core::errc::invalid_argument, fmt::format("{} is a directory (use -r)", src)});
            continue;
        }
        auto tree = list_local_tree(src, nullptr);
        if (!tree) {
            record_failure(stats, p, tree.error());
            continue;
        }
        const std::uint32_t top_mode = o.preserve ? (st.st_mode & 07777) : 0755;
        auto made = co_await c.mkdir(target, top_mode);
        if (!made) {
            auto t = co_await c.stat(target);
            if (!t || !t->is_dir()) {
                record_failure(stats, p, made.error());
                continue;
            }
        }
        tree_entry top;
        top.mode = st.st_mode & 07777;
        top.mtime = st.st_mtim.tv_sec;
        dirs.emplace_back(target, top);
        failed_dirs failed;
        for (const auto& e : *tree) {
            if (failed.covers(e.rel)) continue;
            std::string to = join_path(target, e.rel);
            std::string from = join_path(src, e.rel);
            switch (e.type) {
                case tree_entry::kind::dir: {
                    const std::uint32_t dir_mode = o.preserve ? e.mode : 0755;
                    auto m = co_await c.mkdir(to, dir_mode);
                    if (!m) {
                        auto t = co_await c.lstat(to);
                        if (!t || !t->is_dir()) {
                            record_failure(stats, p, m.error());
                            failed.rels.push_back(e.rel);
                            break;
                        }
                    }
                    dirs.emplace_back(to, e);
                    break;
                }
                case tree_entry::kind::file:
                    p.add_total(e.size);
                    tasks.push_back({from, to});
                    break;
                case tree_entry::kind::link: {
                    (void)co_await c.remove(to);
                    if (auto l = co_await c.symlink(e.link_target, to); !l)
                        record_failure(stats, p, l.error());
                    else
                        ++stats.links;
                    break;
                }
                case tree_entry::kind::other:
                    spdlog::warn("skipping {}: not a regular file, directory or symlink", from);
                    break;
            }
        }
    }
    std::vector<std::string> owned;
    if (o.owner || o.group) {
        for (const auto& d : dirs) owned.push_back(d.first);
        for (const auto& t : tasks) owned.push_back(t.to);
    }
    co_await copy_file_tasks(host, std::move(tasks), true, o, p, stats);
    if (o.preserve) {
        // Deepest first, after the files: writing into a directory changes its mtime.
        for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
            sftp::file_attrs a;
            a.permissions = it->second.mode;
            a.atime = a.mtime = static_cast<std::uint32_t>(it->second.mtime);
            (void)co_await c.setstat(it->first, a);
        }
    }
    if (!owned.empty()) {
        // chown through sudo, many paths per command.
        std::string spec = o.owner.value_or("") + (o.group ? ":" + *o.group : "");
        for (std::size_t i = 0; i < owned.size();) {
            std::string command = "sudo -n chown -h -- " + core::shell_quote(spec);
            for (; i < owned.size() && command.size() < 64 * 1024; ++i)
                command += " " + core::shell_quote(owned[i]);
            auto r = co_await host.run(command, std::chrono::minutes(5));
            if (!r)
                record_failure(stats, p, r.error());
            else if (r->exit_status != 0)
                record_failure(
                    stats, p,
                    {core::errc::permission_denied,
                     fmt::format("chown {} on {} failed: {}", spec, host.destination(),
                                 r->err.empty() ? "exit status " + std::to_string(r->exit_status)
                                                : r->err.substr(0, r->err.find('\n')))});
        }
    }
    co_return core::result<void>{};
}

asio::awaitable<core::result<void>> download(remote_host& host, std::vector<std::string> sources,
                                             std::string dest, const copy_options& o, progress& p,
                                             transfer_stats& stats) {
    auto c0 = co_await host.sftp(0);
    if (!c0) co_return tl::unexpected(c0.error());
    sftp::client& c = **c0;
    struct stat dst {};
    const bool dest_exists = ::stat(dest.c_str(), &dst) == 0;
    const bool dest_is_dir = dest_exists && S_ISDIR(dst.st_mode);
    if (sources.size() > 1 && !dest_is_dir)
        co_return core::fail(dest_exists ? core::errc::invalid_argument : core::errc::not_found,
                             fmt::format("{} is not a directory (several sources need one)", dest));
    if (!dest_exists && !dest.empty() && dest.back() == '/')
        co_return core::fail(core::errc::not_found,
                             fmt::format("directory {} does not exist", dest));

    std::vector<file_task> tasks;
    std::vector<std::pair<std::string, tree_entry>> dirs;
    for (const auto& src : sources) {
        auto st = co_await c.stat(src);
        if (!st) {
            record_failure(stats, p, st.error());
            continue;
        }
        std::string name = base_name(src);
        if (dest_is_dir && !safe_entry_name(name)) {
            record_failure(
                stats, p,
                {core::errc::invalid_argument,
                 fmt::format("cannot name a copy of {} inside {}", rname(host, src), dest)});
            continue;
        }
        std::string target = dest_is_dir ? join_path(dest, name) : dest;
        if (!st->is_dir()) {
            p.add_total(st->size.value_or(0));
            tasks.push_back({src, target});
            continue;
        }
        if (!o.recursive) {
            record_failure(stats, p,
                           {core::errc::invalid_argument,
                            fmt::format("{} is a directory (use -r)", rname(host, src))});
            continue;
        }
        auto tree = co_await list_remote_tree(c, src, nullptr);
        if (!tree) {
            record_failure(stats, p, tree.error());
            continue;
        }
        if (auto m = make_local_dir(target, 0700); !m) {
            record_failure(stats, p, m.error());
            continue;
        }
        tree_entry top;
        top.mode = st->permissions.value_or(0755) & 07777;
        top.mtime = st->mtime.value_or(0);
        dirs.emplace_back(target, top);
        failed_dirs failed;
        for (auto& e : *tree) {
            if (failed.covers(e.rel)) continue;
            std::string to = join_path(target, e.rel);
            std::string from = join_path(src, e.rel);
            switch (e.type) {
                case tree_entry::kind::dir:
                    if (auto m = make_local_dir(to, 0700); !m) {
                        record_failure(stats, p, m.error());
                        failed.rels.push_back(e.rel);
                        break;
                    }
                    dirs.emplace_back(to, e);
                    break;
                case tree_entry::kind::file:
                    p.add_total(e.size);
                    tasks.push_back({from, to});
                    break;
                case tree_entry::kind::link: {
                    auto t = co_await c.readlink(from);
                    if (!t) {
                        record_failure(stats, p, t.error());
                        break;
                    }
                    if (link_escapes(e.rel, *t)) {
                        record_failure(
                            stats, p,
                            {core::errc::permission_denied,
                             fmt::format(
                                 "refusing {}: the symlink points outside the destination ({})",
                                 rname(host, from), *t)});
                        break;
                    }
                    ::unlink(to.c_str());
                    if (::symlink(t->c_str(), to.c_str()) != 0)
                        record_failure(stats, p, errno_error("cannot create symlink", to));
                    else
                        ++stats.links;
                    break;
                }
                case tree_entry::kind::other:
                    spdlog::warn("skipping {}: not a regular file, directory or symlink",
                                 rname(host, from));
                    break;
            }
        }
    }
    co_await copy_file_tasks(host, std::move(tasks), false, o, p, stats);
    mode_t mask = ::umask(0);
    ::umask(mask);
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
        ::chmod(it->first.c_str(), o.preserve ? it->second.mode : (0777 & ~mask));
        if (o.preserve) {
            struct timespec times[2] = {{it->second.mtime, 0}, {it->second.mtime, 0}};
            ::utimensat(AT_FDCWD, it->first.c_str(), times, AT_SYMLINK_NOFOLLOW);
        }
    }
    co_return core::result<void>{};
}

}  // namespace tunnel::transfer
