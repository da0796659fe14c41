#pragma once
// The `console` sink: events or a running count on the terminal.
//   mode "events": each event's payload as one line; one write per batch, so the lines of two console nodes
//                  never interleave mid-line (stdio locks the stream for each call)
//   mode "count":  "<node>: 123456 events (2001/s)" every interval_s, and a total when input ends

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "hubflow/component.h"

namespace hubflow::console {

class ConsoleSink final : public Sink {
public:
    ConsoleSink();  // writes to stdout
    // Writes to `out` instead (tests); the sink never closes it.
    explicit ConsoleSink(std::FILE* out);

    static ComponentDescription describe();
    void configure(const ConfigView& config, Context& context) override;
    void start() override;
    void write(const EventBatch& batch) override;
    void tick() override;
    std::chrono::milliseconds tick_interval() const override;
    void flush() override;

private:
    enum class Mode { events, count };
    using steady = std::chrono::steady_clock;

    void put(const std::string& text);  // writes and flushes; reports a broken stream once

    std::FILE* out_;
    Context* context_ = nullptr;
    Mode mode_ = Mode::events;
    std::chrono::nanoseconds interval_{std::chrono::seconds(1)};
    std::string buffer_;
    bool broken_ = false;
    std::uint64_t total_ = 0;
    std::uint64_t reported_total_ = 0;
    steady::time_point started_{};
    steady::time_point last_report_{};
    steady::time_point next_report_{};
};

}  // namespace hubflow::console
