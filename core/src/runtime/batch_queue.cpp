#include "runtime/batch_queue.h"

namespace hubflow::core {

BatchQueue::BatchQueue(std::size_t max_events, WhenFull when_full, Counter& dropped)
    : max_events_(max_events), when_full_(when_full), dropped_(dropped) {}

BatchQueue::Push BatchQueue::push(SharedBatch batch) {
    const std::size_t n = batch->size();
    if (n == 0) return Push::accepted;
    std::unique_lock lock(mutex_);
    auto fits = [&] { return discarding_ || events_ == 0 || events_ + n <= max_events_; };
    if (!fits()) {
        if (when_full_ == WhenFull::drop_newest) {
            dropped_.add(n);
            return Push::dropped;
        }
        not_full_.wait(lock, fits);
    }
    if (discarding_) {
        dropped_.add(n);
        return Push::dropped;
    }
    events_ += n;
    batches_.push_back(std::move(batch));
    lock.unlock();
    not_empty_.notify_one();
    return Push::accepted;
}

BatchQueue::Pop BatchQueue::pop(SharedBatch& out, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    bool ready = not_empty_.wait_until(lock, deadline, [&] { return !batches_.empty() || producers_ == 0; });
    if (!ready) return Pop::timeout;
    if (batches_.empty()) return Pop::end;
    out = std::move(batches_.front());
    batches_.pop_front();
    events_ -= out->size();
    lock.unlock();
    not_full_.notify_all();
    return Pop::batch;
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
    {
        std::lock_guard lock(mutex_);
        discarding_ = true;
        dropped_.add(events_);
        batches_.clear();
        events_ = 0;
    }
    not_full_.notify_all();
}

std::size_t BatchQueue::queued_events() const {
    std::lock_guard lock(mutex_);
    return events_;
}

}  // namespace hubflow::core
