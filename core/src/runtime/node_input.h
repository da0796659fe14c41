#pragma once
// What stands in front of every filter and sink: the memory queue (BatchQueue) or the disk buffer
// (DiskBuffer), chosen per node by `buffer.type`. The node never learns which one it has.
//
// Several producers push (fan-in); the node's own thread pops. Each batch travels with its delivery ticket
// (null when nobody tracks it): pushing hands the ticket's obligation to the input, popping hands it to the
// node, and an input that drops or discards a batch settles it itself.

#include <chrono>
#include <cstddef>

#include "hubflow/event.h"
#include "runtime/delivery_tracking.h"

namespace hubflow::core {

class NodeInput {
public:
    virtual ~NodeInput() = default;

    // May block while the input is full (backpressure). `dropped` when the input refused the batch (its
    // when_full policy, or the node is gone); the input has then settled the ticket.
    enum class Push { accepted, dropped };
    virtual Push push(SharedBatch batch, Ticket* ticket) = 0;

    enum class Pop { batch, timeout, end };
    // Waits until a batch is available, `deadline` passes, or every producer is done and nothing is left
    // that this run can hand out.
    virtual Pop pop(SharedBatch& out, Ticket*& ticket, std::chrono::steady_clock::time_point deadline) = 0;

    virtual void add_producer() = 0;
    virtual void producer_done() = 0;

    // The node is gone: nothing more is handed out, and no producer ever blocks again.
    virtual void discard() = 0;

    virtual std::size_t queued_events() const = 0;
};

}  // namespace hubflow::core
