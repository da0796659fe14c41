// The floor for generator -> file: make the same KS events with the generator's own factory and write them,
// one line each, to a file in batches of the same size, with no host in between (no Event objects, queues,
// threads or path templates). bench/cases/generator-file runs it side by side with `hubflow run`.
//
//   bench_bare_loop COUNT FILE [BATCH] [sync]
// With `sync`, every batch is fdatasync'ed after it is written: the floor for a durable append log at that
// commit size (bench/cases/disk-buffer).
// Prints one JSON object: events, wall_s, cpu_s.

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ks_event_factory.h"

namespace {

double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void write_all(int fd, const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            std::perror("write");
            std::exit(1);
        }
        done += static_cast<std::size_t>(n);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s COUNT FILE [BATCH] [sync]\n", argv[0]);
        return 64;
    }
    const long long count = std::atoll(argv[1]);
    const char* path = argv[2];
    const long long batch = argc > 3 ? std::atoll(argv[3]) : 512;
    const bool sync = argc > 4 && std::strcmp(argv[4], "sync") == 0;

    auto wall_start = std::chrono::steady_clock::now();
    double cpu_start = cpu_seconds();

    // The generator's defaults with a fixed seed: the same options `generator` gets in the benchmark pipeline.
    hubflow::generator::KsEventFactoryOptions options;
    options.seed = 7;
    hubflow::generator::KsEventFactory factory(options);

    int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        std::perror(path);
        return 1;
    }
    std::string buffer;
    buffer.reserve(static_cast<std::size_t>(batch) * (factory.max_payload_size() + 1));
    for (long long i = 0; i < count;) {
        buffer.clear();
        for (long long j = 0; j < batch && i < count; ++j, ++i) {
            factory.append_next(buffer);
            buffer += '\n';
        }
        write_all(fd, buffer);
        if (sync && ::fdatasync(fd) != 0) {
            std::perror("fdatasync");
            return 1;
        }
    }
    ::close(fd);

    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    std::printf("{\"events\":%lld,\"wall_s\":%.6f,\"cpu_s\":%.6f}\n", count, wall, cpu_seconds() - cpu_start);
    return 0;
}
