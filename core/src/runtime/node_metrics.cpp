#include "runtime/node_metrics.h"

namespace hubflow::core {

Counter& NodeMetrics::counter(std::string_view name, std::string_view) {
    std::lock_guard lock(mutex_);
    auto it = counters_.find(name);
    if (it == counters_.end()) it = counters_.emplace(std::string(name), std::make_unique<Counter>()).first;
    return *it->second;
}

Gauge& NodeMetrics::gauge(std::string_view name, std::string_view) {
    std::lock_guard lock(mutex_);
    auto it = gauges_.find(name);
    if (it == gauges_.end()) it = gauges_.emplace(std::string(name), std::make_unique<Gauge>()).first;
    return *it->second;
}

std::vector<NodeMetrics::Sample> NodeMetrics::snapshot() const {
    auto v = [](const Counter& c) { return static_cast<std::int64_t>(c.value()); };
    std::vector<Sample> out = {{"received_events", v(received)},
                               {"emitted_events", v(emitted)},
                               {"dropped_events", v(dropped)},
                               {"errors", v(errors)}};
    std::lock_guard lock(mutex_);
    for (const auto& [name, c] : counters_)
        out.push_back({name, v(*c)});
    for (const auto& [name, g] : gauges_)
        out.push_back({name, g->value()});
    return out;
}

}  // namespace hubflow::core
