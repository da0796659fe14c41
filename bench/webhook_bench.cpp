// The `webhook` sink posting into a local receiver: a Poco HTTPServer in this process that reads every body
// and answers 200 (the receiver of the webhook tests, counting only). bench/cases/webhook runs it.
//
//   bench_webhook BATCH COUNT [MAX_IN_FLIGHT]
//     BATCH  events per request (batch.max_events); 1 = one JSON object per request, else a JSON array
// Prints one JSON object: batch, events, delivered, requests, wall_s, cpu_s. The events (KsEventFactory, seed 7,
// with the metadata a generator node stamps) are made before the clock starts, and handed to write() in
// batches of 512 as the host would. The clock stops when flush() returns, i.e. at the last 2xx answer; cpu_s
// covers the whole process, receiver threads included.

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "hubflow/config.h"
#include "hubflow/testing/fake_context.h"
#include "hubflow/testing/node_config.h"
#include "ks_event_factory.h"
#include "receiver.h"
#include "webhook_sink.h"

namespace {

using hubflow::Event;
using hubflow::EventBatch;

double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::vector<EventBatch> make_events(long long count) {
    hubflow::generator::KsEventFactoryOptions options;
    options.seed = 7;
    hubflow::generator::KsEventFactory factory(options);
    std::vector<EventBatch> out;
    auto now = std::chrono::system_clock::now();
    for (long long i = 0; i < count; ++i) {
        if (i % 512 == 0) out.emplace_back();
        Event& e = out.back().emplace_back();
        factory.next(e);
        e.meta.source = "gen";
        e.meta.received_at = now + std::chrono::microseconds(i);
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s BATCH COUNT [MAX_IN_FLIGHT]\n", argv[0]);
        return 64;
    }
    const long long batch = std::atoll(argv[1]);
    const long long count = std::atoll(argv[2]);
    const long long in_flight = argc > 3 ? std::atoll(argv[3]) : 4;
    if (batch < 1 || count < 1 || in_flight < 1) return 64;

    std::vector<EventBatch> batches = make_events(count);
    hubflow::webhook::test::Receiver receiver(0, static_cast<int>(in_flight) + 2, false);

    hubflow::testing::FakeContext context("hook");
    hubflow::webhook::WebhookSink sink;
    const hubflow::Value config = hubflow::testing::node_config(
        hubflow::webhook::WebhookSink::describe(), R"({"url": ")" + receiver.url() + R"(", "max_in_flight": )" +
                                                       std::to_string(in_flight) + R"(, "batch": {"max_events": )" +
                                                       std::to_string(batch) + R"(, "max_bytes": 16777216}})");
    sink.configure(hubflow::ConfigView(config), context);
    sink.start();

    const auto wall_start = std::chrono::steady_clock::now();
    const double cpu_start = cpu_seconds();
    for (const EventBatch& b : batches)
        sink.write(b);
    sink.flush();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    const double cpu = cpu_seconds() - cpu_start;
    sink.stop();

    const auto delivered = static_cast<long long>(context.metric_registry.counters["delivered_events"].value());
    std::printf(
        "{\"batch\":%lld,\"events\":%lld,\"delivered\":%lld,\"requests\":%zu,\"body_bytes\":%llu,\"wall_s\":%.6f,"
        "\"cpu_s\":%.6f}\n",
        batch, count, delivered, receiver.count(), static_cast<unsigned long long>(receiver.body_bytes()), wall, cpu);
    return delivered == count ? 0 : 2;
}
