#include "runtime/node_metrics.h"

#include <algorithm>

namespace hubflow::core {

void ProcessingTime::observe(std::chrono::nanoseconds d) {
    const double s = std::chrono::duration<double>(d).count();
    std::size_t i = 0;
    while (i < bounds.size() && s > bounds[i])
        ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<std::uint64_t>(d.count()), std::memory_order_relaxed);
}

ProcessingTime::Snapshot ProcessingTime::snapshot() const {
    Snapshot s;
    std::uint64_t running = 0;
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        running += buckets_[i].load(std::memory_order_relaxed);
        s.cumulative[i] = running;
    }
    s.count = running + buckets_[bounds.size()].load(std::memory_order_relaxed);
    s.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return s;
}

Counter& NodeMetrics::counter(std::string_view name, std::string_view help) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(name);
    if (it == entries_.end()) it = entries_.emplace(std::string(name), Entry{}).first;
    if (!it->second.counter) it->second.counter = std::make_unique<Counter>();
    if (it->second.help.empty()) it->second.help = help;
    return *it->second.counter;
}

Gauge& NodeMetrics::gauge(std::string_view name, std::string_view help) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(name);
    if (it == entries_.end()) it = entries_.emplace(std::string(name), Entry{}).first;
    if (!it->second.gauge) it->second.gauge = std::make_unique<Gauge>();
    if (it->second.help.empty()) it->second.help = help;
    return *it->second.gauge;
}

std::vector<NodeMetrics::Sample> NodeMetrics::component_samples() const {
    std::vector<Sample> out;
    std::lock_guard lock(mutex_);
    for (const auto& [name, e] : entries_) {
        if (e.counter) out.push_back({name, static_cast<std::int64_t>(e.counter->value()), true, e.help});
        if (e.gauge) out.push_back({name, e.gauge->value(), false, e.help});
    }
    return out;
}

NodeMetrics::Account NodeMetrics::account() const {
    Account a;
    a.finished = finished.value();
    a.filtered = filtered.value();
    a.refused = refused.value();
    const std::uint64_t lost_now = lost.value();
    // One reading of the input's drops serves both sides of the equation.
    const std::uint64_t door = input_discarded.value();
    a.queue_full = std::min(input_discarded_full.value(), door);
    a.node_failed = lost_now + (door - a.queue_full);
    const std::uint64_t taken_now = taken.value();
    a.received = taken_now + door;
    a.in_flight = static_cast<std::int64_t>(taken_now) -
                  static_cast<std::int64_t>(a.finished + a.filtered + a.refused + lost_now);
    return a;
}

std::vector<NodeMetrics::Sample> NodeMetrics::snapshot() const {
    const Account a = account();
    auto v = [](std::uint64_t n) { return static_cast<std::int64_t>(n); };
    std::vector<Sample> out = {{"received_events", v(a.received)}, {"emitted_events", v(emitted.value())},
                               {"finished_events", v(a.finished)}, {"dropped_events", v(a.discarded())},
                               {"in_flight_events", a.in_flight},  {"errors", v(errors.value())}};
    for (auto& s : component_samples())
        out.push_back(std::move(s));
    return out;
}

}  // namespace hubflow::core
