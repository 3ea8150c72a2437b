// tunnel audit verify FILE... [--hmac-key-file F] [--expect-head HASH]:
// checks the hash chain of a relay audit log (a rotated set, in order).
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/secret_file.hpp"
#include "observe/audit_log.hpp"

namespace tunnel::cli {

namespace {

struct audit_verify_flags {
    std::vector<std::string> files;
    std::string hmac_key_file;
    std::string expect_head;
    bool json = false;
};

int run_audit_verify(const audit_verify_flags& f) {
    observe::audit_verify_options o;
    if (!f.hmac_key_file.empty()) {
        auto key = core::read_secret_file(f.hmac_key_file, "--hmac-key-file", 32);
        if (!key) return report(key.error());
        o.hmac_key = std::move(*key);
    }
    if (!f.expect_head.empty()) {
        if (f.expect_head.size() != 64 ||
            f.expect_head.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
            return report({core::errc::invalid_argument,
                           fmt::format("--expect-head {:?}: a head is 64 hex digits, as GET "
                                       "/api/v1/audit/head on the relay's admin listener prints it",
                                       f.expect_head.substr(0, 80))});
        o.expect_head = f.expect_head;
    }
    // One file: it and its rotated predecessors (FILE.N .. FILE.1), oldest first.
    const auto files = f.files.size() == 1 ? observe::audit_rotated_set(f.files[0]) : f.files;
    auto v = observe::verify_audit_log(files, o);
    if (!v) return report(v.error());
    const std::string names = fmt::format("{}", fmt::join(files, ", "));
    if (f.json) {
        nlohmann::json out{{"files", files},
                           {"ok", v->ok},
                           {"records", v->records},
                           {"keyed", v->keyed},
                           {"continues", v->continues}};
        if (v->ok) out["head"] = v->head;
        if (v->ok && o.expect_head) out["expect_head_record"] = v->expect_head_record;
        if (!v->ok) {
            out["file"] = v->file;
            out["line"] = v->broken_line;
            out["error"] = v->why;
        }
        std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else if (v->ok) {
        fmt::print("{}: ok, {} record{}, chain intact ({}{}), head {}\n", names, v->records,
                   v->records == 1 ? "" : "s", v->keyed ? "HMAC-SHA256" : "SHA-256",
                   v->continues ? "; starts after older files were rotated away" : "", v->head);
        if (o.expect_head)
            fmt::print(
                "expected head found at record {}: nothing up to it was cut off or "
                "rewritten\n",
                v->expect_head_record);
    } else if (v->broken_line > 0) {
        fmt::print(stderr, "{}: line {}: {}\n", v->file, v->broken_line, v->why);
    } else {
        fmt::print(stderr, "{}: {}\n", names, v->why);
    }
    return v->ok ? 0 : 1;
}

}  // namespace

void add_audit_command(CLI::App& app, command_runner& run) {
    auto* audit = app.add_subcommand("audit", "Relay audit log tools");
    audit->require_subcommand(1);
    auto* verify = audit->add_subcommand(
        "verify", "Check the hash chain of a relay audit log (exit 1 if broken)");
    verify->footer(
        "Each record links to the line before it: \"prev\" is its SHA-256, or \"prev_hmac\" its\n"
        "HMAC-SHA256 under the relay's audit.hmac_key_file (the first record: 64 zeros).\n"
        "One FILE is checked together with its rotated predecessors FILE.N .. FILE.1, oldest\n"
        "first; several FILEs are checked in the order given. With --expect-head (the head the\n"
        "relay published on GET /api/v1/audit/head) the chain must pass through that record:\n"
        "cutting records off the end, or rewriting the log, is then detected.\n"
        "Prints the first broken link as 'FILE: line N: why' and exits 1.\n"
        "Examples:\n"
        "  tunnel audit verify /var/log/tunnel/audit.jsonl\n"
        "  tunnel audit verify --hmac-key-file /etc/tunnel/audit.key --expect-head 3f1c... "
        "/var/log/tunnel/audit.jsonl");
    auto flags = std::make_shared<audit_verify_flags>();
    verify
        ->add_option("FILE", flags->files, "The audit log (JSON lines), or its files oldest first")
        ->required();
    verify->add_option("--hmac-key-file", flags->hmac_key_file,
                       "The relay's audit.hmac_key_file: needed for keyed logs (prev_hmac)");
    verify->add_option("--expect-head", flags->expect_head,
                       "A head published by the relay (64 hex digits): fail unless the chain "
                       "passes through it");
    verify->add_flag("--json", flags->json,
                     "Print one JSON object: {files, ok, records, keyed, head, file, line, error}");
    verify->callback([flags, &run] { run = [flags] { return run_audit_verify(*flags); }; });
}

}  // namespace tunnel::cli
