// Micro-benchmarks of the host's hot paths: the queue between nodes, JSON string escaping, field lookup.
//   build/bin/hubflow_micro_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <thread>

#include "hubflow/json.h"
#include "runtime/batch_queue.h"

namespace {

const std::string entry =
    R"({"id":"5fb49f42-5eb1-4e32-b841-a7954d6be11e","event_category":"lock_opened","event_detail":null,)"
    R"("utc_date_time":"2026-08-19T12:50:38Z","local_date_time":"2026-08-19T14:50:38",)"
    R"("lock_id":"4d77312f-4a87-41db-a97b-f9d948dcc908","lock_mac_address":"0163813000002C",)"
    R"("lock_customer_reference":"Door 01","user_id":"c6f84b4f-34b8-4d5e-abae-43f359d12c1c",)"
    R"("user_first_name":"Ana","user_last_name":"Alves","user_image_url":null,"user_alias":"",)"
    R"("iq_id":"5dfdc54e-8335-11f0-a2ed-6045bd92d38f","iq_customer_reference":"IQ 01",)"
    R"("iq_mac_address":"3B.9E.05","iq_revision":"2.0","exit_requested":false,"access_by":"tag",)"
    R"("access_detail":"02309289"})";

// Batches of `range(0)` events through one queue from a producer thread to this one.
void BM_BatchQueueHandoff(benchmark::State& state) {
    const auto batch_size = static_cast<std::size_t>(state.range(0));
    auto batch = std::make_shared<const hubflow::EventBatch>(batch_size);
    std::int64_t events = 0;
    for (auto _ : state) {
        hubflow::Counter dropped;
        hubflow::core::BatchQueue queue(8192, hubflow::core::WhenFull::block, dropped);
        queue.add_producer();
        constexpr int batches = 2000;
        std::thread producer([&] {
            for (int i = 0; i < batches; ++i)
                queue.push(batch);
            queue.producer_done();
        });
        hubflow::SharedBatch out;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (queue.pop(out, deadline) == hubflow::core::BatchQueue::Pop::batch)
            events += out->size();
        producer.join();
    }
    state.SetItemsProcessed(events);
}
BENCHMARK(BM_BatchQueueHandoff)->Arg(1)->Arg(64)->Arg(512)->UseRealTime();

void BM_AppendJsonString(benchmark::State& state) {
    std::string out;
    for (auto _ : state) {
        out.clear();
        hubflow::append_json_string(out, entry);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * entry.size()));
}
BENCHMARK(BM_AppendJsonString);

void BM_FieldPathPayload(benchmark::State& state) {
    hubflow::Event e;
    e.payload = entry;
    hubflow::FieldPath path("access_detail");  // the last field: the worst case for a scan
    std::string out;
    for (auto _ : state) {
        out.clear();
        benchmark::DoNotOptimize(path.append_to(e, out));
    }
}
BENCHMARK(BM_FieldPathPayload);

}  // namespace

BENCHMARK_MAIN();
