#include "buffer/disk_buffer.h"

#include <optional>

#include "buffer/event_record.h"
#include "runtime/batch_recycler.h"

namespace hubflow::core {

namespace {
// Events of synced batches kept for the node's thread to take as they are, in multiples of what producers may
// stage; a node further behind reads them back from the log (the page cache, as a rule) and memory stays
// bounded (each kept event holds its payload and metadata).
constexpr std::size_t ready_events_per_staged = 4;
// Encoding buffers kept for reuse (each about a batch of records).
constexpr std::size_t max_spare_buffers = 32;
// The log's own limit sits above the node's, so a batch admitted by the node's check is never cut off
// half-way by the log; the node's check is what when_full applies to.
constexpr std::uint64_t log_headroom = 64ULL << 20;
// Releases are synced at most this often under load (see open()).
constexpr std::chrono::milliseconds ledger_interval{200};
}  // namespace

DiskBuffer::DiskBuffer(Options options, Logger& log, Metrics& metrics, Counter& dropped,
                       const std::atomic<bool>& stopping, std::function<void(const std::string&)> fail,
                       buffer::FileLayer* files)
    : options_(std::move(options)),
      log_(log),
      dropped_(dropped),
      stopping_(stopping),
      fail_(std::move(fail)),
      own_files_(files ? nullptr : buffer::make_posix_file_layer()),
      files_(files ? *files : *own_files_),
      events_gauge_(metrics.gauge("buffer_events", "events in the disk buffer (stored or being written)")),
      bytes_gauge_(metrics.gauge("buffer_bytes", "bytes of the disk buffer's segment files")),
      oldest_age_gauge_(metrics.gauge("buffer_oldest_age_ms", "age of the oldest event in the disk buffer")),
      set_aside_(metrics.counter("buffer_records_set_aside", "damaged disk buffer records set aside")),
      write_failures_(metrics.counter("buffer_write_failures", "failed disk buffer writes (retried)")),
      lost_batches_(metrics.counter("buffer_lost_batches", "batches read from the disk buffer and lost downstream")),
      recycler_(std::make_shared<BatchRecycler>()) {}

DiskBuffer::~DiskBuffer() {
    close();
}

void DiskBuffer::close() {
    {
        std::lock_guard lock(mutex_);
        discarding_ = true;
    }
    staged_changed_.notify_all();
    synced_changed_.notify_all();
    readable_changed_.notify_all();
    if (writer_.joinable()) writer_.join();
    if (syncer_.joinable()) syncer_.join();
    if (remover_.joinable()) remover_.join();
    std::deque<Staged> unsynced;
    {
        std::lock_guard lock(mutex_);
        unsynced = take_unsynced_locked();
    }
    for (auto& s : unsynced)
        lose(s.ticket);
    std::scoped_lock both(mutex_, reader_mutex_);
    ready_.clear();
    ready_events_ = 0;
    log_store_.reset();  // persists the release ledger
}

void DiskBuffer::open() {
    buffer::SegmentLogOptions o;
    o.dir = options_.dir;
    o.max_bytes = options_.max_bytes + std::max(options_.max_bytes, log_headroom);
    o.segment_bytes = std::min(options_.segment_bytes, std::max<std::uint64_t>(options_.max_bytes / 8, 1 << 16));
    // The batches themselves wait in ready_: the log only tracks where their records are (take_front), a few
    // dozen bytes each, for more events than ready_ holds unless they are larger than 1.5 KiB.
    o.memory_window_payloads = false;
    o.memory_window_bytes = options_.max_staged_events * ready_events_per_staged * 1536;
    // Releases persisted at most every 200 ms (and whenever the node goes idle): a crash repeats at most that
    // much of what was delivered, for a small file rewritten and synced five times a second under load.
    o.ledger_interval = ledger_interval;
    // Deleting a released segment (a synced ledger, and an unlink that frees 32 MiB of pages) is left to a
    // thread of its own, so the node's thread, which ends most batches, is not held up by it.
    o.deferred_removal = true;
    log_store_ = std::make_unique<buffer::SegmentLog>(files_, o);
    const buffer::RecoveryReport report = log_store_->open();
    for (const auto& p : report.problems) {
        using Kind = buffer::RecoveryReport::Problem::Kind;
        if (p.kind == Kind::ignored || p.kind == Kind::removed) continue;
        log_.warn("disk buffer: ", p.file.string(), " at byte ", p.offset, ": ", p.detail,
                  p.records ? " (" + std::to_string(p.records) + " records set aside)" : std::string());
    }
    set_aside_.add(report.records_set_aside);
    set_aside_seen_ = report.records_set_aside;
    read_log_ = report.records > 0;  // the backlog goes first
    if (report.records)
        log_.info("disk buffer: ", report.records, " events waiting from an earlier run (", report.bytes, " bytes in ",
                  report.segments, " segments); they go before new events");
    update_gauges();
    writer_ = std::thread([this] { write_loop(); });
    syncer_ = std::thread([this] { sync_loop(); });
    remover_ = std::thread([this] { remove_loop(); });
}

NodeInput::Push DiskBuffer::push(SharedBatch batch, Ticket* ticket) {
    const std::size_t n = batch->size();
    if (n == 0) {
        done(ticket);
        return Push::accepted;
    }
    // Encoding happens here, on the producer's thread and outside the lock: the writer's thread is the one
    // that waits for fsync, so it should do as little else as possible.
    Staged staged{std::move(batch), ticket, {}, {}};
    {
        // Encoding buffers come back from the writer with their capacity: a fresh one per batch would be a
        // fresh mapping and a page fault per page, which cost more than the encoding itself.
        std::lock_guard spare(spare_mutex_);
        if (!spare_records_.empty()) {
            staged.records = std::move(spare_records_.back());
            spare_records_.pop_back();
        }
    }
    staged.ends.reserve(n);
    for (const Event& e : *staged.batch) {
        buffer::encode_event(e, staged.records);
        staged.ends.push_back(static_cast<std::uint32_t>(staged.records.size()));
    }
    std::unique_lock lock(mutex_);
    // Two batches may always wait, whatever their size, so a producer can stage the next while the writer
    // takes the last; beyond that, max_staged_events.
    const auto room = [&] { return staged_.size() < 2 || staged_events_ + n <= options_.max_staged_events; };
    const auto full = [&] { return log_store_ && log_store_->stats().bytes >= options_.max_bytes; };
    // drop_newest drops what does not fit on disk: a full buffer, or one whose writes fail (ENOSPC); a disk
    // that is merely slower than the producers holds them back, as a memory buffer's consumer would.
    if (!discarding_ && !failed_ && options_.when_full == WhenFull::drop_newest &&
        (full() || (!room() && write_failing_.load()))) {
        lock.unlock();
        dropped_.add(n);
        if (options_.dropped_full) options_.dropped_full->add(n);
        done(ticket);  // dropped by the node's own policy: finished, and counted
        return Push::dropped;
    }
    staged_changed_.wait(lock, [&] { return discarding_ || failed_ || room(); });
    if (discarding_ || failed_) {
        lock.unlock();
        dropped_.add(n);
        lose(ticket);
        return Push::dropped;
    }
    staged_.push_back(std::move(staged));
    staged_events_ += n;
    lock.unlock();
    staged_changed_.notify_all();
    return Push::accepted;
}

void DiskBuffer::write_loop() {
    std::unique_lock lock(mutex_);
    auto last_commit = std::chrono::steady_clock::now();
    for (;;) {
        // One group written and not yet taken by the syncer is enough to keep it busy; the next waits with the
        // producers, where it can still grow.
        staged_changed_.wait(lock, [&] { return discarding_ || failed_ || (!staged_.empty() && written_.empty()); });
        if (discarding_ || failed_) return;
        if (options_.fsync_interval.count() > 0) {
            // Gather for the rest of the interval: one sync for everything staged meanwhile.
            staged_changed_.wait_until(lock, last_commit + options_.fsync_interval,
                                       [&] { return discarding_ || failed_; });
            if (discarding_ || failed_) return;
        }
        std::deque<Staged> group;
        group.swap(staged_);
        // Producers may stage the next group while this one is written and the one before is synced.
        std::size_t group_events = 0;
        for (const auto& s : group)
            group_events += s.batch->size();
        staged_events_ -= group_events;
        writing_ = true;
        lock.unlock();
        staged_changed_.notify_all();

        std::size_t written = 0;
        try {
            written = write_group(group);
        } catch (const std::exception& e) {
            // SyncFailed (cutting back a failed write failed), LogFailed (the syncer's fdatasync failed
            // meanwhile) or a log full past its headroom: the node cannot go on.
            fail_writes(group, e.what(), writing_);
            return;
        }
        last_commit = std::chrono::steady_clock::now();
        std::size_t written_events = 0;
        for (std::size_t i = 0; i < written; ++i)
            written_events += group[i].batch->size();
        if (written < group.size() && options_.when_full == WhenFull::drop_newest && !write_failing_.load()) {
            // Full: what did not fit is dropped and counted, as push() drops what arrives while it is full;
            // kept, it would wait for room only a delivery can make, and hold up the end of the input.
            std::size_t dropped = 0;
            for (std::size_t i = written; i < group.size(); ++i) {
                dropped += group[i].batch->size();
                done(group[i].ticket);
            }
            dropped_.add(dropped);
            if (options_.dropped_full) options_.dropped_full->add(dropped);
            written_events += dropped;
            group.resize(written);
        }

        lock.lock();
        writing_ = false;
        for (std::size_t i = 0; i < written; ++i)
            written_.push_back(std::move(group[i]));
        staged_events_ += group_events - written_events;  // what goes back to be tried again
        // What could not be written goes back in front of what arrived meanwhile, in order.
        for (std::size_t i = group.size(); i > written; --i)
            staged_.push_front(std::move(group[i - 1]));
        lock.unlock();
        synced_changed_.notify_all();
        staged_changed_.notify_all();
        lock.lock();
        if (written < group.size())
            staged_changed_.wait_for(lock, options_.retry_interval, [&] { return discarding_ || failed_; });
    }
}

void DiskBuffer::sync_loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        synced_changed_.wait(lock, [&] { return discarding_ || failed_ || !written_.empty(); });
        // Written groups are still synced when the buffer closes: the node's successor gets their records.
        if (failed_ || (written_.empty() && discarding_)) return;
        std::deque<Staged> group;
        group.swap(written_);
        syncing_ = true;
        lock.unlock();
        staged_changed_.notify_all();  // the writer may write the next group while this one is synced

