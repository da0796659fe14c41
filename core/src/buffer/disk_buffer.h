#pragma once
// The disk buffer in front of a filter or sink (`"buffer": {"type": "disk", ...}`): a point of responsibility.
//
// Upstream sees a batch finished once its events are synced into the buffer's segment log (SegmentLog, one
// record per event): from then on the buffer answers for them, across kill -9 and power loss. The node's
// thread gets them in order, each batch tracked by a root ticket of the buffer's own: while it keeps up, as
// the very batch that was synced (no decoding); a backlog, from the log's records. A record
// is released only when its batch ends finished downstream; a segment file goes once all its records are
// released. So on restart the node gets, before anything new, every event that was accepted and not yet
// delivered (and, at-least-once, those delivered since the last persisted release: the duplicate window).
//
// Threads: producers call push() (it encodes and stages, and may block while the buffer is full); a writer
// thread of the buffer's own appends what is staged and writes it as one commit group (`fsync: batch`: as soon
// as there is something; `interval`: at most every fsync_interval_ms, so fewer, larger syncs at the cost of
// latency) and a syncer thread fdatasyncs it, so one group is written while the one before is synced; the
// upstream acknowledgement always waits for the sync, so neither mode has a loss window; the node's thread
// pops; tickets end on any thread.
//
// Faults: a write that fails (ENOSPC, EIO, a read-only directory) stops intake with an error naming the file
// and is retried every second, holding producers back meanwhile (backpressure), never a crash loop; a failed
// fsync fails the node, since what the kernel dropped cannot be known: its staged events are lost (upstream
// is told so) and the segments stay on disk for the next start.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "buffer/segment_log.h"
#include "config/pipeline.h"
#include "hubflow/context.h"
#include "runtime/node_input.h"

namespace hubflow::core {

class BatchRecycler;

class DiskBuffer final : public NodeInput, private BatchOrigin {
public:
    struct Options {
        std::filesystem::path dir;
        std::uint64_t max_bytes = 256ULL << 20;
        std::chrono::milliseconds fsync_interval{0};  // 0: every commit group as soon as it is staged
        WhenFull when_full = WhenFull::block;
        std::size_t read_batch = 1000;  // most events handed to the node at once
        // Producers wait beyond this many events not yet written (two batches may always wait): small commit
        // groups keep writing and syncing overlapped (measured: 2,000 beat 1,000, 3,500 and 10,000).
        std::size_t max_staged_events = 2000;
        std::chrono::milliseconds retry_interval{1000};
        std::uint64_t segment_bytes = 32ULL << 20;
        Counter* dropped_full = nullptr;  // counts what when_full drop_newest refuses, when given
    };
    // `fail` reports that the node cannot go on; `stopping` is the runtime's shutdown flag (with it set, the
    // node stops reading the backlog once upstream is done, and the rest waits on disk for the next start).
    DiskBuffer(Options options, Logger& log, Metrics& metrics, Counter& dropped, const std::atomic<bool>& stopping,
               std::function<void(const std::string&)> fail, buffer::FileLayer* files = nullptr);
    ~DiskBuffer() override;

    // Recovers the log and starts the writer. Throws with a sentence naming the file for what cannot be
    // recovered (a newer format version, an unusable directory); damaged records are set aside and logged.
    void open();

    // Stops the writer and lets go of the files (a reload hands them to the node's successor). Call only once
    // the node's thread and its producers are done with the buffer.
    void close();

    Push push(SharedBatch batch, Ticket* ticket) override;
    Pop pop(SharedBatch& out, Ticket*& ticket, std::chrono::steady_clock::time_point deadline) override;
    void add_producer() override;
    void producer_done() override;
    void discard() override;
    std::size_t queued_events() const override;

private:
    struct Staged {
        SharedBatch batch;
        Ticket* ticket;
        // The batch's records, encoded on the producer's thread so the writer only appends and syncs.
        std::string records;
        std::vector<std::uint32_t> ends;  // where each event's record ends in `records`
        std::uint64_t first_seq = 0;      // set once appended
    };
    // A batch just synced, kept so the node's thread can take it as it is instead of decoding its records
    // (SegmentLog::take_front) while it keeps up; a node that falls behind reads the log instead.
    struct Ready {
        SharedBatch batch;
        std::uint64_t first_seq;
    };
    void batch_ended(std::uint64_t number, BatchOutcome outcome) override;
    void write_loop();
    void sync_loop();
    void remove_loop();
    // Appends the batches of `group` that fit and writes them (not synced); returns how many (the rest is
    // tried again later: the buffer is full, or the write failed). Throws SyncFailed, LogFailed.
    std::size_t write_group(std::deque<Staged>& group);
    // The log failed: every batch not synced is lost (upstream is told) and the node fails. `holding` is the
    // caller's writing_ or syncing_, cleared with the rest.
    void fail_writes(std::deque<Staged>& group, const std::string& what, bool& holding);
    // Takes every batch not synced yet (written and staged) off the buffer; the caller loses their tickets.
    std::deque<Staged> take_unsynced_locked();
    bool writers_idle() const;  // under mutex_: nothing staged is being written or synced
    void update_gauges();
    void fail_node(const std::string& reason);

    const Options options_;
    Logger& log_;
    Counter& dropped_;
    const std::atomic<bool>& stopping_;
    std::function<void(const std::string&)> fail_;
    std::unique_ptr<buffer::FileLayer> own_files_;
    buffer::FileLayer& files_;
    std::unique_ptr<buffer::SegmentLog> log_store_;

    Gauge& events_gauge_;
    Gauge& bytes_gauge_;
    Gauge& oldest_age_gauge_;
    Counter& set_aside_;
    Counter& write_failures_;
    Counter& lost_batches_;

    mutable std::mutex mutex_;
    std::condition_variable staged_changed_;    // the writer waits for work; producers wait for room
    std::condition_variable synced_changed_;    // the syncer waits for written groups
    std::condition_variable readable_changed_;  // the node waits for synced records
    std::deque<Staged> staged_;
    std::deque<Staged> written_;  // written by the writer, waiting for the syncer
    std::deque<Ready> ready_;     // under mutex_
    std::size_t ready_events_ = 0;
    std::mutex spare_mutex_;
    std::vector<std::string> spare_records_;  // encoding buffers to reuse
    std::size_t staged_events_ = 0;
    int producers_ = 0;
    bool discarding_ = false;
    bool failed_ = false;
    bool writing_ = false;                    // the writer holds a group
    bool syncing_ = false;                    // the syncer holds a group
    bool removal_wanted_ = false;             // released segments wait for the remover
    bool read_log_ = false;                   // the log may hold records that are not in ready_
    std::atomic<bool> write_failing_{false};  // the last write failed (ENOSPC, EIO): retried meanwhile
    std::uint64_t sync_generation_ = 0;       // counts commits, so the node's thread cannot miss one
    std::thread writer_;
    std::thread syncer_;
    std::thread remover_;

    // Reader side: the node's thread pops, tickets end anywhere.
    std::mutex reader_mutex_;
    std::vector<buffer::Record> records_;
    std::unordered_map<std::uint64_t, std::uint64_t> handed_out_;  // first seq -> end seq of a batch in flight
    std::uint64_t set_aside_seen_ = 0;
    std::shared_ptr<BatchRecycler> recycler_;
};

}  // namespace hubflow::core
