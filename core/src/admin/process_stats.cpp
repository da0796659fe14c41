#include "admin/process_stats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace hubflow::core {

ProcessStats read_process_stats(std::chrono::system_clock::time_point started) {
    ProcessStats s;
    std::ifstream statm("/proc/self/statm");
    std::uint64_t size = 0, resident = 0;
    if (statm >> size >> resident) s.resident_bytes = resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    rusage u{};
    if (::getrusage(RUSAGE_SELF, &u) == 0)
        s.cpu_seconds = static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                        static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++s.open_fds;
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) s.max_fds = limit.rlim_cur;
    s.start_time_seconds = std::chrono::duration<double>(started.time_since_epoch()).count();
    return s;
}

}  // namespace hubflow::core
