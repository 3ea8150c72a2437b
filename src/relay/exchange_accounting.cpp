#include "relay/exchange_accounting.hpp"

#include <exception>

#include <boost/asio/post.hpp>

#include "usage/usage_recorder.hpp"

namespace tunnel::relay {

request_record::~request_record() {
    const int s = conn->last_status;
    const char* cls = s >= 500   ? "5xx"
                      : s >= 400 ? "4xx"
                      : s >= 300 ? "3xx"
                      : s >= 200 ? "2xx"
                      : s >= 100 ? "1xx"
                                 : "none";
    relay->metrics.requests.with({tenant, route, cls}).inc();
    const auto took = std::chrono::steady_clock::now() - start;
    if (s > 0)
        relay->metrics.latency.with({tenant}).observe(std::chrono::duration<double>(took).count());
    // Usage analytics: requests of published routes only (as the labels above).
    if (relay->usage && tenant != "none")
        relay->usage->record_request(conn->worker, tenant, route, std::chrono::system_clock::now(),
                                     bytes_in, bytes_out, s, took);
    if (trace && relay->tracer) {
        const bool known = tenant != "none";
        try {
            finish_trace(*relay->tracer, *trace, s, known ? tenant : "", known ? route : "",
                         conn->peer_ip);
        } catch (const std::exception&) {  // out of memory: the spans are lost, not the relay
        }
    }
}

void flight_guard::end_stream() {
    if (stream_ended) return;
    stream_ended = true;
    --tunnel->active_streams;
}

flight_guard::~flight_guard() {
    tunnel->breaker_seen = tunnel->breaker->state();  // for the admin API
    end_stream();
    // on_drained belongs to worker 0 (the shutdown coroutine): told there.
    if (--relay->in_flight == 0 && relay->stopping)
        asio::post(relay->io, [r = relay] {
            if (!r->on_drained) return;
            auto cb = std::move(r->on_drained);
            r->on_drained = nullptr;
            cb();
        });
}

}  // namespace tunnel::relay
