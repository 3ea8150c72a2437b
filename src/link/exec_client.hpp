// The caller's side of a pooled exec (link/exec_service.hpp): `tunnel exec`,
// `run` and friends hand their command to a running `tunnel up` when one of
// its links reaches the target, and run it on their own connection when no
// manager answers, no link matches, or the link is down.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "exec/pooled_runner.hpp"
#include "link/control_path.hpp"

namespace tunnel::link {

class manager_exec final : public exec::pooled_runner {
  public:
    explicit manager_exec(std::string socket_path) : socket_(std::move(socket_path)) {}

    // The user named `destination` as `name` (an inventory name, a TARGET
    // without user@ or :port): the manager is asked for the link of that
    // name first, then for the link whose target resolves to `destination`.
    void name_destination(const std::string& destination, const std::string& name);

    asio::awaitable<std::optional<core::result<exec::pooled_outcome>>> run(
        exec::pooled_request r) override;

  private:
    std::string socket_;
    std::map<std::string, std::string> names_;
};

}  // namespace tunnel::link
