#include "health/health_probe.hpp"

#include <fmt/format.h>

#include "health/probe_parser.hpp"
#include "health/probe_script.hpp"
#include "inventory/fanout.hpp"

namespace tunnel::health {

namespace {

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string first_line(std::string_view s) {
    auto nl = s.find('\n');
    std::string out(s.substr(0, std::min<std::size_t>(nl, 200)));
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20) c = '?';
    return out;
}

asio::awaitable<host_report> probe_one(exec::executor& runner, const probe_target& target,
                                       const thresholds& t, probe_options o) {
    host_report h;
    h.name = target.name;
    if (!target.options) {
        h.error = target.options.error().message;
        h.reached = !inventory::is_unreachable(target.options.error());
        co_return h;
    }
    auto opts = *target.options;
    opts.connect_timeout = std::min(opts.connect_timeout, o.timeout);
    h.destination = opts.destination();

    exec::command cmd;
    cmd.argv = {"sh", "-c", probe_script()};
    cmd.timeout = o.timeout;
    std::string out, err;
    bool too_much = false;
    std::optional<double> first_byte;
    exec::exec_events events;
    events.on_stdout = [&](std::string_view data) {
        if (!first_byte) first_byte = now_seconds();
        if (out.size() + data.size() > max_probe_output) {
            too_much = true;
            return;
        }
        out.append(data);
    };
    events.on_stderr = [&](std::string_view data) {
        if (err.size() < 1024) err.append(data.substr(0, 1024 - err.size()));
    };
    const double before = now_seconds();
    const auto started = std::chrono::steady_clock::now();
    auto r = co_await runner.run(opts, cmd, std::move(events));
    h.round_trip = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    if (!r) {
        h.error = r.error().message;
        h.reached = !inventory::is_unreachable(r.error());
        co_return h;
    }
    h.reached = true;
    if (r->timed_out) {
        h.error = fmt::format("the health probe did not finish within {} ms", o.timeout.count());
        co_return h;
    }
    if (too_much) {
        h.error = fmt::format("the health probe printed more than {} KiB; ignored",
                              max_probe_output / 1024);
        co_return h;
    }
    if (r->exit_code() != 0) {
        h.error = fmt::format("the health probe exited with {}{}", r->exit_code(),
                              err.empty() ? "" : ": " + first_line(err));
        co_return h;
    }
    auto s = parse_probe(out);
    if (!s) {
        h.error = s.error().message;
        co_return h;
    }
    h.up = true;
    h.clock = read_clock(*s, before, first_byte.value_or(now_seconds()));
    h.checks = evaluate(*s, h.clock, t);
    h.sample = std::move(*s);
    co_return h;
}

}  // namespace

asio::awaitable<std::vector<host_report>> probe_hosts(exec::executor& runner,
                                                      const std::vector<probe_target>& targets,
                                                      const thresholds& t, probe_options options) {
    std::vector<host_report> out(targets.size());
    co_await inventory::for_each_host(
        targets.size(), options.forks, [&](std::size_t i) -> asio::awaitable<void> {
            out[i] = co_await probe_one(runner, targets[i], t, options);
        });
    co_return out;
}

}  // namespace tunnel::health