        try {
            log_store_->sync_written();
        } catch (const std::exception& e) {
            fail_writes(group, e.what(), syncing_);
            return;
        }
        update_gauges();
        for (auto& s : group)
            done(s.ticket);  // synced: the buffer answers for these events now
        {
            std::lock_guard spare(spare_mutex_);
            for (auto& s : group) {
                if (spare_records_.size() >= max_spare_buffers) break;
                s.records.clear();
                spare_records_.push_back(std::move(s.records));
            }
        }
        lock.lock();
        syncing_ = false;
        for (auto& s : group) {
            ready_events_ += s.batch->size();
            ready_.push_back({std::move(s.batch), s.first_seq});
        }
        while (ready_events_ > options_.max_staged_events * ready_events_per_staged) {
            ready_events_ -= ready_.front().batch->size();  // far behind: that one is read from the log
            ready_.pop_front();
            read_log_ = true;
        }
        ++sync_generation_;
        lock.unlock();
        staged_changed_.notify_all();
        readable_changed_.notify_all();
        lock.lock();
    }
}

void DiskBuffer::fail_writes(std::deque<Staged>& group, const std::string& what, bool& holding) {
    std::unique_lock lock(mutex_);
    holding = false;
    const bool first = !failed_;  // the writer and the syncer may both find the log failed
    failed_ = true;
    std::deque<Staged> unsynced = take_unsynced_locked();
    lock.unlock();
    for (auto& s : group)
        lose(s.ticket);
    for (auto& s : unsynced)
        lose(s.ticket);
    staged_changed_.notify_all();
    synced_changed_.notify_all();
    readable_changed_.notify_all();
    if (first)
        fail_node(what +
                  "; its staged events are lost (upstream was told), what was synced stays on disk for the "
                  "next start");
}

