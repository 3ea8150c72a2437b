// tunnel usage report --relay http://ADMIN [--admin-token-file F] [--tenant T]
// [--from TIME] [--to TIME] [--csv|--json]: the relay's usage analytics
// (GET /api/v1/usage on its admin listener) as a table, CSV or JSON.
#include <unistd.h>

#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/duration.hpp"
#include "core/secret_file.hpp"
#include "usage/usage_client.hpp"
#include "usage/usage_report.hpp"

namespace tunnel::cli {

namespace {

struct usage_flags {
    std::string relay;
    std::string token_file;
    std::string tenant;
    std::string from;
    std::string to;
    std::string timeout = "30s";
    bool csv = false;
    bool json = false;
};

std::string encode(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
            out += static_cast<char>(c);
        else
            out += fmt::format("%{:02X}", c);
    }
    return out;
}

std::string bytes(std::uint64_t n) {
    if (n < 1024) return fmt::format("{} B", n);
    static constexpr const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(n);
    int u = -1;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        ++u;
    }
    return fmt::format("{:.1f} {}", v, units[u]);
}

std::string p95(const nlohmann::json& j) {
    if (!j.contains("p95_ms") || j["p95_ms"].is_null()) return "-";
    return fmt::format("{:.1f} ms", j["p95_ms"].get<double>());
}

std::string num(const nlohmann::json& j, const char* key) {
    return j.contains(key) && j[key].is_number() ? j[key].dump() : "-";
}

void print_table(const nlohmann::json& j) {
    fmt::print("Usage from {} to {} ({})\n\n", j.value("from", "?"), j.value("to", "?"),
               j["tenant"].is_string() ? "tenant " + j["tenant"].get<std::string>()
                                       : std::string("all tenants"));
    const auto row = [](const std::string& tenant, const std::string& name,
                        const nlohmann::json& c) {
        fmt::print("{:<16} {:<20} {:>10} {:>8} {:>11} {:>11} {:>9} {:>10}\n", tenant, name,
                   num(c, "requests"), num(c, "errors"), bytes(c.value("bytes_in", 0ULL)),
                   bytes(c.value("bytes_out", 0ULL)),
                   fmt::format("{:.2f}", c.value("tunnel_hours", 0.0)), p95(c));
    };
    fmt::print("{:<16} {:<20} {:>10} {:>8} {:>11} {:>11} {:>9} {:>10}\n", "TENANT", "NAME",
               "REQUESTS", "ERRORS", "BYTES IN", "BYTES OUT", "TUNNEL-H", "P95");
    for (const auto& t : j["totals"]) row(t.value("tenant", ""), t.value("name", ""), t);
    if (j["totals"].empty())
        fmt::print("(no usage recorded in this range)\n");
    else
        row("total", "", j["total"]);
    fmt::print(
        "\nForecast of requests over the next 7 days (Holt's linear trend; ± is the "
        "backtest MAE per hour x 168 h):\n");
    for (const auto& f : j["forecasts"]) {
        const std::string tenant = f.value("tenant", "");
        if (f.value("status", "") != "ok") {
            fmt::print("  {:<16} insufficient history ({} h of the {} h needed)\n", tenant,
                       f.value("history_hours", 0), f.value("needed_hours", 0));
            continue;
        }
        const auto& bt = f["backtest"];
        fmt::print(
            "  {:<16} {} requests ± {}  (backtest on the last {} h: MAE {}/h, RMSE {}/h, "
            "total off by {})\n",
            tenant, num(f, "requests_next_7d"), num(f, "plus_minus"), num(bt, "holdout_hours"),
            num(bt, "mae_per_hour"), num(bt, "rmse_per_hour"),
            bt["total_error_pct"].is_number() ? fmt::format("{}%", bt["total_error_pct"].dump())
                                              : std::string("n/a: no requests held out"));
    }
    if (j["forecasts"].empty()) fmt::print("  (no tenants in this range)\n");
}

