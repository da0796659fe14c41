#include "runtime/batch_queue.h"

namespace hubflow::core {

BatchQueue::BatchQueue(std::size_t max_events, WhenFull when_full, Counter& dropped, Counter* dropped_full)
    : max_events_(max_events), when_full_(when_full), dropped_(dropped), dropped_full_(dropped_full) {}

BatchQueue::~BatchQueue() {
    // Only at the runtime's end: whatever is still queued was not delivered.
    for (auto& e : entries_)
        lose(e.ticket);
}

BatchQueue::Push BatchQueue::push(SharedBatch batch, Ticket* ticket) {
    const std::size_t n = batch->size();
    if (n == 0) {
        done(ticket);
        return Push::accepted;
    }
    std::unique_lock lock(mutex_);
    auto fits = [&] { return discarding_ || events_ == 0 || events_ + n <= max_events_; };
    if (!fits()) {
        if (when_full_ == WhenFull::drop_newest) {
            lock.unlock();
            dropped_.add(n);
            if (dropped_full_) dropped_full_->add(n);
            done(ticket);  // dropped by the node's own policy: finished, and counted
            return Push::dropped;
        }
        not_full_.wait(lock, fits);
    }
    if (discarding_) {
        lock.unlock();
        dropped_.add(n);
        lose(ticket);
        return Push::dropped;
    }
    events_ += n;
    entries_.push_back({std::move(batch), ticket});
    lock.unlock();
    not_empty_.notify_one();
    return Push::accepted;
}

BatchQueue::Pop BatchQueue::pop(SharedBatch& out, Ticket*& ticket, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    bool ready = not_empty_.wait_until(lock, deadline, [&] { return !entries_.empty() || producers_ == 0; });
    if (!ready) return Pop::timeout;
    if (entries_.empty()) return Pop::end;
    out = std::move(entries_.front().batch);
    ticket = entries_.front().ticket;
    entries_.pop_front();
    events_ -= out->size();
    lock.unlock();
    not_full_.notify_all();
    return Pop::batch;
}

BatchQueue::Pop BatchQueue::pop(SharedBatch& out, std::chrono::steady_clock::time_point deadline) {
    Ticket* ticket = nullptr;
    Pop result = pop(out, ticket, deadline);
    done(ticket);
    return result;
}

void BatchQueue::add_producer() {
    std::lock_guard lock(mutex_);
    ++producers_;
}

void BatchQueue::producer_done() {
    {
        std::lock_guard lock(mutex_);
        --producers_;
    }
    not_empty_.notify_all();
}

void BatchQueue::discard() {
    std::deque<Entry> discarded;
    {
        std::lock_guard lock(mutex_);
        discarding_ = true;
        dropped_.add(events_);
        discarded.swap(entries_);
        events_ = 0;
    }
    not_full_.notify_all();
    for (auto& e : discarded)
        lose(e.ticket);
}

std::size_t BatchQueue::queued_events() const {
    std::lock_guard lock(mutex_);
    return events_;
}

}  // namespace hubflow::core
