#include "relay/connection_gate.hpp"

#include <algorithm>
#include <mutex>

#include <fmt/format.h>

namespace tunnel::relay {

struct connection_gate::state {
    std::mutex mutex;  // the relay's workers admit and release concurrently
    connection_caps caps;
    unsigned open = 0;
    unsigned unauthenticated = 0;
    std::unordered_map<std::string, unsigned> per_source;  // entries at 0 are erased
};

namespace {

constexpr std::uint64_t reserved_fds = 64;

}  // namespace

connection_caps resolve_connection_caps(const limits_config& limits, std::uint64_t nofile_soft,
                                        std::vector<std::string>& warnings) {
    const std::uint64_t usable = nofile_soft > reserved_fds * 2 ? nofile_soft - reserved_fds : 64;
    const auto fits = static_cast<unsigned>(std::min<std::uint64_t>(usable * 3 / 4, 10000000));
    connection_caps caps;
    caps.max_connections = limits.max_connections != 0 ? limits.max_connections : fits;
    if (limits.max_connections > usable)
        warnings.push_back(fmt::format(
            "limits.max_connections: {} does not fit under the open-file limit of {} (about {} "
            "would): when descriptors run out, accepts fail (EMFILE) and the relay backs off "
            "until connections close; raise LimitNOFILE or lower max_connections",
            limits.max_connections, nofile_soft, fits));
    caps.max_per_source = limits.max_connections_per_ip;
    caps.max_unauthenticated = limits.max_unauthenticated != 0
                                   ? limits.max_unauthenticated
                                   : std::max(1u, caps.max_connections / 2);
    return caps;
}

connection_caps caps_of(const limits_config& limits) {
    connection_caps caps;
    caps.max_connections = std::max(1u, limits.max_connections);
    caps.max_per_source = std::max(1u, limits.max_connections_per_ip);
    caps.max_unauthenticated = limits.max_unauthenticated != 0
                                   ? limits.max_unauthenticated
                                   : std::max(1u, caps.max_connections / 2);
    return caps;
}

std::string_view to_string(gate_refusal r) noexcept {
    switch (r) {
        case gate_refusal::connections:
            return "max_connections";
        case gate_refusal::per_source:
            return "max_connections_per_ip";
        case gate_refusal::unauthenticated:
            return "max_unauthenticated";
    }
    return "max_connections";
}

namespace {

// Dotted quad, as address_v4::to_string() gives it, without inet_ntop's
// sprintf (2.4% of the relay's instructions for a `Connection: close`
// request: every public connection is admitted by its source).
std::string dotted(const asio::ip::address_v4& a) {
    std::string out;
    out.reserve(15);
    for (const unsigned char octet : a.to_bytes()) {
        if (!out.empty()) out += '.';
        if (octet >= 100) out += static_cast<char>('0' + octet / 100);
        if (octet >= 10) out += static_cast<char>('0' + octet / 10 % 10);
        out += static_cast<char>('0' + octet % 10);
    }
    return out;
}

}  // namespace

std::string source_key(const asio::ip::address& address) {
    if (address.is_v4()) return dotted(address.to_v4());
    const auto v6 = address.to_v6();
    if (v6.is_v4_mapped()) return dotted(asio::ip::make_address_v4(asio::ip::v4_mapped, v6));
    auto bytes = v6.to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    return asio::ip::address_v6(bytes).to_string() + "/64";
}

connection_gate::connection_gate(connection_caps caps) : state_(std::make_shared<state>()) {
    state_->caps = caps;
}

tl::expected<connection_gate::ticket, gate_refusal> connection_gate::admit(
    const std::string& source) {
    auto& st = *state_;
    std::lock_guard lock(st.mutex);
    if (st.open >= st.caps.max_connections) return tl::unexpected(gate_refusal::connections);
    auto it = st.per_source.find(source);
    if (it != st.per_source.end() && it->second >= st.caps.max_per_source)
        return tl::unexpected(gate_refusal::per_source);
    if (st.unauthenticated >= st.caps.max_unauthenticated)
        return tl::unexpected(gate_refusal::unauthenticated);
    ++st.open;
    ++st.unauthenticated;
    ++st.per_source[source];
    return ticket(state_, source);
}

unsigned connection_gate::open() const noexcept {
    std::lock_guard lock(state_->mutex);
    return state_->open;
}
unsigned connection_gate::unauthenticated() const noexcept {
    std::lock_guard lock(state_->mutex);
    return state_->unauthenticated;
}
unsigned connection_gate::from(const std::string& source) const {
    std::lock_guard lock(state_->mutex);
    auto it = state_->per_source.find(source);
    return it == state_->per_source.end() ? 0 : it->second;
}
const connection_caps& connection_gate::caps() const noexcept {
    return state_->caps;
}

connection_gate::ticket& connection_gate::ticket::operator=(ticket&& other) noexcept {
    if (this != &other) {
        release();
        state_ = std::move(other.state_);
        source_ = std::move(other.source_);
        authenticated_ = other.authenticated_;
    }
    return *this;
}

connection_gate::ticket::~ticket() {
    release();
}

void connection_gate::ticket::authenticated() noexcept {
    if (!state_ || authenticated_) return;
    authenticated_ = true;
    std::lock_guard lock(state_->mutex);
    --state_->unauthenticated;
}

void connection_gate::ticket::release() noexcept {
    if (!state_) return;
    {
        auto& st = *state_;
        std::lock_guard lock(st.mutex);
        --st.open;
        if (!authenticated_) --st.unauthenticated;
        if (auto it = st.per_source.find(source_); it != st.per_source.end() && --it->second == 0)
            st.per_source.erase(it);
    }
    state_.reset();
}

}  // namespace tunnel::relay
