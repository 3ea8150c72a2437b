// A deploy file (`deploy.yaml`): what `tunnel deploy` ships and how.
//
//   app: shop
//   root: /srv/shop
//   artifact: build/shop.tar.gz     # .tar.gz/.tgz, .zip, a directory or a single binary
//   shared: [log, .env]
//   keep_releases: 5
//   unit: shop.service
//   hooks: {before_switch: ["./bin/migrate"], after_failure: ["logger deploy failed"]}
//   health:
//     - {http: "http://127.0.0.1:8000/up", status: 200, body: "ok", timeout: 30s}
//     - {command: "systemctl is-active shop"}
//   strategy: {type: rolling, batch: 2, max_fail_percentage: 0}
//
// Reading is strict (STYLE 11): unknown keys and wrong types are errors that
// name the file, the key path and the line; every problem is reported at once.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "deploy/blue_green_config.hpp"

namespace tunnel::deploy {

enum class artifact_kind { tar_gz, zip, directory, binary };
[[nodiscard]] std::string_view to_string(artifact_kind k) noexcept;

struct hooks {
    std::vector<std::string> before_upload, after_upload, before_switch, after_switch,
        after_success, after_failure;
};

struct health_check {
    // Exactly one of http / command.
    std::optional<std::string> http;     // URL fetched on the host (curl)
    std::optional<std::string> command;  // sh command run in the new release; exit 0 = healthy
    int status = 200;                    // http: expected status
    std::optional<std::string> body;     // http: the body must contain this
    std::optional<std::chrono::milliseconds> max_latency;         // http: slower answers fail
    std::chrono::milliseconds timeout{std::chrono::seconds(30)};  // keep retrying this long
    std::chrono::milliseconds interval{std::chrono::seconds(1)};  // between attempts

    // "http http://127.0.0.1:8000/up" / "command systemctl is-active shop".
    [[nodiscard]] std::string label() const;
};

enum class strategy_type { recreate, rolling, canary, blue_green };
[[nodiscard]] std::string_view to_string(strategy_type t) noexcept;

struct batch_size {
    unsigned value = 1;
    bool percent = false;  // value is a percentage of the hosts
    // Hosts per batch for `hosts` hosts: at least 1, at most hosts.
    [[nodiscard]] std::size_t for_hosts(std::size_t hosts) const noexcept;
};

struct strategy {
    strategy_type type = strategy_type::rolling;
    batch_size batch;
    unsigned max_fail_percentage = 0;  // failed hosts above this % roll back the whole fleet
    std::chrono::milliseconds canary_wait{0};  // canary: pause before its second health check
    blue_green_options blue_green;  // blue_green: slots and upstream (blue_green_config.hpp)
};

// A `templates:` entry: a local mustache template (src/template) rendered with
// each host's variables and written into every new release before the switch.
struct template_file {
    std::string src;   // local path, resolved against the deploy file's directory
    std::string dest;  // inside the release, e.g. config/app.env
    std::string mode = "0644";
    std::string text;  // the template, read and syntax-checked with the deploy file
};

struct deploy_config {
    std::string file;  // where it was read from, for messages
    std::string app;
    std::string root;      // absolute path on the hosts
    std::string artifact;  // local path, resolved against the deploy file's directory
    artifact_kind kind = artifact_kind::tar_gz;
    std::vector<std::string> shared;  // paths relative to a release
    unsigned keep_releases = 5;
    std::optional<std::string> unit;  // systemd unit restarted after the switch
    std::chrono::milliseconds unit_timeout{std::chrono::seconds(60)};  // until active
    deploy::hooks hooks;
    std::vector<health_check> health;
    deploy::strategy strategy;
    std::vector<template_file> templates;  // deploy_templates.hpp
};

// Parses a deploy file's text. `dir` is where relative artifact paths start;
// the artifact's kind comes from its name, or from the local file system
// (`probe_local`) for a directory.
[[nodiscard]] core::result<deploy_config> parse_deploy_config(std::string_view text,
                                                              const std::string& file,
                                                              const std::string& dir,
                                                              bool probe_local = true);
[[nodiscard]] core::result<deploy_config> load_deploy_config(const std::string& path);

// `root` for one host: `{{ NAME }}` is replaced by the host's inventory
// variable NAME (`inventory_hostname` is the host's name), so one deploy file
// can serve hosts whose root differs. A missing variable, or a result that is
// not an absolute directory, is an error naming the host and the variable.
[[nodiscard]] core::result<std::string> root_for_host(const deploy_config& c,
                                                      const std::string& host,
                                                      const nlohmann::json& vars);

// Splits hosts 0..n-1 into batches for the strategy: recreate one batch,
// rolling `batch` at a time, canary the first batch then all the rest.
[[nodiscard]] std::vector<std::vector<std::size_t>> plan_batches(const strategy& s,
                                                                 std::size_t hosts);

// True when `failed` of `total` hosts is more than the allowed percentage.
[[nodiscard]] bool exceeds_max_fail(unsigned max_fail_percentage, std::size_t failed,
                                    std::size_t total) noexcept;

}  // namespace tunnel::deploy
