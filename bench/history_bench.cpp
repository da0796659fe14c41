// The signalr_hub history's own costs, without sockets: what write() adds per event before the broadcast (the
// event time read from the payload, the record, one write(2) per batch, the index; retention at 100,000 events
// once the store is full), and serving a page of 1,000.
//   build/bin/bench_history --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Files go to $TMPDIR (or /tmp): say which file system when quoting the figures.

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "history/file_history_store.h"
#include "history/history_query.h"

namespace {

using namespace hubflow::signalr;
namespace fs = std::filesystem;

// A KS entry of the generator's shape and size (about 600 bytes), its time advancing one second per 100.
std::vector<std::string> entries(int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) {
        int s = i / 100;
        char time[32];
        std::snprintf(time, sizeof time, "2026-12-07T%02d:%02d:%02dZ", (s / 3600) % 24, (s / 60) % 60, s % 60);
        out.push_back(
            "{\"id\":\"" + std::to_string(1'000'000 + i) +
            "-a7b4-4263-87fe-1df22346c51e\",\"event_category\":\"lock_opened\",\"event_detail\":null,"
            "\"utc_date_time\":\"" +
            time +
            "\",\"local_date_time\":\"2026-08-19T14:50:38\",\"lock_id\":\"2ddfd8c3-95c6-4145-92d8-88723491bdb5\","
            "\"lock_mac_address\":\"7CF6249EE8CC98\",\"lock_customer_reference\":\"Door 11\",\"user_id\":\"5c9d7b97-"
            "cf84-40f6-aaab-9f4586b856" +
            std::to_string(10 + i % 50) +
            "\",\"user_first_name\":\"Carla\",\"user_last_name\":\"Jansen\",\"user_image_url\":null,\"user_alias\":"
            "\"\",\"iq_id\":\"744260f8-f3d4-4181-a91c-35f79ec7942e\",\"iq_customer_reference\":\"IQ 01\","
            "\"iq_mac_address\":\"92.03.1C\",\"iq_revision\":\"2.0\",\"exit_requested\":false,\"access_by\":\"tag\","
            "\"access_detail\":\"03699301\"}");
    }
    return out;
}

fs::path scratch() {
    const char* tmp = std::getenv("TMPDIR");
    fs::path dir = fs::path(tmp ? tmp : "/tmp") / ("hubflow-bench-history-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    return dir;
}

// As HubSink::record does per batch: the event time from each payload, then one append.
void BM_Append(benchmark::State& state) {
    const auto batch = static_cast<int>(state.range(0));
    const auto payloads = entries(20'000);
    fs::path dir = scratch();
    {
        FileHistorySettings settings;
        settings.dir = dir;
        FileHistoryStore store(settings);
        std::vector<HistoryRecord> records;
        std::size_t next = 0;
        for (auto _ : state) {
            records.clear();
            for (int i = 0; i < batch; ++i, next = (next + 1) % payloads.size()) {
                const std::string& p = payloads[next];
                records.push_back({Hub::entries, event_time_ms(p).value_or(0), "id", "user", p});
            }
            store.append("site", records);
        }
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * batch);
    }
    fs::remove_all(dir);
}
BENCHMARK(BM_Append)->Arg(20)->Arg(512)->UseRealTime();

// A page of 1,000 from a store holding 100,000 events, at a position half way (a token's resumption).
void BM_Page(benchmark::State& state) {
    const auto payloads = entries(100'000);
    fs::path dir = scratch();
    {
        FileHistorySettings settings;
        settings.dir = dir;
        FileHistoryStore store(settings);
        std::vector<HistoryRecord> records;
        for (std::size_t i = 0; i < payloads.size(); ++i) {
            records.push_back({Hub::entries, event_time_ms(payloads[i]).value_or(0), "id", "u", payloads[i]});
            if (records.size() == 500) {
                store.append("site", records);
                records.clear();
            }
        }
        HistoryRequest r;
        r.site = "site";
        r.limit = 50'000;
        HistoryPage half = store.query(r);
        r.limit = 1000;
        r.after = half.next;
        r.snapshot = half.snapshot;
        std::size_t bytes = 0;
        for (auto _ : state) {
            HistoryPage p = store.query(r);
            std::string body = history_body(p.items, "");
            bytes += body.size();
            benchmark::DoNotOptimize(body);
        }
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 1000);
        state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    }
    fs::remove_all(dir);
}
BENCHMARK(BM_Page)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
