#include "runtime/tap.h"

#include <algorithm>

namespace hubflow::core {

TapSubscription::TapSubscription(std::uint64_t limit, std::uint32_t per_second, std::uint32_t queue_events)
    : limit_(limit), per_second_(per_second), queue_events_(queue_events), tokens_(per_second) {}

void TapSubscription::offer(const SharedBatch& batch, std::string_view output,
                            std::chrono::steady_clock::time_point now, std::atomic<std::uint64_t>& dropped_total) {
    const auto size = static_cast<std::uint64_t>(batch->size());
    const std::uint64_t left = limit_ - std::min(limit_, accepted());
    if (left == 0) return;
    // The bucket is refilled and spent under the TapPoint's lock, which every offer holds, so what the rate lets
    // through is decided without the reader's lock and a busy reader costs exactly those samples.
    if (refilled_ != std::chrono::steady_clock::time_point{})
        tokens_ = std::min(per_second_, tokens_ + per_second_ * std::chrono::duration<double>(now - refilled_).count());
    refilled_ = now;
    const auto allowed = std::min<std::uint64_t>({size, left, static_cast<std::uint64_t>(tokens_)});
    skipped_.fetch_add(size - allowed, std::memory_order_relaxed);
    if (allowed == 0) return;
    tokens_ -= static_cast<double>(allowed);
    // Copied before taking the reader's lock, so the lock is held only for the move into the queue.
    TapItem item{std::vector<Event>(batch->begin(), batch->begin() + static_cast<std::ptrdiff_t>(allowed)),
                 std::string(output)};
    std::unique_lock lock(mutex_, std::try_to_lock);
    const auto room = !lock.owns_lock()
                          ? 0  // the reader is taking the queue this instant; these samples are lost, not waited for
                          : static_cast<std::uint64_t>(queue_events_ - std::min(queue_events_, queued_events_));
    const std::uint64_t taken = std::min(allowed, room);
    if (taken < allowed) {
        dropped_.fetch_add(allowed - taken, std::memory_order_relaxed);
        dropped_total.fetch_add(allowed - taken, std::memory_order_relaxed);
    }
    if (taken == 0) return;
    item.events.resize(taken);
    items_.push_back(std::move(item));
    queued_events_ += static_cast<std::uint32_t>(taken);
    accepted_.fetch_add(taken, std::memory_order_relaxed);
    lock.unlock();
    ready_.notify_one();
}

std::vector<TapItem> TapSubscription::take(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    ready_.wait_for(lock, timeout, [&] { return !items_.empty(); });
    std::vector<TapItem> out(std::make_move_iterator(items_.begin()), std::make_move_iterator(items_.end()));
    items_.clear();
    queued_events_ = 0;
    return out;
}

void TapPoint::offer(const SharedBatch& batch, std::string_view output) {
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) return;  // a reader is attaching or leaving; it has not seen this batch either way
    const auto now = std::chrono::steady_clock::now();
    for (const auto& reader : attached_)
        reader->offer(batch, output, now, dropped_);
}

void TapPoint::attach(std::shared_ptr<TapSubscription> reader) {
    std::lock_guard lock(mutex_);
    attached_.push_back(std::move(reader));
    readers_.store(static_cast<int>(attached_.size()), std::memory_order_relaxed);
}

void TapPoint::detach(const TapSubscription* reader) {
    std::lock_guard lock(mutex_);
    std::erase_if(attached_, [&](const auto& r) { return r.get() == reader; });
    readers_.store(static_cast<int>(attached_.size()), std::memory_order_relaxed);
}

}  // namespace hubflow::core
