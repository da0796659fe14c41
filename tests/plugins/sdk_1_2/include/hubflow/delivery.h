#pragma once
// Delivery acknowledgements (SDK 1.2): how a sink says what became of the events it was given, and how a
// source learns when what it emitted is finished, so that it checkpoints only what is safe.
//
// The guarantee is at-least-once. An event is *finished* when each of the sinks it fanned out to has delivered
// it (as durably as that sink's own settings promise) or refused it for good (dead-lettered, counted), or a
// filter dropped it on purpose, or a disk buffer synced it (the buffer then answers for it). An event is *lost*
// when a node failed or threw while holding it; a lost event is never reported finished, so no checkpoint
// passes it and a restart reads it again. An event still queued when the process dies is neither: its source
// simply never hears of it, which is as safe as lost.
//
// Plugins built for SDK 1.0 and 1.1 keep loading. Their sinks count as having delivered a batch when write()
// returns, the weaker promise of those versions; their sources and filters work unchanged.

#include <cstddef>
#include <cstdint>

namespace hubflow {

// How a batch ended, as told to the node that emitted it.
enum class BatchOutcome {
    finished,  // every event delivered, refused for good, or dropped on purpose
    lost,      // at least one event was lost (see above)
};

namespace detail {
// The host's record of one batch handed to one sink. Implemented by the host; plugins only reach it through
// BatchAck, whose inline functions make this layout part of the SDK 1.2 ABI.
class DeliveryTicket {
public:
    enum class Resolution { delivered, refused, lost };
    // Thread-safe. `events` of the batch are settled; after the last one the ticket is gone.
    virtual void resolve(std::size_t events, Resolution how) = 0;

protected:
    ~DeliveryTicket() = default;
};
}  // namespace detail

// A sink's handle on one batch given to AcknowledgingSink::deliver(). Cheap to copy (a pointer); usable from any
// thread (a client library's callback thread, say), during deliver() or any time after it.
//
// Ownership and life: settle every event of the batch exactly once, in any order and in parts of any size.
// The handle and all its copies are spent once the last event is settled: using one after that is undefined.
// A batch whose events are never settled holds back every checkpoint behind it for the life of the process,
// so a sink that gives up on events must say lost(), and one that shuts down with events still unsettled may
// simply leave them (they were not delivered; a restart sends them again).
class BatchAck {
public:
    BatchAck() = default;  // tracks nothing: every call is a no-op (what an untracked pipeline passes)
    explicit BatchAck(detail::DeliveryTicket* ticket) : ticket_(ticket) {}

    // Delivered as durably as the sink's settings promise (synced, acknowledged by the broker, a 2xx, ...).
    void delivered(std::size_t events) const { settle(events, detail::DeliveryTicket::Resolution::delivered); }
    // Refused for good and accounted for (dead-lettered, or counted as refused): finished, never retried.
    void refused(std::size_t events) const { settle(events, detail::DeliveryTicket::Resolution::refused); }
    // Neither delivered nor accounted for: the source is told `lost` and keeps its checkpoint before them.
    void lost(std::size_t events) const { settle(events, detail::DeliveryTicket::Resolution::lost); }

    bool tracked() const { return ticket_ != nullptr; }

private:
    void settle(std::size_t events, detail::DeliveryTicket::Resolution how) const {
        if (ticket_ && events) ticket_->resolve(events, how);
    }
    detail::DeliveryTicket* ticket_ = nullptr;
};

// What a source implements to hear how its batches ended; see Context::track_deliveries().
class DeliveryListener {
public:
    // Called exactly once per tracked batch, from any thread of the host's (a sink's, a library's, or the
    // source's own thread inside emit() when nothing downstream holds the batch). Keep it short, never block
    // and never call emit() from it; batches may end in any order.
    virtual void batch_ended(std::uint64_t batch_number, BatchOutcome outcome) = 0;

protected:
    ~DeliveryListener() = default;
};

}  // namespace hubflow
