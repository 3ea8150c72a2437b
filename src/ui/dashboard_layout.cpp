#include "ui/dashboard_layout.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace tunnel::ui {

namespace {

constexpr const char* key_help =
    "j/k or arrows: select  s: switch transport  r: restart  l: log  q: quit";

// A row being filled left to right, never past its width.
class line {
  public:
    explicit line(std::size_t width) : width_(width) {}

    // `text` in a column of `column` cells (0: its own width), then a space
    // unless it is the last column.
    line& add(std::string_view text, style look = style::normal, std::size_t column = 0,
              bool right = false) {
        if (used_ >= width_) return *this;
        const auto room = width_ - used_;
        std::string cell;
        if (column == 0) {
            cell = fit(text, room);
        } else {
            const auto w = std::min(column, room);
            if (right && columns(text) < w)
                cell = std::string(w - columns(text), ' ') + std::string(text);
            else
                cell = fit(text, w, true);
        }
        used_ += columns(cell);
        row_.push_back({std::move(cell), look});
        return *this;
    }
    line& gap(std::size_t n = 1) { return add(std::string(n, ' ')); }
    // Right-aligns `text` in what is left of the row.
    line& right(std::string_view text, style look) {
        if (used_ >= width_) return *this;
        const auto room = width_ - used_;
        const auto t = fit(text, room);
        gap(room - columns(t));
        return add(t, look);
    }
    [[nodiscard]] std::size_t left() const { return width_ > used_ ? width_ - used_ : 0; }
    screen_row take() { return std::move(row_); }

