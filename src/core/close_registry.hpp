// What a server owns and must close before its io_context can run out of
// work: connections, tunnels, timers. One job: an owner registers how to
// close a thing and keeps the returned handle; the entry goes away with the
// handle (the thing finished by itself), and close_all() closes whatever is
// still registered. Used from one thread (the server's io_context).
//
//   conn->owned = relay.owned.add("public connection", [weak] {
//       if (auto c = weak.lock()) c->close();
//   });
//   ...
//   relay.owned.close_all();  // shutdown: every connection, tunnel and timer
//
// Handles hold the registry weakly, so an owner may outlive the registry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace tunnel::core {

class close_registry {
    struct entries;

  public:
    // Removes its entry when destroyed or reset. Move-only.
    class handle {
      public:
        handle() = default;
        handle(handle&& other) noexcept;
        handle& operator=(handle&& other) noexcept;
        handle(const handle&) = delete;
        handle& operator=(const handle&) = delete;
        ~handle();

        void reset() noexcept;
        [[nodiscard]] bool active() const noexcept;

      private:
        friend class close_registry;
        handle(std::weak_ptr<entries> owner, std::uint64_t id)
            : owner_(std::move(owner)), id_(id) {}
        std::weak_ptr<entries> owner_;
        std::uint64_t id_ = 0;
    };

    close_registry();

    // Registers `close` under `what` (a kind: "public connection", "tunnel").
    // After close_all() has begun, calls `close` at once and returns an
    // inactive handle: nothing new outlives a shutdown.
    [[nodiscard]] handle add(std::string what, std::function<void()> close);

    // Calls every registered close function once (each entry is removed
    // before its function runs, so a function may add, remove or destroy
    // owners, including itself). Idempotent.
    void close_all();

    [[nodiscard]] bool closing() const noexcept;
    [[nodiscard]] std::size_t size() const noexcept;
    [[nodiscard]] std::size_t count(std::string_view what) const noexcept;
    // "2 public connection, 1 tunnel": what is still registered, for logs.
    [[nodiscard]] std::string describe() const;

  private:
    struct entry {
        std::string what;
        std::function<void()> close;
    };
    struct entries {
        mutable std::mutex mutex;  // guards map, next_id, closing
        std::map<std::uint64_t, entry> map;
        std::uint64_t next_id = 1;
        bool closing = false;
    };
    std::shared_ptr<entries> entries_;
};

}  // namespace tunnel::core
