#include "transfer/script_runner.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "transfer/location.hpp"
#include "transfer/remote_host.hpp"

namespace tunnel::transfer {

namespace {

constexpr std::size_t max_script = 16u << 20;

std::string random_suffix() {
    std::random_device rd;
    return fmt::format("{:08x}{:08x}", rd(), rd());
}

}  // namespace

std::vector<std::string> script_argv(std::string_view script_text, const std::string& remote_file,
                                     const std::optional<std::string>& interpreter,
                                     const std::vector<std::string>& args) {
    std::vector<std::string> argv;
    if (interpreter && !interpreter->empty()) {
        argv.push_back(*interpreter);
    } else if (script_text.substr(0, 2) != "#!") {
        argv.emplace_back("sh");
    }
    argv.push_back(remote_file);
    argv.insert(argv.end(), args.begin(), args.end());
    // Several words: each is quoted (exec::command's argv form), even with one arg.
    if (argv.size() == 1) argv.insert(argv.begin(), "exec");
    return argv;
}

asio::awaitable<core::result<script_result>> run_script(pool::session_pool& pool,
                                                        exec::executor& runner,
                                                        const ssh::connect_options& target,
                                                        script_job job, exec::exec_events events,
                                                        exec::run_options options) {
    int fd = ::open(job.local_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        co_return core::fail(
            errno == ENOENT ? core::errc::not_found : core::errc::io_error,
            fmt::format("cannot open script {}: {}", job.local_path, std::strerror(errno)));
    struct stat st {};
    ::fstat(fd, &st);
    if (!S_ISREG(st.st_mode) || static_cast<std::size_t>(st.st_size) > max_script) {
        ::close(fd);
        co_return core::fail(
            core::errc::invalid_argument,
            fmt::format("{} is not a regular file of at most 16 MiB", job.local_path));
    }
    char head[2] = {0, 0};
    if (::pread(fd, head, 2, 0) < 2) head[0] = 0;  // shorter than "#!": no shebang

    auto lease = co_await pool.acquire(target);
    if (!lease) {
        ::close(fd);
        co_return tl::unexpected(lease.error());
    }
    remote_host host(lease->session(), {});
    if (!co_await host.exec_allowed()) {
        ::close(fd);
        co_return core::fail(
            core::errc::denied,
            fmt::format(
                "{} runs no commands (an SFTP-only account, e.g. ForceCommand internal-sftp): "
                "tunnel script needs to run one; use tunnel cp to copy files there",
                target.destination()));
    }
    auto c = co_await host.sftp(0);
    if (!c) {
        ::close(fd);
        co_return tl::unexpected(c.error());
    }

    script_result out;
    out.remote_dir = join_path(job.remote_tmp, "tunnel-script-" + random_suffix());
    if (auto m = co_await (*c)->mkdir(out.remote_dir, 0700); !m) {
        ::close(fd);
        co_return tl::unexpected(m.error());
    }
    const std::string remote_file = join_path(out.remote_dir, base_name(job.local_path));
    auto cleanup = [&]() -> asio::awaitable<bool> {
        bool ok = static_cast<bool>(co_await (*c)->remove(remote_file));
        ok = static_cast<bool>(co_await (*c)->rmdir(out.remote_dir)) && ok;
        if (!ok) spdlog::warn("could not remove {} on {}", out.remote_dir, target.destination());
        co_return ok;
    };

    core::result<void> uploaded;
    {
        sftp::file_attrs a;
        a.permissions = 0700;
        auto h = co_await (*c)->open_file(remote_file,
                                          sftp::open_write | sftp::open_creat | sftp::open_excl, a);
        if (!h) {
            uploaded = tl::unexpected(h.error());
        } else {
            uploaded = co_await (*c)->upload(fd, *h, 0, static_cast<std::uint64_t>(st.st_size));
            sftp::file_attrs mode;
            mode.permissions = 0700;  // not subject to the server's umask
            if (uploaded) uploaded = co_await (*c)->fsetstat(*h, mode);
            auto closed = co_await (*c)->close(*h);
            if (uploaded && !closed) uploaded = closed;
        }
    }
    ::close(fd);
    if (!uploaded) {
        (void)co_await cleanup();
        co_return tl::unexpected(uploaded.error());
    }

    exec::command cmd = job.options;
    cmd.argv = script_argv(std::string_view(head, 2), remote_file, job.interpreter, job.args);
    auto r = co_await runner.run(target, cmd, std::move(events), std::move(options));
    out.cleaned_up = co_await cleanup();
    if (!r) co_return tl::unexpected(r.error());
    out.run = std::move(*r);
    co_return out;
}

}  // namespace tunnel::transfer
