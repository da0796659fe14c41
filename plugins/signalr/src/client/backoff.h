#pragma once
// Reconnect delays: exponential with full jitter (a uniform draw between zero and the exponential bound),
// so that many clients cut off together do not come back together.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace hubflow::signalr {

class Backoff {
public:
    Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, std::uint64_t seed)
        : initial_(initial), max_(max), random_(seed) {}

    // The delay before the next attempt; each call doubles the bound up to max.
    std::chrono::milliseconds next() {
        const auto bound = bound_for(failures_++);
        std::uniform_int_distribution<std::int64_t> pick(0, bound.count());
        return std::chrono::milliseconds(pick(random_));
    }
    // A connection that reached the hub starts the sequence over.
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

}  // namespace hubflow::signalr
