// The `dedupe` filter with a full 1,000,000-key cache: events/s by share of duplicates, the cache alone,
// memory per key, and the cost of saving and loading the persisted cache.
//   build/bin/bench_dedupe --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Events carry UUID-like ids (36 characters) and a 600-byte KS entry payload. A timed batch of 512 is filled
// by writing the next ids into recycled events (as a source using Context::reusable_batch does), so each figure
// includes that copy; BM_FillBatchOnly measures it alone.

#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "dedupe_filter.h"
#include "hubflow/config.h"
#include "hubflow/testing/fake_context.h"
#include "hubflow/testing/node_config.h"
#include "seen_cache.h"

namespace {

using namespace hubflow;

constexpr std::size_t cache_keys = 1'000'000;
constexpr std::size_t batch_size = 512;
constexpr std::size_t id_length = 36;
constexpr std::size_t id_offset = 7;  // where the id's text starts in `entry`

const std::string entry =
    R"({"id":"5fb49f42-5eb1-4e32-b841-a7954d6be11e","event_category":"lock_opened","event_detail":null,)"
    R"("utc_date_time":"2026-08-19T12:50:38Z","local_date_time":"2026-08-19T14:50:38",)"
    R"("lock_id":"4d77312f-4a87-41db-a97b-f9d948dcc908","lock_mac_address":"0163813000002C",)"
    R"("lock_customer_reference":"Door 01","user_id":"c6f84b4f-34b8-4d5e-abae-43f359d12c1c",)"
    R"("user_first_name":"Ana","user_last_name":"Alves","user_image_url":null,"user_alias":"",)"
    R"("iq_id":"5dfdc54e-8335-11f0-a2ed-6045bd92d38f","iq_customer_reference":"IQ 01",)"
    R"("iq_mac_address":"3B.9E.05","iq_revision":"2.0","exit_requested":false,"access_by":"tag",)"
    R"("access_detail":"02309289"})";

std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// `count` distinct UUID-shaped ids, back to back in one buffer (no per-id allocation to measure around).
std::vector<char> make_ids(std::size_t count, std::uint64_t seed) {
    std::vector<char> ids(count * id_length);
    char text[40];
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint64_t a = splitmix64(seed), b = splitmix64(seed);
        std::snprintf(text, sizeof text, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                      static_cast<unsigned>(a >> 16) & 0xffff, static_cast<unsigned>(a) & 0xffff,
                      static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffull));
        std::memcpy(ids.data() + i * id_length, text, id_length);
    }
    return ids;
}

// A host stand-in that discards what is emitted and recycles batch storage as the runtime does.
class BenchContext : public testing::FakeContext {
public:
    BenchContext() : FakeContext("unique") {}
    void emit(EventBatch&& batch, std::string_view) override {
        emitted_events += batch.size();
        spare_ = std::move(batch);
    }
    void emit(SharedBatch batch, std::string_view) override { emitted_events += batch->size(); }
    EventBatch reusable_batch(std::size_t size) override {
        EventBatch b = std::move(spare_);
        b.resize(size);
        return b;
    }
    std::uint64_t emitted_events = 0;

private:
    EventBatch spare_;
};

// A stream in which `duplicate_percent` of the events repeat a key still in the cache and the rest are new
// (each new key evicts the least recently seen one once the cache is full).
class Stream {
public:
    explicit Stream(int duplicate_percent)
        : percent_(duplicate_percent),
          // All duplicates: cycle through exactly the cache's worth of keys, so every lookup hits and moves a key
          // from the tail of the recency list to its head. Mixed: a resident set small enough to stay cached.
          resident_(make_ids(duplicate_percent == 100 ? cache_keys : cache_keys / 4, 1)),
          fresh_(make_ids(duplicate_percent == 100 ? 1 : 4 * cache_keys, 2)),
          batch_(std::make_shared<EventBatch>(batch_size)) {
        for (auto& e : *batch_) {
            e.payload = entry;
            e.meta.kind = "entry";
            e.meta.site_id = "b1f7c2d4-0c61-4a55-9f0e-5a3d3c1e2f01";
            e.meta.id.assign(id_length, 'x');
        }
    }

    // The next batch, written into the same storage (its previous consumers have released it).
    const std::shared_ptr<EventBatch>& next() {
        for (auto& e : *batch_) {
            const char* id;
            if (static_cast<int>(sequence_++ % 100) < percent_) {
                id = resident_.data() + resident_at_ * id_length;
                resident_at_ = (resident_at_ + 1) % (resident_.size() / id_length);
            } else {
                id = fresh_.data() + fresh_at_ * id_length;
                fresh_at_ = (fresh_at_ + 1) % (fresh_.size() / id_length);
            }
            std::memcpy(e.meta.id.data(), id, id_length);
            std::memcpy(e.payload.data() + id_offset, id, id_length);
        }
        return batch_;
    }

private:
    int percent_;
    std::vector<char> resident_, fresh_;
    std::size_t resident_at_ = 0, fresh_at_ = 0;
    std::uint64_t sequence_ = 0;
    std::shared_ptr<EventBatch> batch_;
};

