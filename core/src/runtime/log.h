#pragma once
// Where the host's log lines go: one line each, "time level [node] message", to stderr by default.

#include <chrono>
#include <iosfwd>
#include <mutex>
#include <string>
#include <string_view>

#include "hubflow/context.h"

namespace hubflow::core {

class LogSink {
public:
    explicit LogSink(std::ostream& out, LogLevel threshold = LogLevel::info);
    void write(LogLevel level, std::string_view node, std::string_view message);
    bool enabled(LogLevel level) const { return level >= threshold_; }
    void set_threshold(LogLevel level) { threshold_ = level; }

private:
    std::ostream& out_;
    LogLevel threshold_;
    std::mutex mutex_;
};

// The Logger a component sees: every line prefixed with its node's name.
class NodeLogger final : public Logger {
public:
    NodeLogger(LogSink& sink, std::string node) : sink_(sink), node_(std::move(node)) {}
    void write(LogLevel level, std::string_view message) override { sink_.write(level, node_, message); }
    bool enabled(LogLevel level) const override { return sink_.enabled(level); }

private:
    LogSink& sink_;
    std::string node_;
};

const char* level_name(LogLevel level);
bool parse_level(std::string_view text, LogLevel& out);

}  // namespace hubflow::core
