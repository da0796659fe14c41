#pragma once
// Metrics of one node: the common counters every node has, plus what its component registers.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hubflow/context.h"

namespace hubflow::core {

class NodeMetrics final : public Metrics {
public:
    Counter& counter(std::string_view name, std::string_view help) override;
    Gauge& gauge(std::string_view name, std::string_view help) override;

    // The common counters, in events.
    Counter received;
    Counter emitted;
    Counter dropped;
    Counter errors;

    struct Sample {
        std::string name;
        std::int64_t value;
    };
    std::vector<Sample> snapshot() const;  // common counters first, then the component's

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::unique_ptr<Counter>, std::less<>> counters_;
    std::map<std::string, std::unique_ptr<Gauge>, std::less<>> gauges_;
};

}  // namespace hubflow::core
