#pragma once
// The bounded queue in front of every filter and sink. Bounded in events, not batches, so memory stays
// predictable whatever batch sizes upstream chooses. Several producers (fan-in) push; one node pops.
//
// When full, push() blocks (backpressure) under WhenFull::block, or drops the batch under drop_newest;
// every dropped event is added to the consumer's `dropped` counter. A batch larger than the whole capacity
// is admitted when the queue is empty, so an oversized batch can never deadlock its producer.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>

#include "config/pipeline.h"
#include "hubflow/context.h"
#include "hubflow/event.h"

namespace hubflow::core {

class BatchQueue {
public:
    BatchQueue(std::size_t max_events, WhenFull when_full, Counter& dropped);

    enum class Push { accepted, dropped };
    Push push(SharedBatch batch);

    enum class Pop { batch, timeout, end };
    // Waits until a batch is available, `deadline` passes, or every producer is done and the queue is empty.
    Pop pop(SharedBatch& out, std::chrono::steady_clock::time_point deadline);

    void add_producer();
    void producer_done();

    // The consumer is gone: everything queued and everything pushed from now on is dropped (and counted),
    // and no producer ever blocks again.
    void discard();

    std::size_t queued_events() const;

private:
    const std::size_t max_events_;
    const WhenFull when_full_;
    Counter& dropped_;
    mutable std::mutex mutex_;
    std::condition_variable not_empty_;
    std::condition_variable not_full_;
    std::deque<SharedBatch> batches_;
    std::size_t events_ = 0;
    int producers_ = 0;
    bool discarding_ = false;
};

}  // namespace hubflow::core
