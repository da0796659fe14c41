// The disk buffer's log (core/src/buffer) on the real disk: append+sync against a bare write+fdatasync loop
// writing the same bytes in the same commits, recovery of a 1 GiB log (warm, and cold after dropping the page
// cache where allowed), and RSS while draining it. Results: bench/results/disk-buffer.md.
//
//   HUBFLOW_BENCH_DIR=/var/tmp build/bin/bench_disk_buffer --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true   (one command line)
// The directory must be on a real disk (not tmpfs): fdatasync is what is measured.

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "buffer/segment_log.h"

namespace {

namespace fs = std::filesystem;
using hubflow::core::buffer::Record;
using hubflow::core::buffer::SegmentLog;
using hubflow::core::buffer::SegmentLogOptions;

constexpr std::size_t payload_size = 300;
constexpr int per_commit = 1000;

fs::path bench_dir() {
    const char* env = std::getenv("HUBFLOW_BENCH_DIR");
    return fs::path(env != nullptr ? env : "/var/tmp") / "hubflow-disk-buffer-bench";
}

// 300-byte KS-like entries, each a little different (ids and times change).
std::vector<std::string> make_payloads() {
    std::vector<std::string> payloads;
    std::mt19937_64 rng(7);
    for (int i = 0; i < per_commit; ++i) {
        std::string p = R"({"id":")" + std::to_string(rng()) + R"(","event_category":"lock_opened",)" +
                        R"("utc_date_time":"2026-08-19T12:50:38Z","lock_id":")" + std::to_string(rng()) +
                        R"(","user_first_name":"Ana","user_last_name":"Alves","access_by":"tag"})";
        p.resize(payload_size, ' ');
        payloads.push_back(std::move(p));
    }
    return payloads;
}

// VmRSS (now) or VmHWM (the peak since the last reset_peak_rss()) from /proc/self/status, in KiB.
long status_kib(const char* field) {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::strlen(field));
    return 0;
}
void reset_peak_rss() {
    std::ofstream("/proc/self/clear_refs") << "5\n";
}

bool drop_caches() {
    ::sync();
    std::ofstream drop("/proc/sys/vm/drop_caches");
    drop << "3\n";
    drop.flush();
    return static_cast<bool>(drop);
}

// The floor: one write(2) of a commit's bytes and one fdatasync, the same bytes as the log writes (each record
// with its 32-byte header), into one file that starts over every 256 MiB like the log's segments come and go.
void BM_BareWriteFdatasync(benchmark::State& state) {
    const fs::path dir = bench_dir() / "bare";
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto payloads = make_payloads();
    std::string commit;
    for (const auto& p : payloads)
        commit += std::string(32, 'h') + p;
    const fs::path path = dir / "bare.log";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    std::uint64_t written = 0;
    for (auto _ : state) {
        if (::write(fd, commit.data(), commit.size()) != static_cast<ssize_t>(commit.size()) || ::fdatasync(fd) != 0)
            state.SkipWithError("write or fdatasync failed");
        written += commit.size();
        if (written > (256U << 20)) {
            state.PauseTiming();
            ::close(fd);
            fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
            written = 0;
            state.ResumeTiming();
        }
    }
    ::close(fd);
    fs::remove_all(dir);
    state.SetItemsProcessed(state.iterations() * per_commit);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * commit.size()));
}
BENCHMARK(BM_BareWriteFdatasync)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

