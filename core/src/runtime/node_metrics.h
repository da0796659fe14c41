#pragma once
// Metrics of one node: the common counters every node has, plus what its component registers.

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hubflow/context.h"

namespace hubflow::core {

// Time a node spends in process()/write() per batch, in fixed buckets (seconds), for the admin server's
// histogram. Lock-free; observed on the node's thread, read from any.
class ProcessingTime {
public:
    static constexpr std::array<double, 10> bounds = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0};
    void observe(std::chrono::nanoseconds d);
    struct Snapshot {
        std::array<std::uint64_t, bounds.size()> cumulative{};  // observations <= each bound
        std::uint64_t count = 0;
        double sum_seconds = 0;
    };
    Snapshot snapshot() const;

private:
    std::array<std::atomic<std::uint64_t>, bounds.size() + 1> buckets_{};  // the last one: above every bound
    std::atomic<std::uint64_t> sum_ns_{0};
};

// An event count the admin server reads while other threads add to it. An add publishes what its thread did
// before (taking the events from the input), so whoever reads the outcomes before what was taken never sees more
// settled than taken.
class EventCount {
public:
    void add(std::uint64_t n) { value_.fetch_add(n, std::memory_order_release); }
    std::uint64_t value() const { return value_.load(std::memory_order_acquire); }

private:
    std::atomic<std::uint64_t> value_{0};
};

class NodeMetrics final : public Metrics {
public:
    Counter& counter(std::string_view name, std::string_view help) override;
    Gauge& gauge(std::string_view name, std::string_view help) override;

    // The common counters, in events. Every event that reaches a filter or sink is *received* and ends either
    // finished or discarded for one reason; until then it is in flight (held by the node: being processed, or
    // handed to a sink that has not settled it):
    //     received = taken + input_discarded
    //     received = finished + discarded(filtered, queue_full, node_failed, refused) + in flight
    // An event the input drops instead of handing it on (refused when full, or discarded because the node
    // failed) is received and discarded at once, so the account closes without counting what merely waits in
    // the input, which after a restart may come from a disk buffer an earlier process filled.
    Counter taken;                 // handed to the node by its input
    Counter input_discarded;       // dropped by the input instead: when full (drop_newest) or the node failed
    Counter input_discarded_full;  // of which: refused by a full input under when_full drop_newest
    EventCount finished;           // a filter carried them on in what it emitted; a sink delivered them
    EventCount filtered;           // a filter dropped them on purpose
    EventCount refused;            // a sink refused them for good (dead-lettered, or counted by the sink)
    EventCount lost;               // the node threw or failed while holding them, or a sink said they were lost
    Counter emitted;               // what the node emitted, once per output it went to
    Counter errors;
    ProcessingTime processing;

    // One reading of the account, taken so that in_flight >= 0 holds in it (outcomes are read before what was
    // taken). Negative in_flight would be a bug in the counting, and is shown as it is.
    struct Account {
        std::uint64_t received = 0, finished = 0;
        std::uint64_t filtered = 0, queue_full = 0, node_failed = 0, refused = 0;
        std::int64_t in_flight = 0;
        std::uint64_t discarded() const { return filtered + queue_full + node_failed + refused; }
    };
    Account account() const;

    struct Sample {
        std::string name;
        std::int64_t value;
        bool counter = true;  // false: a gauge
        std::string help;
    };
    std::vector<Sample> snapshot() const;           // common counters first (the exit line), then the component's
    std::vector<Sample> component_samples() const;  // only what the component registered

private:
    struct Entry {
        std::unique_ptr<Counter> counter;
        std::unique_ptr<Gauge> gauge;
        std::string help;
    };
    mutable std::mutex mutex_;
    std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace hubflow::core
