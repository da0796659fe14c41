#pragma once
// Retry and reconnect delays: exponential with full jitter (a uniform draw between zero and the exponential
// bound), so that many clients cut off together do not come back together. The signalr source reconnects and
// the webhook sink retries with it. SDK 1.2; header-only.
//
// Not thread-safe: one Backoff per connection or request, used by one thread at a time.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace hubflow {

class Backoff {
public:
    // `initial` is the bound before the first retry, `max` the cap; `seed` feeds the generator (give each
    // instance its own, e.g. from std::random_device, so that instances do not draw the same delays).
    Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, std::uint64_t seed)
        : initial_(initial), max_(max), random_(seed) {}

    // The delay before the next attempt; each call doubles the bound up to max.
    std::chrono::milliseconds next() {
        const auto bound = bound_for(failures_++);
        std::uniform_int_distribution<std::int64_t> pick(0, bound.count());
        return std::chrono::milliseconds(pick(random_));
    }
    // A success (a connection that reached its peer, a delivered request) starts the sequence over.
    void reset() { failures_ = 0; }
    std::uint32_t failures() const { return failures_; }

    // The upper bound of the delay after `failures` failed attempts.
    std::chrono::milliseconds bound_for(std::uint32_t failures) const {
        const auto shift = std::min<std::uint32_t>(failures, 30);
        const std::int64_t grown = initial_.count() * (std::int64_t{1} << shift);
        return std::chrono::milliseconds(std::min(grown, max_.count()));
    }

private:
    std::chrono::milliseconds initial_, max_;
    std::uint32_t failures_ = 0;
    std::mt19937_64 random_;
};

}  // namespace hubflow
