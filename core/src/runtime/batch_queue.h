#pragma once
// The memory buffer in front of a filter or sink (`buffer.type: memory`, the default). Bounded in events, not
// batches, so memory stays predictable whatever batch sizes upstream chooses.
//
// When full, push() blocks (backpressure) under WhenFull::block, or drops the batch under drop_newest; every
// dropped event is added to the consumer's `dropped` counter, and a dropped batch is finished for its source
// (dropped on purpose, by configuration). A batch larger than the whole capacity is admitted when the queue
// is empty, so an oversized batch can never deadlock its producer. Batches discarded because the node failed
// are lost: their tickets say so.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>

#include "config/pipeline.h"
#include "hubflow/context.h"
#include "hubflow/event.h"
#include "runtime/node_input.h"

namespace hubflow::core {

class BatchQueue final : public NodeInput {
public:
    // `dropped` counts every event the queue drops; `dropped_full`, when given, those refused by drop_newest.
    BatchQueue(std::size_t max_events, WhenFull when_full, Counter& dropped, Counter* dropped_full = nullptr);
    ~BatchQueue() override;

    Push push(SharedBatch batch, Ticket* ticket) override;
    Push push(SharedBatch batch) { return push(std::move(batch), nullptr); }

    Pop pop(SharedBatch& out, Ticket*& ticket, std::chrono::steady_clock::time_point deadline) override;
    Pop pop(SharedBatch& out, std::chrono::steady_clock::time_point deadline);

    void add_producer() override;
    void producer_done() override;
    void discard() override;
    std::size_t queued_events() const override;

private:
    struct Entry {
        SharedBatch batch;
        Ticket* ticket;
    };
    const std::size_t max_events_;
    const WhenFull when_full_;
    Counter& dropped_;
    Counter* const dropped_full_;
    mutable std::mutex mutex_;
    std::condition_variable not_empty_;
    std::condition_variable not_full_;
    std::deque<Entry> entries_;
    std::size_t events_ = 0;
    int producers_ = 0;
    bool discarding_ = false;
};

}  // namespace hubflow::core
