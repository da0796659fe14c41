#pragma once
// The host process's own figures for /metrics, read from /proc/self.

#include <chrono>
#include <cstdint>

namespace hubflow::core {

struct ProcessStats {
    std::uint64_t resident_bytes = 0;
    double cpu_seconds = 0;
    std::uint64_t open_fds = 0;
    std::uint64_t max_fds = 0;
    double start_time_seconds = 0;  // since the epoch
};

// `started` is when the host started, taken once by the caller.
ProcessStats read_process_stats(std::chrono::system_clock::time_point started);

}  // namespace hubflow::core