int run_usage_report(const usage_flags& f) {
    if (f.csv && f.json)
        return report({core::errc::invalid_argument, "--csv and --json: choose one"});
    auto url = usage::parse_admin_url(f.relay);
    if (!url) return report(url.error());
    auto timeout = core::parse_duration(f.timeout);
    if (!timeout)
        return report(
            {core::errc::invalid_argument, fmt::format("--timeout: {}", timeout.error().message)});
    for (const auto& [flag, value] : {std::pair{"--from", &f.from}, std::pair{"--to", &f.to}})
        if (!value->empty())
            if (auto t = usage::parse_time(*value); !t)
                return report(
                    {core::errc::invalid_argument, fmt::format("{} {}", flag, t.error().message)});
    std::string token;
    if (!f.token_file.empty()) {
        auto t = core::read_secret_file(f.token_file, "--admin-token-file", 16);
        if (!t) return report(t.error());
        token = std::move(*t);
    }
    std::string target = "/api/v1/usage?format=";
    target += f.csv ? "csv" : "json";
    if (!f.tenant.empty()) target += "&tenant=" + encode(f.tenant);
    if (!f.from.empty()) target += "&from=" + encode(f.from);
    if (!f.to.empty()) target += "&to=" + encode(f.to);
    auto reply = usage::admin_get(*url, target, token, *timeout);
    if (!reply) return report(reply.error());
    if (reply->status != 200) {
        std::string message = reply->body;
        try {
            message = nlohmann::json::parse(reply->body).value("message", reply->body);
        } catch (const nlohmann::json::exception&) {
        }
        while (!message.empty() && message.back() == '\n') message.pop_back();
        const std::string hint =
            reply->status == 401 ? " (give the relay's admin token with --admin-token-file)" : "";
        fmt::print(stderr, "tunnel: the relay answered {}: {}{}\n", reply->status, message, hint);
        return reply->status == 400 ? exit_usage : 1;
    }
    if (f.csv || f.json) {
        write_all(1, reply->body);
        return 0;
    }
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(reply->body);
    } catch (const nlohmann::json::exception& e) {
        fmt::print(stderr, "tunnel: the relay's answer is not JSON: {}\n", e.what());
        return 1;
    }
    print_table(j);
    return 0;
}

}  // namespace

void add_usage_command(CLI::App& app, command_runner& run) {
    auto* usage = app.add_subcommand("usage", "Relay usage analytics");
    usage->require_subcommand(1);
    auto* rep = usage->add_subcommand(
        "report",
        "Requests, bytes, tunnel-hours, errors and p95 per tenant and name, and a "
        "next-week forecast with its backtest error");
    rep->footer(
        "Reads GET /api/v1/usage from the relay's admin listener (the relay needs usage: "
        "{database: PATH}).\n"
        "Times are unix seconds or ISO 8601 in UTC; the default range is the last 24 hours.\n"
        "Examples:\n"
        "  tunnel usage report --relay http://127.0.0.1:9090 --admin-token-file admin.token\n"
        "  tunnel usage report --relay http://127.0.0.1:9090 --tenant acme --from 2026-12-01 "
        "--to 2026-12-08 --csv > acme.csv");
    auto flags = std::make_shared<usage_flags>();
    rep->add_option("--relay", flags->relay, "The relay's admin listener, http://HOST:PORT")
        ->required();
    rep->add_option("--admin-token-file", flags->token_file,
                    "File holding the relay's admin bearer token (admin.token_file)");
    rep->add_option("--tenant", flags->tenant, "Only this tenant (default: all)");
    rep->add_option("--from", flags->from, "Start (default: 24 hours before --to)");
    rep->add_option("--to", flags->to, "End, exclusive (default: now)");
    rep->add_option("--timeout", flags->timeout, "How long to wait for the relay")
        ->capture_default_str();
    rep->add_flag("--csv", flags->csv, "Print the per-hour rows and totals as CSV");
    rep->add_flag("--json", flags->json, "Print the relay's JSON report");
    rep->callback([flags, &run] { run = [flags] { return run_usage_report(*flags); }; });
}

}  // namespace tunnel::cli
