// A plan: a YAML list of steps shaped like Ansible tasks.
//   - name: deploy user            # optional
//     hosts: web:&prod             # optional inventory pattern, default all
//     sudo: true                   # optional, run as root via sudo -n
//     when: facts.pkg_manager == 'apt'   # optional, see condition.hpp
//     user: {name: deploy, shell: /bin/bash}   # exactly one module key
// Reading is strict: unknown modules or keys and wrong types are errors that
// name the plan file, the step (index and name) and the key.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "ops/condition.hpp"
#include "ops/module.hpp"

namespace tunnel::ops {

struct step {
    std::size_t index = 0;  // 1-based position in the plan
    std::string name;       // as written; may be empty
    std::string hosts = "all";
    bool sudo = false;
    std::optional<condition> when;
    std::shared_ptr<const module> mod;

    // "step 3 (deploy user)" or "step 3 (user)".
    [[nodiscard]] std::string label() const;
};

struct plan {
    std::string file;
    std::vector<step> steps;
};

// `file` names the plan in messages; `src:` paths resolve against `plan_dir`.
[[nodiscard]] core::result<plan> parse_plan(std::string_view text, const std::string& file,
                                            const std::string& plan_dir);
[[nodiscard]] core::result<plan> load_plan(const std::string& path);

}  // namespace tunnel::ops
