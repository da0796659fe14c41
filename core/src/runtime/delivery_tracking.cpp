#include "runtime/delivery_tracking.h"

namespace hubflow::core {

Ticket* Ticket::root(BatchOrigin& origin, std::uint64_t number) {
    return new Ticket(nullptr, &origin, number);
}

Ticket* Ticket::child() {
    pending_.fetch_add(1, std::memory_order_relaxed);
    return new Ticket(this, nullptr, 0);
}

void Ticket::resolve(std::size_t n, Resolution how) {
    // The mark is stored before the count drops, so whoever takes the count to zero sees it.
    if (how == Resolution::lost) lost_.store(true, std::memory_order_relaxed);
    if (pending_.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_acq_rel) != static_cast<std::int64_t>(n))
        return;
    const bool lost = lost_.load(std::memory_order_relaxed);
    if (parent_)
        parent_->resolve(1, lost ? Resolution::lost : Resolution::delivered);
    else
        origin_->batch_ended(number_, lost ? BatchOutcome::lost : BatchOutcome::finished);
    delete this;
}

}  // namespace hubflow::core
