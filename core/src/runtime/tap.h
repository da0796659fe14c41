#pragma once
// The tap: a sample of the batches leaving a node, for /api/v1/tap. The pipeline's thread must never wait for a
// tap reader, so emit() only ever offers: with no tap open it costs one relaxed atomic load (TapPoint::active),
// with one open a try-lock, a clock read and a copy of the few events the tap's rate lets through (at most
// `rate` a second). What a reader cannot take in time is dropped and counted, never queued without bound.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "hubflow/event.h"

namespace hubflow::core {

// Copies of the first events of a batch, as they left the node on `output`. Copies rather than a reference to
// the batch: holding batches would keep them from being recycled, and the pipeline would allocate new ones;
// the copying is bounded by the tap's rate.
struct TapItem {
    std::vector<Event> events;
    std::string output;
};

// One reader's share: at most `limit` events in all and `per_second` a second (a token bucket with a burst of
// one second), queued up to `queue_events` until the reader takes them.
class TapSubscription {
public:
    TapSubscription(std::uint64_t limit, std::uint32_t per_second, std::uint32_t queue_events);

    // The pipeline's thread, under the TapPoint's lock. Never blocks: when the reader holds the queue at that
    // moment, or the queue is full, what the rate would have let through is dropped (counted).
    void offer(const SharedBatch& batch, std::string_view output, std::chrono::steady_clock::time_point now,
               std::atomic<std::uint64_t>& dropped_total);

    // The reader's thread: what is queued, waiting up to `timeout` for something.
    std::vector<TapItem> take(std::chrono::milliseconds timeout);

    std::uint64_t accepted() const { return accepted_.load(std::memory_order_relaxed); }
    std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
    std::uint64_t skipped() const { return skipped_.load(std::memory_order_relaxed); }  // left out by the rate
    bool exhausted() const { return accepted() >= limit_; }

private:
    const std::uint64_t limit_;
    const double per_second_;
    const std::uint32_t queue_events_;
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<TapItem> items_;
    std::uint32_t queued_events_ = 0;
    // The token bucket: touched only by offer(), under the TapPoint's lock.
    double tokens_;
    std::chrono::steady_clock::time_point refilled_{};
    std::atomic<std::uint64_t> accepted_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> skipped_{0};
};

// A node's tap: the readers attached to it. One per node, for the Runtime's life.
class TapPoint {
public:
    bool active() const { return readers_.load(std::memory_order_relaxed) != 0; }

    // The pipeline's thread, only when active().
    void offer(const SharedBatch& batch, std::string_view output);

    void attach(std::shared_ptr<TapSubscription> reader);
    void detach(const TapSubscription* reader);
    std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
    std::size_t readers() const { return static_cast<std::size_t>(readers_.load(std::memory_order_relaxed)); }

private:
    std::atomic<int> readers_{0};
    std::mutex mutex_;
    std::vector<std::shared_ptr<TapSubscription>> attached_;
    std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace hubflow::core
