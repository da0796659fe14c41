#pragma once
// Gives a node's emitted batches back to it once every consumer has released them, so the next batch reuses
// the events' string storage. Without it each event costs several allocations on the producing thread and as
// many frees on the consuming one, and glibc's arenas serialise on that cross-thread traffic (measured: the
// allocator took most of generator -> file's CPU).

#include <memory>
#include <mutex>
#include <vector>

#include "hubflow/event.h"

namespace hubflow::core {

class BatchRecycler : public std::enable_shared_from_this<BatchRecycler> {
public:
    // Wraps a batch for sharing; when the last reference goes, the storage comes back here.
    SharedBatch share(EventBatch&& batch);

    // A batch of `size` events, from returned storage when there is some.
    EventBatch take(std::size_t size);

private:
    void give_back(EventBatch* batch);

    // Bounded so a burst does not pin memory for ever; beyond it batches are simply freed.
    static constexpr std::size_t max_kept = 64;
    std::mutex mutex_;
    std::vector<std::unique_ptr<EventBatch>> free_;
};

}  // namespace hubflow::core
