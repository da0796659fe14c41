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

class NodeMetrics final : public Metrics {
public:
    Counter& counter(std::string_view name, std::string_view help) override;
    Gauge& gauge(std::string_view name, std::string_view help) override;

    // The common counters, in events.
    Counter received;
    Counter emitted;
    Counter dropped;             // every event the node discarded, whatever the reason
    Counter dropped_queue_full;  // of which: refused by a full input under when_full drop_newest
    Counter errors;
    ProcessingTime processing;

    struct Sample {
        std::string name;
        std::int64_t value;
        bool counter = true;  // false: a gauge
        std::string help;
    };
    std::vector<Sample> snapshot() const;           // common counters first, then the component's
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
