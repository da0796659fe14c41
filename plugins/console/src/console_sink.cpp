#include "console_sink.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

namespace hubflow::console {

namespace {

using namespace std::chrono_literals;

std::string per_second(std::uint64_t events, std::chrono::nanoseconds elapsed) {
    const double seconds = std::chrono::duration<double>(elapsed).count();
    if (seconds <= 0) return "0";
    return std::to_string(static_cast<std::uint64_t>(std::llround(static_cast<double>(events) / seconds)));
}

std::string number_text(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

}  // namespace

ConsoleSink::ConsoleSink() : ConsoleSink(stdout) {}

ConsoleSink::ConsoleSink(std::FILE* out) : out_(out) {}

ComponentDescription ConsoleSink::describe() {
    return {"console",
            ComponentKind::sink,
            "events or a running count to the terminal (stdout)",
            {{.name = "mode",
              .type = FieldType::string,
              .default_json = R"("events")",
              .doc = "events: each event's payload as one line; count: a line every interval_s and a total"},
             {.name = "interval_s",
              .type = FieldType::number,
              .default_json = "1",
              .doc = "seconds between count lines (mode count)"}}};
}

void ConsoleSink::configure(const ConfigView& config, Context& context) {
    context_ = &context;
    mode_ = config.one_of("mode", {"events", "count"}) == "events" ? Mode::events : Mode::count;
    const double interval = config.number("interval_s");
    if (!(interval >= 0.001 && interval <= 86400))
        throw config.error("interval_s", "must be between 0.001 and 86400 seconds, found " + number_text(interval));
    interval_ = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(interval));
}

void ConsoleSink::start() {
    started_ = last_report_ = context_->clock().monotonic();
    next_report_ = started_ + interval_;
    total_ = reported_total_ = 0;
}

void ConsoleSink::put(const std::string& text) {
    if (broken_) return;
    if (std::fwrite(text.data(), 1, text.size(), out_) == text.size() && std::fflush(out_) == 0) return;
    // A closed terminal or pipe does not heal: stop this node (its input is then counted as dropped) rather
    // than report the same error for every batch.
    broken_ = true;
    context_->fail(std::string("cannot write to the console: ") + std::strerror(errno));
}

void ConsoleSink::write(const EventBatch& batch) {
    total_ += batch.size();
    if (mode_ == Mode::count) return;
    buffer_.clear();
    for (const auto& event : batch) {
        const std::size_t begin = buffer_.size();
        buffer_ += event.payload;
        // One event, one line: a payload with line breaks (pretty-printed JSON) has them only as whitespace
        // between tokens, since JSON strings cannot hold raw control characters, so spaces do the same job.
        const std::string_view added(buffer_.data() + begin, event.payload.size());
        if (added.find_first_of("\r\n") != std::string_view::npos)
            std::replace_if(
                buffer_.begin() + static_cast<std::ptrdiff_t>(begin), buffer_.end(),
                [](char c) { return c == '\n' || c == '\r'; }, ' ');
        buffer_ += '\n';
    }
    put(buffer_);
}

void ConsoleSink::tick() {
    if (mode_ != Mode::count) return;
    const auto now = context_->clock().monotonic();
    if (now < next_report_) return;
    put(context_->node_name() + ": " + std::to_string(total_) + " events (" +
        per_second(total_ - reported_total_, now - last_report_) + "/s)\n");
    reported_total_ = total_;
    last_report_ = now;
    // Keep to the interval's grid; after a long stall, start a new grid rather than print a burst of lines.
    next_report_ += interval_;
    if (next_report_ <= now) next_report_ = now + interval_;
}

std::chrono::milliseconds ConsoleSink::tick_interval() const {
    if (mode_ != Mode::count) return 1s;
    // A count line is at most a tenth of the interval (and never more than 100 ms) late.
    return std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(interval_ / 10), 1ms, 100ms);
}

void ConsoleSink::flush() {
    if (mode_ != Mode::count) {
        if (!broken_) std::fflush(out_);
        return;
    }
    const auto now = context_->clock().monotonic();
    put(context_->node_name() + ": " + std::to_string(total_) + " events in total (" +
        per_second(total_, now - started_) + "/s average)\n");
}

}  // namespace hubflow::console