// range(0): percentage of duplicates; range(1): 0 = key from the metadata id, 1 = from the payload's id field.
void BM_DedupeFilter(benchmark::State& state) {
    const int percent = static_cast<int>(state.range(0));
    const bool from_payload = state.range(1) == 1;
    BenchContext context;
    Value config = testing::node_config(
        dedupe::DedupeFilter::describe(),
        std::string(R"({"cache_size": 1000000, "fields": [)") + (from_payload ? R"("payload.id")" : R"("id")") + "]}");
    dedupe::DedupeFilter filter;
    filter.configure(ConfigView(config), context);
    filter.start();
    Stream stream(percent);
    // Warm up until the cache is full and the stream is in its steady state.
    for (std::size_t n = 0; n < 2 * cache_keys; n += batch_size)
        filter.process(stream.next());
    if (context.metric_registry.gauges.at("cached_keys").value() != static_cast<std::int64_t>(cache_keys))
        state.SkipWithError("the cache is not full after the warm-up");
    const auto dropped_before = context.metric_registry.counters.at("duplicates_dropped").value();
    std::uint64_t events = 0;
    for (auto _ : state) {
        filter.process(stream.next());
        events += batch_size;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(events));
    state.counters["dropped_share"] =
        static_cast<double>(context.metric_registry.counters.at("duplicates_dropped").value() - dropped_before) /
        static_cast<double>(events);
}
BENCHMARK(BM_DedupeFilter)
    ->ArgNames({"dup_pct", "payload_key"})
    ->Args({0, 0})
    ->Args({50, 0})
    ->Args({100, 0})
    ->Args({50, 1})
    ->Unit(benchmark::kMicrosecond);

// The cost of producing the batches alone, included in every BM_DedupeFilter figure.
void BM_FillBatchOnly(benchmark::State& state) {
    Stream stream(50);
    for (auto _ : state)
        benchmark::DoNotOptimize(stream.next()->data());
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch_size));
}
BENCHMARK(BM_FillBatchOnly)->Unit(benchmark::kMicrosecond);

// The cache alone, on precomputed hashes: half hits on a resident set, half new keys that evict.
void BM_SeenCache(benchmark::State& state) {
    dedupe::SeenCache cache(cache_keys, {});
    std::uint64_t seed = 3, resident_seed = 4, resident_at = 0;
    std::vector<std::uint64_t> resident(cache_keys / 4);
    for (auto& k : resident)
        k = splitmix64(resident_seed);
    const std::chrono::system_clock::time_point now{};
    for (std::size_t i = 0; i < 2 * cache_keys; ++i)
        cache.seen(i % 2 ? resident[resident_at++ % resident.size()] : splitmix64(seed), now);
    std::uint64_t hits = 0, i = 0;
    for (auto _ : state)
        hits += cache.seen(i++ % 2 ? resident[resident_at++ % resident.size()] : splitmix64(seed), now);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
    state.counters["hit_share"] = static_cast<double>(hits) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_SeenCache);

std::size_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::size_t total = 0, resident = 0;
    statm >> total >> resident;
    return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// Memory of a full 1,000,000-key cache: the bytes its arrays hold, and the growth of the resident set of a
// child process that builds it (so that nothing else this benchmark allocates is counted).
void BM_MemoryPerKey(benchmark::State& state) {
    for (auto _ : state) {
        int pipe_fds[2];
        if (::pipe(pipe_fds) != 0) {
            state.SkipWithError("pipe");
            return;
        }
        const pid_t child = ::fork();
        if (child == 0) {
            // glibc keeps freed memory resident; hand it back on both sides of the measurement so that the
            // difference is the cache's own pages (the heap inherited from this process holds earlier buffers).
            ::malloc_trim(0);
            const std::size_t before = resident_bytes();
            dedupe::SeenCache cache(cache_keys, {});
            std::uint64_t seed = 5;
            const std::chrono::system_clock::time_point now{};
            for (std::size_t i = 0; i < cache_keys; ++i)
                cache.seen(splitmix64(seed), now);
            ::malloc_trim(0);
            const double figures[2] = {static_cast<double>(cache.memory_bytes()) / static_cast<double>(cache.size()),
                                       (static_cast<double>(resident_bytes()) - static_cast<double>(before)) /
                                           static_cast<double>(cache.size())};
            const ssize_t written = ::write(pipe_fds[1], figures, sizeof figures);
            ::_exit(written == sizeof figures ? 0 : 1);
        }
        ::close(pipe_fds[1]);
        double figures[2] = {0, 0};
        const ssize_t got = ::read(pipe_fds[0], figures, sizeof figures);
        ::close(pipe_fds[0]);
        int status = 0;
        ::waitpid(child, &status, 0);
        if (got != sizeof figures) state.SkipWithError("the measuring child failed");
        state.counters["exact_bytes_per_key"] = figures[0];
        state.counters["rss_bytes_per_key"] = figures[1];
    }
}
BENCHMARK(BM_MemoryPerKey)->Iterations(1)->Unit(benchmark::kMillisecond);

// Persistence of a full cache: one save (written, synced, renamed) and one load.
void BM_SaveAndLoad(benchmark::State& state) {
    const bool load = state.range(0) == 1;
    dedupe::SeenCache cache(cache_keys, {});
    std::uint64_t seed = 6;
    const std::chrono::system_clock::time_point now{};
    for (std::size_t i = 0; i < cache_keys; ++i)
        cache.seen(splitmix64(seed), now);
    const auto file =
        std::filesystem::temp_directory_path() / ("hubflow-dedupe-bench-" + std::to_string(::getpid()) + ".bin");
    cache.save(file, now);
    for (auto _ : state) {
        if (load) {
            dedupe::SeenCache loaded(cache_keys, {});
            loaded.load(file, now);
            benchmark::DoNotOptimize(loaded.size());
        } else {
            cache.save(file, now);
        }
    }
    std::filesystem::remove(file);
    state.counters["file_mb"] = static_cast<double>(16 + 16 * cache_keys + 8) / 1e6;
}
BENCHMARK(BM_SaveAndLoad)->ArgName("load")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
