// bench/relay: `relay_bench [--parts http,bulk,idle] [part options]`; each part
// is described in relay_parts.hpp. Options: --rounds N (both), --seconds N
// and --workers N, --tracing OTLP_URL (http), --mib N (bulk), --tunnels N (idle),
// --requests N, --connections C, --tools counts,callgrind, --workers W (cost).
#include <string>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "relay_parts.hpp"

int main(int argc, char** argv) {
    using namespace tunnel::bench;
    const std::string parts = arg_text(argc, argv, "--parts", "http,bulk");
    int status = 0;
    bool any = false;
    for (std::size_t at = 0; at <= parts.size();) {
        auto comma = parts.find(',', at);
        if (comma == std::string::npos) comma = parts.size();
        const std::string part = parts.substr(at, comma - at);
        at = comma + 1;
        if (part.empty()) continue;
        any = true;
        if (part == "http")
            status |= run_http_part(argc, argv);
        else if (part == "bulk")
            status |= run_bulk_part(argc, argv);
        else if (part == "idle")
            status |= run_idle_part(argc, argv);
        else if (part == "cost")
            status |= run_cost_part(argc, argv);
        else {
            fmt::print(stderr, "--parts: unknown part {:?} (known: http, bulk, idle, cost)\n",
                       part);
            return 2;
        }
    }
    if (!any) {
        fmt::print(stderr, "--parts: name at least one part (http, bulk, idle, cost)\n");
        return 2;
    }
    return status;
}
