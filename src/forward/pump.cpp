#include "forward/pump.hpp"

#include <spdlog/spdlog.h>

namespace tunnel::forward {

namespace {

// Counts one forwarded connection in its forward's stats.
class stats_observer : public ssh::pump_observer {
  public:
    explicit stats_observer(std::shared_ptr<forward_stats> stats) : stats_(std::move(stats)) {
        ++stats_->open_channels;
    }
    ~stats_observer() override { --stats_->open_channels; }
    void on_bytes_to_channel(std::size_t n) override { stats_->bytes_out += n; }
    void on_bytes_to_socket(std::size_t n) override { stats_->bytes_in += n; }
    void on_channel_error(std::string_view why) override {
        spdlog::debug("{}: {}", stats_->spec.text, why);
    }

  private:
    std::shared_ptr<forward_stats> stats_;
};

}  // namespace

void start_pump(ssh::channel channel, stream_socket socket, std::shared_ptr<forward_stats> stats,
                std::string to_channel_first, pump_limits limits) {
    ssh::start_channel_pump(std::move(channel), std::move(socket),
                            std::make_shared<stats_observer>(std::move(stats)),
                            std::move(to_channel_first), limits, "forward pump");
}

}  // namespace tunnel::forward
