#include "core/spawn.hpp"

#include <spdlog/spdlog.h>

namespace tunnel::core {

void report_spawn_failure(std::string_view what, std::exception_ptr error) noexcept {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        spdlog::error("{}: stopped by an unexpected exception: {}", what, e.what());
    } catch (...) {
        spdlog::error("{}: stopped by an unexpected non-standard exception", what);
    }
}

}  // namespace tunnel::core