  private:
    std::size_t width_;
    std::size_t used_ = 0;
    screen_row row_;
};

style state_style(std::string_view state) {
    if (state == "up") return style::good;
    if (state == "degraded" || state == "starting" || state == "connecting") return style::fair;
    if (state == "down") return style::poor;
    return style::dim;
}

style score_style(std::optional<int> score) {
    switch (classify_score(score)) {
        case score_class::good:
            return style::good;
        case score_class::fair:
            return style::fair;
        case score_class::poor:
            return style::poor;
        case score_class::none:
            break;
    }
    return style::dim;
}

struct widths {
    std::size_t name, transport, spark;
};

widths table_widths(std::size_t w) {
    const std::size_t extra = w > 80 ? w - 80 : 0;
    widths c{12 + std::min<std::size_t>(12, extra / 3), 14 + std::min<std::size_t>(6, extra / 4),
             0};
    // mark 2, name, state 9, transport, rtt 8, in 8, out 8, with a space after each.
    const std::size_t fixed = 2 + c.name + 1 + 9 + 1 + c.transport + 1 + 8 + 1 + 8 + 1 + 8 + 1;
    c.spark = w > fixed ? w - fixed : 0;
    return c;
}

screen_row title_row(const dashboard_model& model, const view_state& view, std::size_t w) {
    line l(w);
    l.add("tunnel ui", style::title).gap(2);
    const std::string right = view.connected
                                  ? fmt::format("connected, {} link{}", model.links().size(),
                                                model.links().size() == 1 ? "" : "s")
                                  : "manager gone: reconnecting";
    const auto right_w = columns(right) + 2;
    l.add(fit(view.socket, l.left() > right_w ? l.left() - right_w : 0), style::dim);
    l.right(right, view.connected ? style::good : style::error);
    return l.take();
}

screen_row footer_row(const view_state& view, std::size_t w) {
    line l(w);
    if (!view.status.empty())
        l.add(view.status, view.status_is_error ? style::error : style::title);
    else
        l.add(key_help, style::dim);
    return l.take();
}

screen_row link_header(const widths& c, std::size_t w) {
    line l(w);
    l.add("", style::header, 2)
        .add("LINK", style::header, c.name)
        .gap()
        .add("STATE", style::header, 9)
        .gap()
        .add("TRANSPORT", style::header, c.transport)
        .gap()
        .add("RTT", style::header, 8, true)
        .gap()
        .add("IN/s", style::header, 8, true)
        .gap()
        .add("OUT/s", style::header, 8, true)
        .gap()
        .add("RTT HISTORY", style::header, c.spark);
    return l.take();
}

screen_row link_line(const link_row& k, bool selected, const widths& c, const view_state& view,
                     std::size_t w) {
    line l(w);
    const auto* t = k.active_transport();
    const std::string transport = t ? fmt::format("{}#{}", t->name, t->index) : "-";
    l.add(selected ? "> " : "  ", selected ? style::selected : style::normal, 2)
        .add(k.name, selected ? style::selected : style::normal, c.name)
        .gap()
        .add(k.state, state_style(k.state), 9)
        .gap()
        .add(transport, style::normal, c.transport)
        .gap()
        .add(format_rtt(k.rtt_ms), style::normal, 8, true)
        .gap()
        .add(format_rate(k.rate_in), style::normal, 8, true)
        .gap()
        .add(format_rate(k.rate_out), style::normal, 8, true)
        .gap();
    if (t)
        l.add(sparkline(t->rtt_samples_ms, std::min<std::size_t>(c.spark, 60), view.unicode),
              style::good);
    return l.take();
}

screen_row detail_header(const link_row& k, std::size_t w) {
    line l(w);
    l.add("LINK " + k.name, style::title).gap(2);
    l.add(fmt::format("in {} out {}  switches {}  escalated {}  recovery {}",
                      format_rate(k.rate_in), format_rate(k.rate_out), k.switches, k.escalations,
                      k.recovery_step.empty() ? "-" : k.recovery_step),
          k.escalations ? style::fair : style::normal);
    if (!k.target.empty()) l.gap(2).add(k.target, style::dim);
    return l.take();
}

screen_row transport_header(std::size_t w) {
    line l(w);
    l.add("  ", style::header)
        .add("", style::header, 3)
        .add("TRANSPORT", style::header, 14)
        .gap()
        .add("TYPE", style::header, 12)
        .gap()
        .add("STATE", style::header, 11)
        .gap()
        .add("RTT", style::header, 7, true)
        .gap()
        .add("SCORE", style::header, 5, true)
        .gap(2)
        .add("PREDICTION / ERROR", style::header);
    return l.take();
}

screen_row transport_line(const transport_row& t, const view_state& view, std::size_t w) {
    line l(w);
    const std::string marks = std::string(t.active ? "*" : " ") + (t.preferred ? "P" : " ");
    const bool up = t.state == "up";
    std::string note = format_prediction(t.predicted, up, view.unicode);
    style note_style = t.predicted ? style::poor : style::dim;
    if (!up && !t.last_error.empty()) {
        note = t.last_error;
        note_style = style::poor;
    }
    l.add("  ")
        .add(marks, style::title, 3)
        .add(fmt::format("{}#{}", t.name, t.index), style::normal, 14)
        .gap()
        .add(t.type, style::normal, 12)
        .gap()
        .add(t.state, state_style(t.state), 11)
        .gap()
        .add(format_rtt(t.rtt_ms), style::normal, 7, true)
        .gap()
        .add(t.score ? std::to_string(*t.score) : "-", score_style(t.score), 5, true)
        .gap(2)
        .add(note, note_style);
    return l.take();
}

screen_row event_line(const event_row& e, bool with_link, std::size_t w) {
    line l(w);
    l.add(e.time_ms ? format_clock(e.time_ms) : "--:--:--", style::dim, 8).gap();
    if (with_link) l.add(e.link.empty() ? "-" : e.link, style::normal, 12).gap();
    const bool bad = e.type == "error" || e.type == "escalated" || e.type == "transport_down" ||
                     e.type == "connect_failed" || e.type == "forward_failed";
    l.add(e.text, bad ? style::poor : style::normal);
    return l.take();
}

screen_row text_row(std::string_view text, style look, std::size_t w) {
    line l(w);
    l.add(text, look);
    return l.take();
}

std::vector<screen_row> links_screen(const dashboard_model& model, const view_state& view,
                                     std::size_t w, std::size_t h) {
    std::vector<screen_row> out;
    const auto c = table_widths(w);
    out.push_back(title_row(model, view, w));
    out.push_back(link_header(c, w));
    const auto* sel = model.selected();
    const std::size_t nt = sel ? std::min<std::size_t>(sel->transports.size(), 8) : 0;
    const std::size_t detail = sel ? 3 + nt : 0;
    const std::size_t available = h - 3;  // title, header, footer
    const std::size_t events_min = 5;     // blank, header, 3 events
    const std::size_t link_room =
        available > detail + events_min ? available - detail - events_min : 1;
    const auto& links = model.links();
    const std::size_t shown = std::clamp<std::size_t>(links.size(), 1, link_room);
    if (links.empty()) {
        out.push_back(text_row(view.connected ? "  (no links)" : "  (no data)", style::dim, w));
    } else {
        const std::size_t s = model.selected_index().value_or(0);
        const std::size_t first = s >= shown ? s - shown + 1 : 0;
        for (std::size_t i = first; i < links.size() && i < first + shown; ++i)
            out.push_back(link_line(links[i], i == s, c, view, w));
    }
    if (sel) {
        out.push_back({});
        out.push_back(detail_header(*sel, w));
        out.push_back(transport_header(w));
        for (std::size_t i = 0; i < nt; ++i)
            out.push_back(transport_line(sel->transports[i], view, w));
    }
    out.push_back({});
    out.push_back(text_row("EVENTS", style::header, w));
    const std::size_t event_room = h - 1 > out.size() ? h - 1 - out.size() : 0;
    const auto& events = model.events();
    const std::size_t n = std::min(event_room, events.size());
    for (std::size_t i = events.size() - n; i < events.size(); ++i)
        out.push_back(event_line(events[i], true, w));
    return out;
}

std::vector<screen_row> log_screen(const dashboard_model& model, const view_state& view,
                                   std::size_t w, std::size_t h) {
    std::vector<screen_row> out;
    out.push_back(title_row(model, view, w));
    const auto* sel = model.selected();
    if (!sel) {
        out.push_back(text_row("LOG: no link selected (l or Esc: back)", style::header, w));
        return out;
    }
    out.push_back(
        text_row(fmt::format("LOG of {}: its recent events (l or Esc: back, q: quit)", sel->name),
                 style::header, w));
    const auto events = model.events_of(sel->name, h - 3);
    if (events.empty())
        out.push_back(text_row(fmt::format("  (no events of {} yet)", sel->name), style::dim, w));
    for (const auto& e : events) out.push_back(event_line(e, false, w));
    return out;
}

}  // namespace

std::vector<screen_row> layout(const dashboard_model& model, const view_state& view, int columns,
                               int rows) {
    std::vector<screen_row> out;
    if (columns <= 0 || rows <= 0) return out;
    const auto w = static_cast<std::size_t>(columns);
    const auto h = static_cast<std::size_t>(rows);
    if (columns < min_columns || rows < min_rows) {
        out.push_back(text_row(fmt::format("terminal too small ({}x{}): tunnel ui needs {}x{}",
                                           columns, rows, min_columns, min_rows),
                               style::error, w));
        if (h > 1) out.push_back(text_row("q: quit", style::dim, w));
        return out;
    }
    out = view.shown == view_state::mode::log ? log_screen(model, view, w, h)
                                              : links_screen(model, view, w, h);
    out.resize(h - 1);
    out.push_back(footer_row(view, w));
    return out;
}

std::string row_text(const screen_row& row) {
    std::string out;
    for (const auto& s : row) out += s.text;
    return out;
}

}  // namespace tunnel::ui