std::size_t DiskBuffer::write_group(std::deque<Staged>& group) {
    std::size_t admitted = 0;
    try {
        for (; admitted < group.size(); ++admitted) {
            const buffer::SegmentLog::Stats stats = log_store_->stats();
            // An oversized batch still goes into an empty buffer, so it can never wait for ever.
            if (stats.bytes >= options_.max_bytes && stats.records > 0) break;
            Staged& staged = group[admitted];
            std::uint32_t begin = 0;
            for (std::uint32_t end : staged.ends) {
                std::uint64_t seq = 0;
                const std::string_view record(staged.records.data() + begin, end - begin);
                if (log_store_->append(record, seq) == buffer::SegmentLog::Append::full)
                    throw std::length_error("the disk buffer's log is full past its headroom");
                if (begin == 0) staged.first_seq = seq;
                begin = end;
            }
        }
        if (admitted == 0) return 0;
        log_store_->write();
    } catch (const buffer::WriteFailed& e) {
        write_failures_.add();
        write_failing_ = true;
        log_.error(e.what(), "; intake stops until a retry in ", options_.retry_interval.count(),
                   " ms succeeds (upstream is held back, nothing accepted is lost)");
        return 0;  // the log has cut back everything since the last write: the whole group is tried again
    }
    write_failing_ = false;
    return admitted;
}

