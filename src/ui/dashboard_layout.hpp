// The screen of `tunnel ui` as rows of styled text (pure, unit-tested; the
// ncurses side only copies it to the terminal). Every row fits the width it
// is laid out for. At 80x24 and larger:
//
//   tunnel ui  /run/user/1000/tunnel/control.sock            connected, 2 links
//     LINK         STATE     TRANSPORT         RTT     IN/s    OUT/s  RTT HISTORY
//   > db           up        socat#0         1.2ms   1.5K/s   300B/s  ▁▂▁▃▂▅▇
//
//   LINK db  in 1.5K/s out 300B/s  switches 1  escalated 0  recovery none  root@127.0.0.1
//     *P TRANSPORT       TYPE         STATE         RTT SCORE  PREDICTION / ERROR
//     *P socat#0         command      up          1.2ms    97  stable
//
//   EVENTS
//   12:00:01 db           switch to socat#0: transport socat#0 is up
//   j/k or arrows: select  s: switch transport  r: restart  l: log  q: quit
//
// `l` replaces the tables with the selected link's events. Below 80x24 the
// screen says that the terminal is too small.
#pragma once

#include <string>
#include <vector>

#include "ui/dashboard_model.hpp"

namespace tunnel::ui {

enum class style { normal, title, header, selected, good, fair, poor, dim, error };

struct span {
    std::string text;
    style look = style::normal;
};
using screen_row = std::vector<span>;

inline constexpr int min_columns = 80;
inline constexpr int min_rows = 24;

struct view_state {
    enum class mode { links, log };
    mode shown = mode::links;
    std::string socket;  // shown in the title
    bool connected = true;
    std::string status;  // the footer's message; the key help when empty
    bool status_is_error = false;
    bool unicode = true;  // sparkline bars and "±"
};

[[nodiscard]] std::vector<screen_row> layout(const dashboard_model& model, const view_state& view,
                                             int columns, int rows);

// The text of a row (for tests and plain output).
[[nodiscard]] std::string row_text(const screen_row& row);

}  // namespace tunnel::ui
