// Runs a plan on hosts: facts once per host, every step's probe batched into
// one round trip, check, then (unless in check mode) the step's actions.
// A failing step stops its host; other hosts continue unless fail_fast.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/asio.hpp"
#include "exec/executor.hpp"
#include "ops/plan.hpp"
#include "ssh/connect_options.hpp"

namespace tunnel::ops {

enum class step_status { ok, changed, failed, skipped, unreachable };
[[nodiscard]] std::string_view to_string(step_status s) noexcept;

struct step_report {
    std::string host;
    std::size_t step = 0;  // 1-based step index; 0 for the host itself (unreachable, facts)
    std::string label;     // "step 3 (deploy user)"
    std::string module;
    step_status status = step_status::ok;
    std::vector<std::string> changes;
    std::string diff;
    std::string message;  // why it failed / was skipped
    std::chrono::milliseconds duration{0};
};

struct host_recap {
    std::string host;
    unsigned ok = 0, changed = 0, failed = 0, skipped = 0, unreachable = 0;
};

struct plan_host {
    std::string name;
    ssh::connect_options options;
    std::vector<std::size_t>
        steps;  // 0-based indexes into plan::steps selected for this host (by `hosts:`)
    // Template variables (templating::host_variables: inventory vars, --extra-vars,
    // inventory_hostname); the runner adds `facts`.
    nlohmann::json vars = nlohmann::json::object();
};

struct apply_options {
    bool check = false;
    bool fail_fast = false;
    std::chrono::milliseconds action_timeout{std::chrono::minutes(10)};
    std::chrono::milliseconds login_check_timeout{std::chrono::seconds(20)};
};

class plan_runner {
  public:
    using report_fn = std::function<void(const step_report&)>;
    plan_runner(exec::executor& exec, const plan& p, apply_options options, report_fn on_report);

    // Runs the plan's steps on one host. Never fails as a whole: problems are
    // reports and counts in the recap.
    asio::awaitable<host_recap> run_host(plan_host host);

    // run_host in two halves, so that run_hosts can render every host's
    // templates before it changes any host. `prepare` gathers facts, evaluates
    // `when:` and binds the steps (renders templates); nullptr when the host
    // is done (unreachable, failed, nothing to do).
    struct host_state;
    asio::awaitable<std::unique_ptr<host_state>> prepare(plan_host host, host_recap& recap);
    asio::awaitable<void> run_prepared(host_state& hs, host_recap& recap);
    // A template failed to render for some host: nothing may be changed.
    [[nodiscard]] bool render_failed() const noexcept { return render_failed_; }
    void report_not_run(const host_state& hs, host_recap& recap);

    // Set when a step failed and fail_fast is on: hosts stop before their next step.
    [[nodiscard]] bool stopped() const noexcept { return stop_; }

  private:
    // `with_library`: prepend the race-free path functions (safe_path.hpp); facts need none.
    asio::awaitable<core::result<exec::exec_result>> run_script(const plan_host& h,
                                                                std::string script, bool sudo,
                                                                std::string input,
                                                                bool with_library = true);
    asio::awaitable<core::result<void>> probe(host_state& hs, std::size_t from);
    asio::awaitable<core::result<void>> apply(host_state& hs, const step& s, const check_result& c);
    asio::awaitable<core::result<void>> verify_fresh_login(const plan_host& h);

    exec::executor& exec_;
    const plan& plan_;
    apply_options options_;
    report_fn on_report_;
    bool stop_ = false;
    bool render_failed_ = false;
};

// Selects, for each inventory host, the plan steps whose `hosts:` pattern
// includes it; `select(pattern)` returns the names a pattern matches.
[[nodiscard]] core::result<std::vector<std::vector<std::size_t>>> steps_for_hosts(
    const plan& p, const std::vector<std::string>& hosts,
    const std::function<core::result<std::vector<std::string>>(std::string_view)>& select);

// "HOST  ok=N changed=N failed=N skipped=N unreachable=N" (Ansible's shape).
[[nodiscard]] std::string format_recap(const host_recap& r, std::size_t name_width = 0);
// One report as the CLI prints it: a status line, the changes indented, the diff when asked.
[[nodiscard]] std::string format_report(const step_report& r, bool check, bool with_diff);
[[nodiscard]] nlohmann::json to_json(const step_report& r);
[[nodiscard]] nlohmann::json to_json(const host_recap& r);

}  // namespace tunnel::ops

namespace tunnel::ops {
// Runs `runner.run_host` for every host through inventory::for_each_host (at most
// `forks` at a time); recaps in host order.
asio::awaitable<std::vector<host_recap>> run_hosts(plan_runner& runner,
                                                   std::vector<plan_host> hosts, unsigned forks);
}  // namespace tunnel::ops