NodeInput::Pop DiskBuffer::pop(SharedBatch& out, Ticket*& ticket, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        std::uint64_t generation = 0;
        std::optional<Ready> ready;
        bool read_log = false;
        {
            std::lock_guard lock(mutex_);
            if (discarding_ || failed_) return Pop::end;
            generation = sync_generation_;
            if (!ready_.empty()) ready = ready_.front();
            read_log = read_log_;
        }
        if (ready) {
            // Keeping up: the batch just written is handed on as it is, its records marked handed out.
            buffer::SegmentLog::Take take;
            {
                std::lock_guard lock(reader_mutex_);
                take = log_store_->take_front(ready->first_seq, ready->batch->size());
                if (take == buffer::SegmentLog::Take::taken)
                    handed_out_.emplace(ready->first_seq, ready->first_seq + ready->batch->size());
            }
            if (take != buffer::SegmentLog::Take::not_yet) {
                std::lock_guard lock(mutex_);
                if (!ready_.empty() && ready_.front().first_seq == ready->first_seq) {
                    ready_events_ -= ready_.front().batch->size();
                    ready_.pop_front();
                }
            }
            if (take == buffer::SegmentLog::Take::taken) {
                ticket = Ticket::root(*this, ready->first_seq);
                out = std::move(ready->batch);
                return Pop::batch;
            }
            if (take == buffer::SegmentLog::Take::passed) continue;
            read_log = true;  // not_yet: records before it, or it is not in the log's window
        }
        EventBatch events;
        std::uint64_t first = 0, end = 0;
        bool doomed = false;
        // Only the log knows of a backlog, of batches ready_ let go and of records past its window; otherwise
        // what is synced reaches ready_ right after, and reading it from the files first would be a waste.
        if (read_log) {
            std::lock_guard lock(reader_mutex_);
            records_.clear();
            const std::size_t n = log_store_->next(records_, options_.read_batch);
            const std::uint64_t set_aside = log_store_->stats().set_aside;
            if (set_aside > set_aside_seen_) {
                set_aside_.add(set_aside - set_aside_seen_);
                log_.warn("disk buffer: ", set_aside - set_aside_seen_,
                          " damaged records set aside while reading (copied to the buffer's set-aside folder)");
                set_aside_seen_ = set_aside;
            }
            if (n > 0) {
                first = records_.front().seq;
                end = records_.back().seq + 1;
                // Recycled storage: decoding assigns into strings that already have their capacity.
                events = recycler_->take(n);
                std::size_t kept = 0;
                for (const auto& r : records_) {
                    if (auto problem = buffer::decode_event(r.payload, events[kept])) {
                        set_aside_.add();
                        log_.error("disk buffer: record ", r.seq, " cannot be read: ", *problem, "; skipped");
                        continue;
                    }
                    ++kept;
                }
                events.resize(kept);
                if (kept == 0) {
                    doomed = log_store_->release(first, end - first);
                } else {
                    handed_out_.emplace(first, end);
                }
            }
        }
        if (doomed) {
            std::lock_guard lock(mutex_);
            removal_wanted_ = true;
            staged_changed_.notify_all();
        }
        if (read_log && events.empty() && first != end) continue;  // every record read was damaged: read on
        if (read_log && events.empty()) {
            std::lock_guard lock(mutex_);
            if (sync_generation_ == generation) read_log_ = false;  // caught up with the log
        }
        if (!events.empty()) {
            ticket = Ticket::root(*this, first);
            out = recycler_->share(std::move(events));
            update_gauges();
            return Pop::batch;
        }
        std::unique_lock lock(mutex_);
        const bool upstream_done = producers_ == 0 && staged_.empty() && writers_idle();
        // Once upstream is done nothing new arrives: a backlog left then waits on disk when the host is
        // stopping, and is read to its end when the input simply ran out.
        if (upstream_done && (stopping_.load() || generation == sync_generation_)) {
            lock.unlock();
            std::lock_guard reader(reader_mutex_);
            log_store_->checkpoint();
            return Pop::end;
        }
        if (!readable_changed_.wait_until(lock, deadline, [&] {
                return sync_generation_ != generation || discarding_ || failed_ ||
                       (producers_ == 0 && staged_.empty() && writers_idle());
            })) {
            lock.unlock();
            std::lock_guard reader(reader_mutex_);
            log_store_->checkpoint();  // idle: persist releases so a crash repeats as little as possible
            update_gauges();
            return Pop::timeout;
        }
    }
}

