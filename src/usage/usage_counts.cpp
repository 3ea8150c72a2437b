#include "usage/usage_counts.hpp"

namespace tunnel::usage {

void usage_counts::merge(const usage_counts& o) {
    requests += o.requests;
    bytes_in += o.bytes_in;
    bytes_out += o.bytes_out;
    errors += o.errors;
    tunnel_ms += o.tunnel_ms;
    for (const auto& [b, n] : o.latency) latency[b] += n;
}

}  // namespace tunnel::usage
