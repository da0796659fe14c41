#pragma once
// The host's side of delivery acknowledgements (hubflow/delivery.h): a tree of tickets per tracked batch.
//
// A root ticket stands for one batch a tracking node emitted (a source that asked for it, or a disk buffer
// handing out what it stored). Every push of that batch into a node's input creates a child ticket, and so
// does every batch a filter emits while it processes that input, so a filter that builds new batches (copies,
// subsets, recycled storage) needs no help to keep acknowledgements flowing. A ticket counts what it still
// waits for (`pending`): its children, the processing of the node that holds it, or the events a sink has not
// yet settled. When the count reaches zero the ticket tells its parent, or its origin for a root, and frees
// itself. A lost event marks its ticket lost, and the mark travels up with it.
//
// Nothing is allocated for a pipeline where nobody tracks: an untracked batch travels with a null ticket.

#include <atomic>
#include <cstdint>

#include "hubflow/delivery.h"

namespace hubflow::core {

// Who hears how a root ticket's batch ended.
class BatchOrigin {
public:
    virtual void batch_ended(std::uint64_t number, BatchOutcome outcome) = 0;

protected:
    ~BatchOrigin() = default;
};

class Ticket final : public detail::DeliveryTicket {
public:
    // A root with one obligation: the emitter's own hold, released once the batch is pushed everywhere.
    static Ticket* root(BatchOrigin& origin, std::uint64_t number);

    // A child with one obligation (the consumer's), adding one to this ticket's count.
    Ticket* child();

    // Adds `n` obligations to this ticket (the events a sink is about to settle one by one).
    void add(std::size_t n) { pending_.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed); }

    // Settles `n` obligations; the last one ends the ticket. Any thread.
    void resolve(std::size_t n, Resolution how) override;

    // Shorthands for the host's own obligations.
    void done() { resolve(1, Resolution::delivered); }
    void lose() { resolve(1, Resolution::lost); }

private:
    Ticket(Ticket* parent, BatchOrigin* origin, std::uint64_t number)
        : parent_(parent), origin_(origin), number_(number) {}
    ~Ticket() = default;

    std::atomic<std::int64_t> pending_{1};
    std::atomic<bool> lost_{false};
    Ticket* const parent_;
    BatchOrigin* const origin_;
    const std::uint64_t number_;
};

// Settles an optional ticket: the null ticket of an untracked batch is simply ignored.
inline void done(Ticket* t) {
    if (t) t->done();
}
inline void lose(Ticket* t) {
    if (t) t->lose();
}

}  // namespace hubflow::core