void DiskBuffer::batch_ended(std::uint64_t number, BatchOutcome outcome) {
    bool doomed = false;
    {
        std::lock_guard lock(reader_mutex_);
        auto it = handed_out_.find(number);
        if (it == handed_out_.end() || !log_store_) return;  // closed: the next start hands them out again
        const std::uint64_t end = it->second;
        handed_out_.erase(it);
        if (outcome == BatchOutcome::finished) {
            doomed = log_store_->release(number, end - number);
        } else {
            lost_batches_.add();
            log_.error("disk buffer: events ", number, " to ", end - 1,
                       " were lost downstream (a node failed or threw); they stay in the buffer and are handed "
                       "out again at the next start");
        }
    }
    if (doomed) {
        std::lock_guard lock(mutex_);
        removal_wanted_ = true;
    }
    staged_changed_.notify_all();  // the remover, and a writer that waits for the room released segments make
}

void DiskBuffer::remove_loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        staged_changed_.wait(lock, [&] { return discarding_ || failed_ || removal_wanted_; });
        if (discarding_ || failed_) return;  // what is left is deleted by the next open()
        // Under load the ledger is synced every ledger_interval anyway; waiting that long lets the deletion
        // rely on it instead of syncing a ledger of its own, between the commit groups' fdatasyncs.
        staged_changed_.wait_for(lock, ledger_interval, [&] { return discarding_ || failed_; });
        if (discarding_ || failed_) return;
        removal_wanted_ = false;
        lock.unlock();
        try {
            log_store_->remove_released();
        } catch (const buffer::WriteFailed& e) {
            log_.warn(e.what(), "; the released segment stays until the next start deletes it");
        } catch (const std::exception& e) {
            fail_node(e.what());
            return;
        }
        update_gauges();
        staged_changed_.notify_all();  // room for a writer that waits
        lock.lock();
    }
}

void DiskBuffer::add_producer() {
    std::lock_guard lock(mutex_);
    ++producers_;
}

void DiskBuffer::producer_done() {
    {
        std::lock_guard lock(mutex_);
        --producers_;
    }
    readable_changed_.notify_all();
}

void DiskBuffer::discard() {
    std::deque<Staged> discarded;
    {
        std::lock_guard lock(mutex_);
        discarding_ = true;
        discarded.swap(staged_);
        for (auto& s : discarded)
            dropped_.add(s.batch->size());
        staged_events_ = 0;
        ready_.clear();
        ready_events_ = 0;
    }
    staged_changed_.notify_all();
    readable_changed_.notify_all();
    for (auto& s : discarded)
        lose(s.ticket);
}

std::size_t DiskBuffer::queued_events() const {
    std::lock_guard lock(mutex_);
    return staged_events_ + (log_store_ ? log_store_->stats().records : 0);
}

void DiskBuffer::update_gauges() {
    if (!log_store_) return;
    const auto stats = log_store_->stats();
    events_gauge_.set(static_cast<std::int64_t>(stats.records));
    bytes_gauge_.set(static_cast<std::int64_t>(stats.bytes));
    const auto age =
        stats.oldest == std::chrono::system_clock::time_point{}
            ? std::chrono::milliseconds(0)
            : std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now() - stats.oldest);
    oldest_age_gauge_.set(age.count());
}

std::deque<DiskBuffer::Staged> DiskBuffer::take_unsynced_locked() {
    std::deque<Staged> out = std::move(written_);
    written_.clear();
    for (auto& s : staged_)
        out.push_back(std::move(s));
    staged_.clear();
    staged_events_ = 0;
    return out;
}

bool DiskBuffer::writers_idle() const {
    return !writing_ && !syncing_ && written_.empty();
}

void DiskBuffer::fail_node(const std::string& reason) {
    if (fail_) fail_(reason);
}

}  // namespace hubflow::core
