#include "runtime/batch_recycler.h"

namespace hubflow::core {

SharedBatch BatchRecycler::share(EventBatch&& batch) {
    auto* owned = new EventBatch(std::move(batch));
    // The deleter holds a weak reference: a batch outliving its node is simply freed.
    std::weak_ptr<BatchRecycler> self = weak_from_this();
    return SharedBatch(owned, [self](const EventBatch* b) {
        auto* mutable_batch = const_cast<EventBatch*>(b);
        if (auto recycler = self.lock())
            recycler->give_back(mutable_batch);
        else
            delete mutable_batch;
    });
}

void BatchRecycler::give_back(EventBatch* batch) {
    std::unique_ptr<EventBatch> owned(batch);
    std::lock_guard lock(mutex_);
    if (free_.size() < max_kept) free_.push_back(std::move(owned));
}

EventBatch BatchRecycler::take(std::size_t size) {
    std::unique_ptr<EventBatch> reused;
    {
        std::lock_guard lock(mutex_);
        if (!free_.empty()) {
            reused = std::move(free_.back());
            free_.pop_back();
        }
    }
    if (!reused) return EventBatch(size);
    EventBatch batch = std::move(*reused);
    batch.resize(size);
    for (auto& e : batch) {
        e.meta.source.clear();
        e.meta.received_at = {};
    }
    return batch;
}

}  // namespace hubflow::core
