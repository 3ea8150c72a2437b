#include "relay/usage_endpoint.hpp"

#include <chrono>
#include <optional>

#include <spdlog/spdlog.h>

#include "relay/relay_state.hpp"
#include "usage/redis_usage.hpp"
#include "usage/usage_report.hpp"
#include "usage/usage_store.hpp"

namespace tunnel::relay {

namespace {

observe::admin_response admin_answer(usage::usage_answer a) {
    observe::admin_response res;
    res.status = a.status;
    res.content_type = std::move(a.content_type);
    res.body = std::move(a.body);
    return res;
}

}  // namespace

std::vector<observe::admin_endpoint> usage_endpoints(const std::shared_ptr<relay_state>& state) {
    std::weak_ptr<relay_state> weak = state;
    // Opened at the first report; touched on the admin listener's thread only.
    auto reader = std::make_shared<std::optional<usage::usage_store>>();
    auto handler = [weak, reader](const observe::admin_request& req) {
        using observe::admin_response;
        auto st = weak.lock();
        if (!st) return admin_response::error(503, "stopped", "the relay has stopped");
        if (!st->config.usage)
            return admin_response::error(
                404, "usage_off",
                "usage analytics are off: add usage: {database: PATH} to the relay config");
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        auto q = usage::parse_usage_query(req.query, now);
        if (!q) return admin_response::error(400, "bad_query", q.error().message);
        if (st->cluster_usage) {  // the cluster's numbers, from Redis
            admin_response later;
            later.later = [cu = st->cluster_usage, query = *q,
                           now](admin_response::deliver_fn deliver) {
                cu->report_to(query, now, [deliver = std::move(deliver)](usage::usage_answer a) {
                    deliver(admin_answer(std::move(a)));
                });
            };
            return later;
        }
        if (!*reader) {
            auto store = usage::usage_store::open(st->config.usage->database);
            if (!store) {
                spdlog::error("usage analytics: {}", store.error().message);
                return admin_response::error(500, "usage_store", store.error().message);
            }
            reader->emplace(std::move(*store));
        }
        return admin_answer(usage::usage_report(**reader, *q, now));
    };
    return {{"/api/v1/usage",
             "usage per tenant and name per hour, totals and a next-week forecast "
             "(?tenant=&from=&to=&format=json|csv)",
             handler}};
}

}  // namespace tunnel::relay