// SegmentLog: 1,000 appends and one sync() per iteration. When the log is full (256 MiB), the timer stops and
// everything is handed out and released, as a sink would have done meanwhile.
void BM_SegmentLogAppendSync(benchmark::State& state) {
    const fs::path dir = bench_dir() / "log";
    fs::remove_all(dir);
    auto files = hubflow::core::buffer::make_posix_file_layer();
    auto payloads = make_payloads();
    {
        SegmentLogOptions options;
        options.dir = dir;
        SegmentLog log(*files, options);
        log.open();
        std::vector<Record> out;
        for (auto _ : state) {
            std::uint64_t seq = 0;
            for (const auto& p : payloads) {
                if (log.append(p, seq) == SegmentLog::Append::full) {
                    state.PauseTiming();
                    log.sync();
                    while (true) {
                        out.clear();
                        if (log.next(out, 4096) == 0) break;
                        log.release(out.front().seq, out.size());
                    }
                    state.ResumeTiming();
                    log.append(p, seq);
                }
            }
            log.sync();
        }
    }
    fs::remove_all(dir);
    state.SetItemsProcessed(state.iterations() * per_commit);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * per_commit * (payload_size + 32)));
}
BENCHMARK(BM_SegmentLogAppendSync)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

// A 1 GiB log (3.2 M records of 300 bytes), written once for the recovery cases and kept: a later process
// reuses it (so `--benchmark_filter=Drain` alone measures RSS in a process that did nothing else).
const fs::path& gib_log() {
    static const fs::path dir = [] {
        fs::path d = bench_dir() / "gib";
        if (fs::exists(d / "complete")) return d;
        fs::remove_all(d);
        auto files = hubflow::core::buffer::make_posix_file_layer();
        SegmentLogOptions options;
        options.dir = d;
        options.max_bytes = 2ULL << 30;
        SegmentLog log(*files, options);
        log.open();
        auto payloads = make_payloads();
        std::uint64_t seq = 0;
        while (log.stats().bytes < (1ULL << 30)) {
            for (const auto& p : payloads)
                log.append(p, seq);
            log.sync();
        }
        std::ofstream(d / "complete") << "1\n";
        return d;
    }();
    return dir;
}

void recover(benchmark::State& state, bool cold) {
    const fs::path& dir = gib_log();
    auto files = hubflow::core::buffer::make_posix_file_layer();
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;
    for (auto _ : state) {
        if (cold) {
            state.PauseTiming();
            bool dropped = drop_caches();
            state.ResumeTiming();
            if (!dropped) {
                state.SkipWithError("cannot write /proc/sys/vm/drop_caches (needs root)");
                break;
            }
        }
        SegmentLogOptions options;
        options.dir = dir;
        options.max_bytes = 2ULL << 30;
        SegmentLog log(*files, options);
        auto report = log.open();
        records = report.records;
        bytes = report.bytes;
        benchmark::DoNotOptimize(report);
    }
    state.counters["records"] = static_cast<double>(records);
    state.counters["GiB"] = static_cast<double>(bytes) / (1ULL << 30);
}
void BM_RecoverOneGiBWarm(benchmark::State& state) {
    recover(state, false);
}
void BM_RecoverOneGiBCold(benchmark::State& state) {
    recover(state, true);
}
BENCHMARK(BM_RecoverOneGiBWarm)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_RecoverOneGiBCold)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

// open() and next() through the whole 1 GiB backlog (nothing released, so the log is unchanged): RSS before,
// and the peak RSS during open() and the drain (VmHWM, reset before open()).
void BM_DrainOneGiB(benchmark::State& state) {
    const fs::path& dir = gib_log();
    auto files = hubflow::core::buffer::make_posix_file_layer();
    long before = 0;
    long peak = 0;
    std::uint64_t drained = 0;
    for (auto _ : state) {
        before = status_kib("VmRSS:");
        reset_peak_rss();
        SegmentLogOptions options;
        options.dir = dir;
        options.max_bytes = 2ULL << 30;
        SegmentLog log(*files, options);
        log.open();
        std::vector<Record> out;
        drained = 0;
        while (true) {
            out.clear();
            std::size_t n = log.next(out, 1000);
            if (n == 0) break;
            drained += n;
        }
        peak = status_kib("VmHWM:");
    }
    state.counters["records"] = static_cast<double>(drained);
    state.counters["rss_before_MiB"] = static_cast<double>(before) / 1024;
    state.counters["rss_peak_MiB"] = static_cast<double>(peak) / 1024;
    state.SetItemsProcessed(static_cast<std::int64_t>(drained));
}
BENCHMARK(BM_DrainOneGiB)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
