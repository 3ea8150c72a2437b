#include "support/tmux_pane.hpp"

#include <unistd.h>

#include <thread>

namespace tunnel::test {

std::optional<std::string> wait_for_file(const std::string& path,
                                         std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (::access(path.c_str(), F_OK) == 0) {
            auto text = read_text_file(path);
            if (text) return *text;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return std::nullopt;
}

}  // namespace tunnel::test
