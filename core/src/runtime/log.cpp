#include "runtime/log.h"

#include <ctime>
#include <ostream>

namespace hubflow::core {

LogSink::LogSink(std::ostream& out, LogLevel threshold) : out_(out), threshold_(threshold) {}

const char* level_name(LogLevel level) {
    switch (level) {
        case LogLevel::debug:
            return "debug";
        case LogLevel::info:
            return "info";
        case LogLevel::warn:
            return "warn";
        case LogLevel::error:
            return "error";
    }
    return "?";
}

bool parse_level(std::string_view text, LogLevel& out) {
    for (LogLevel l : {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error})
        if (text == level_name(l)) {
            out = l;
            return true;
        }
    return false;
}

void LogSink::write(LogLevel level, std::string_view node, std::string_view message) {
    if (!enabled(level)) return;
    auto now = std::chrono::system_clock::now();
    std::time_t secs = std::chrono::system_clock::to_time_t(now);
    auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char stamp[40];
    std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(stamp + n, sizeof stamp - n, ".%03dZ", static_cast<int>(millis));
    std::string line;
    line.reserve(message.size() + node.size() + 48);
    line += stamp;
    line += ' ';
    line += level_name(level);
    line += node.empty() ? " " : " [";
    line += node;
    line += node.empty() ? "" : "] ";
    line += message;
    line += '\n';
    std::lock_guard lock(mutex_);
    out_ << line << std::flush;
}

}  // namespace hubflow::core
