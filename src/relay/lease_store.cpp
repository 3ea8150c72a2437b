#include "relay/lease_store.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "core/encoding.hpp"

namespace tunnel::relay {

namespace {

class memory_lease_store final : public lease_store {
  public:
    grant attach(const std::string& tenant, std::string_view presented, std::uint64_t tunnel,
                 std::chrono::milliseconds grace, bool adopt) override {
        std::lock_guard lock(mutex_);
        grant g;
        if (!presented.empty()) {
            const std::string digest = core::sha256(presented);
            // Every lease of the tenant is compared, each in constant time.
            lease* found = nullptr;
            std::uint64_t found_key = 0;
            for (auto& [key, l] : leases_) {
                if (l.tenant != tenant) continue;
                if (CRYPTO_memcmp(l.digest.data(), digest.data(), digest.size()) == 0) {
                    found = &l;
                    found_key = key;
                }
            }
            if (found) {
                g.lease = found_key;
                g.id = std::string(presented);
                g.route_id = found->route_id;
                g.reclaimed = true;
                g.previous_tunnel = found->tunnel;
                g.names.assign(found->names.begin(), found->names.end());
                found->tunnel = tunnel;
                found->grace = grace;
                return g;
            }
        }
        // Taken over from another relay: the client keeps its ID.
        const bool adopted = adopt && valid_lease_id(presented);
        g.id = adopted ? std::string(presented) : new_lease_id();
        g.reclaimed = adopted;
        g.route_id = lease_route_id(g.id);
        g.lease = next_++;
        lease l;
        l.tenant = tenant;
        l.digest = core::sha256(g.id);
        l.route_id = g.route_id;
        l.tunnel = tunnel;
        l.grace = grace;
        leases_.emplace(g.lease, std::move(l));
        return g;
    }

    core::result<void> claim(std::uint64_t key, const std::string& tenant,
                             const std::string& name) override {
        std::lock_guard lock(mutex_);
        const auto route = std::make_pair(tenant, name);
        if (auto it = holders_.find(route); it != holders_.end() && it->second != key) {
            const auto& l = leases_.at(it->second);
            if (l.tunnel != 0)
                return core::fail(core::errc::denied,
                                  fmt::format("{:?} is held by the lease of another tunnel of "
                                              "tenant {}",
                                              name, tenant));
            const auto left = std::chrono::ceil<std::chrono::seconds>(l.expires - clock::now());
            return core::fail(
                core::errc::denied,
                fmt::format("{:?} is held for {} more s by the lease of a tunnel of tenant {} "
                            "that dropped (it may come back); attach with that tunnel's lease "
                            "ID, or publish it after the grace period",
                            name, std::max<long long>(left.count(), 0), tenant));
        }
        if (key == 0) return {};
        auto l = leases_.find(key);
        if (l == leases_.end())
            return core::fail(core::errc::denied, "the tunnel's lease has ended");
        holders_[route] = key;
        l->second.names.insert(name);
        return {};
    }

    void release(std::uint64_t key, const std::string& tenant, const std::string& name) override {
        std::lock_guard lock(mutex_);
        const auto route = std::make_pair(tenant, name);
        if (auto it = holders_.find(route); it != holders_.end() && it->second == key)
            holders_.erase(it);
        if (auto l = leases_.find(key); l != leases_.end()) l->second.names.erase(name);
    }

    released detach(std::uint64_t key, std::uint64_t tunnel, bool release) override {
        std::lock_guard lock(mutex_);
        released out;
        auto it = leases_.find(key);
        if (it == leases_.end() || it->second.tunnel != tunnel) return out;  // taken over
        auto& l = it->second;
        l.tunnel = 0;
        l.expires = clock::now() + l.grace;
        if (release || l.grace.count() <= 0) out = drop(it);
        return out;
    }

    holding held(const std::string& tenant, const std::string& name) const override {
        std::lock_guard lock(mutex_);
        holding h;
        auto it = holders_.find(std::make_pair(tenant, name));
        if (it == holders_.end()) return h;
        const auto& l = leases_.at(it->second);
        h.lease = it->second;
        h.attached = l.tunnel != 0;
        h.expires = l.expires;
        return h;
    }

    std::vector<released> expire(clock::time_point now) override {
        std::lock_guard lock(mutex_);
        std::vector<released> out;
        for (auto it = leases_.begin(); it != leases_.end();) {
            auto next = std::next(it);
            if (it->second.tunnel == 0 && it->second.expires <= now) out.push_back(drop(it));
            it = next;
        }
        return out;
    }

    std::size_t size() const override {
        std::lock_guard lock(mutex_);
        return leases_.size();
    }

  private:
    struct lease {
        std::string tenant;
        std::string digest;        // SHA-256 of the ID
        std::string route_id;      // lease_route_id of the ID
        std::uint64_t tunnel = 0;  // attached tunnel; 0 while detached
        std::chrono::milliseconds grace{0};
        clock::time_point expires{};  // while detached
        std::set<std::string> names;
    };

    // Forgets a lease and releases its names (mutex_ held).
    released drop(std::map<std::uint64_t, lease>::iterator it) {
        released out;
        out.tenant = it->second.tenant;
        out.lease = it->first;
        out.route_id = it->second.route_id;
        for (const auto& name : it->second.names) {
            auto h = holders_.find(std::make_pair(out.tenant, name));
            if (h != holders_.end() && h->second == it->first) holders_.erase(h);
            out.names.push_back(name);
        }
        leases_.erase(it);
        return out;
    }

    mutable std::mutex mutex_;
    std::uint64_t next_ = 1;
    std::map<std::uint64_t, lease> leases_;
    std::map<std::pair<std::string, std::string>, std::uint64_t> holders_;  // (tenant, name)
};

}  // namespace

std::unique_ptr<lease_store> make_memory_lease_store() {
    return std::make_unique<memory_lease_store>();
}

std::string new_lease_id() {
    std::string bytes(32, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()),
                   static_cast<int>(bytes.size())) != 1)
        throw std::runtime_error("RAND_bytes failed: no randomness for a lease ID");
    return core::base64url_encode(bytes);
}

std::string lease_route_id(std::string_view id) {
    return "lease/" + core::hex_encode(core::sha256(core::sha256(id))).substr(0, 32);
}

bool valid_lease_id(std::string_view text) noexcept {
    if (text.size() != 43) return false;
    for (char c : text)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    return true;
}

}  // namespace tunnel::relay
