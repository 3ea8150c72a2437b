#include "observe/log.hpp"

#include <unistd.h>

#include <atomic>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace tunnel::observe {

namespace {

std::atomic<log_format> current_format{log_format::text};

// A JSON field for the line being formatted on this thread (log_info_json):
// spdlog formats in the logging thread, so the formatter finds it here.
struct json_field {
    std::string_view key;
    std::string_view value;
};
thread_local const json_field* pending_field = nullptr;

// {"ts":"…","level":"warn","msg":"…"}: the message is escaped by a real JSON encoder.
class json_formatter final : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        nlohmann::json j;
        j["ts"] = fmt::format("{:%Y-%m-%dT%H:%M:%S}",
                              fmt::gmtime(std::chrono::system_clock::to_time_t(msg.time)));
        j["level"] = std::string(spdlog::level::to_string_view(msg.level).data(),
                                 spdlog::level::to_string_view(msg.level).size());
        j["msg"] = std::string(msg.payload.data(), msg.payload.size());
        auto text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        if (pending_field) {
            // The key is the caller's constant; the value is serialised JSON.
            text.pop_back();
            text += ",\"";
            text += pending_field->key;
            text += "\":";
            text += pending_field->value;
            text += '}';
        }
        dest.append(text.data(), text.data() + text.size());
        dest.push_back('\n');
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<json_formatter>();
    }
};

}  // namespace

core::result<log_format> parse_log_format(std::string_view text) {
    if (text == "text") return log_format::text;
    if (text == "json") return log_format::json;
    return core::fail(core::errc::invalid_argument,
                      fmt::format("--log-format: unknown format \"{}\": use text or json", text));
}

void setup_logging(log_format format, int verbosity) {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(
        ::isatty(2) ? spdlog::color_mode::automatic : spdlog::color_mode::never);
    auto logger = std::make_shared<spdlog::logger>("tunnel", sink);
    if (format == log_format::json)
        logger->set_formatter(std::make_unique<json_formatter>());
    else
        logger->set_pattern("tunnel: %^%l%$: %v");
    spdlog::level::level_enum level = spdlog::level::warn;
    if (verbosity == 1) level = spdlog::level::info;
    if (verbosity == 2) level = spdlog::level::debug;
    if (verbosity >= 3) level = spdlog::level::trace;
    logger->set_level(level);
    spdlog::set_default_logger(logger);
    current_format = format;
}

void log_info_json(std::string_view msg, std::string_view key, std::string_view json_value) {
    if (!spdlog::should_log(spdlog::level::info)) return;
    if (current_format == log_format::json) {
        const json_field field{key, json_value};
        pending_field = &field;
        spdlog::info("{}", msg);
        pending_field = nullptr;
    } else {
        spdlog::info("{} {}", msg, json_value);
    }
}

}  // namespace tunnel::observe
