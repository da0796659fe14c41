#pragma once
// The storage engine of a disk buffer: an append-only log of records in segment files, with a small ledger of
// which records were released (delivered), so a restart hands out only what is still owed. On-disk format,
// recovery rules and the duplicate window: core/src/buffer/README.md.
//
// Threads: append() and write() are called from one thread (the writer), sync_written() from that thread or
// one other (a syncer, so the next commit group is written while the last one is synced), next() from one
// other (the reader), concurrently; release(), checkpoint() and stats() from any thread. No call holds a lock
// the reader needs while it writes or syncs. open() and the destructor run alone.
//
// Guarantee: a record is durable once the sync() after its append() returns. It is then handed out by next()
// exactly once per run of the log, until release() covers it; after a crash it is handed out again unless its
// release was persisted (see checkpoint()).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "buffer/file_layer.h"

namespace hubflow::core::buffer {

// Byte layout of version 1 (all integers little-endian); README.md explains it.
namespace format {
inline constexpr char segment_magic[8] = {'H', 'F', 'B', 'U', 'F', 'S', 'E', 'G'};
inline constexpr char ledger_magic[8] = {'H', 'F', 'B', 'U', 'F', 'L', 'D', 'G'};
inline constexpr std::uint32_t version = 1;
inline constexpr std::size_t segment_header_size = 40;
inline constexpr std::uint32_t record_magic = 0x31524648;  // "HFR1" on disk
inline constexpr std::size_t record_header_size = 32;
inline constexpr std::uint32_t max_payload = 1U << 30;
std::string segment_file_name(std::uint64_t id);  // seg-<16 hex digits>.hfb
inline constexpr const char* ledger_file_name = "ledger";
inline constexpr const char* recent_ledger_file_name = "ledger.recent";
inline constexpr const char* set_aside_dir_name = "set-aside";
}  // namespace format

struct SegmentLogOptions {
    std::filesystem::path dir;                    // the node's buffer directory (created 0700)
    std::uint64_t max_bytes = 256 << 20;          // bytes on disk (segments) before append() says full
    std::uint64_t segment_bytes = 32 << 20;       // a new segment starts once the current one is past this
    std::uint64_t memory_window_bytes = 8 << 20;  // payloads of this run served from memory up to this
    // false: the window keeps only where each record is, for take_front() by a caller that keeps the payloads
    // itself; next() then reads the files (the page cache) and nothing is copied or allocated per record.
    bool memory_window_payloads = true;
    std::size_t read_chunk_bytes = 1 << 20;  // reads of segment files (backlog, consumer far behind)
    // Releases are persisted (written and synced) at most this often by sync()/release() (and always by
    // checkpoint() and the destructor); releases not yet synced are the duplicate window after a power cut.
    std::chrono::milliseconds ledger_interval{1000};
    // In between, once this many records were released since the last write, they are written to the page
    // cache without a sync (ledger.recent), which a kill -9 keeps: the window after a crash of the process
    // stays this small, and a crash loop faster than ledger_interval cannot grow it from run to run.
    std::uint64_t ledger_every_records = 4096;
    std::uint64_t max_segment_ids = std::uint64_t{1} << 32;  // segment file ids wrap around modulo this
    // true: release() leaves deleting released segments (a synced ledger and an unlink that frees the file's
    // pages, milliseconds for a 32 MiB segment) to remove_released(), for a thread other than the reader's.
    bool deferred_removal = false;
};

// Thrown for a file this version cannot read (a newer format version); never guessed at.
class UnsupportedFormat : public std::runtime_error {
public:
    UnsupportedFormat(std::filesystem::path path, std::uint32_t version);
    const std::filesystem::path& path() const { return path_; }
    std::uint32_t version() const { return version_; }

private:
    std::filesystem::path path_;
    std::uint32_t version_;
};

// Writing the data of sync() failed (ENOSPC, EIO, EROFS, ...). Every record appended since the last
// successful sync() is dropped (the files are cut back); the caller stops intake and may append them again.
class WriteFailed : public FileError {
public:
    explicit WriteFailed(const FileError& cause) : FileError(cause, "disk buffer: ") {}
};

// fdatasync or a directory fsync failed: what the kernel dropped cannot be known, so the log refuses every
// further call (LogFailed) and must be reopened; fsync is never retried on the same file.
class SyncFailed : public FileError {
public:
    explicit SyncFailed(const FileError& cause) : FileError(cause, "disk buffer (now failed): ") {}
};

class LogFailed : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct RecoveryReport {
    struct Problem {
        enum class Kind {
            set_aside,       // records whose checksum failed, or bytes between good records that do not parse
            torn_tail,       // bytes after the last good record of the newest segment: never read (left in place)
            damaged_tail,    // bytes after the last good record of an older segment (records in it set aside)
            damaged_header,  // a segment header that fails its checksum; its records were still read
            removed,         // a file with nothing to recover (a segment whose first sync never returned, ...)
            moved_aside,     // a damaged ledger or segment, renamed (*.damaged) so it can be inspected
            ignored          // a file that is not the log's
        };
        Kind kind;
        std::filesystem::path file;
        std::uint64_t offset = 0;
        std::uint64_t length = 0;     // bytes
        std::uint64_t first_seq = 0;  // sequence numbers [first_seq, end_seq) the region held (set_aside,
        std::uint64_t end_seq = 0;    // damaged_tail; torn_tail: the seq the next record would have had);
                                      // records counts those not released before
        std::uint64_t records = 0;
        std::string detail;
    };
    std::uint64_t records = 0;  // records recovered and not yet released: the backlog next() hands out first
    std::uint64_t bytes = 0;    // bytes of segment files kept
    std::uint64_t segments = 0;
    std::uint64_t records_set_aside = 0;  // unreleased records lost to damage (sum of Problem::records)
    std::uint64_t torn_bytes_cut = 0;     // torn tails, left in their files and never read
    std::uint64_t next_seq = 0;           // the sequence number the next append gets
    std::vector<Problem> problems;        // set-aside bytes are also copied to <dir>/set-aside/
};

struct Record {
    std::uint64_t seq;
    std::string payload;
};

class SegmentLog {
public:
    SegmentLog(FileLayer& files, SegmentLogOptions options);
    ~SegmentLog();  // persists the release state when the log is healthy; never throws
    SegmentLog(const SegmentLog&) = delete;
    SegmentLog& operator=(const SegmentLog&) = delete;

    // Recovers. Throws UnsupportedFormat naming the file for a newer format version, FileError naming the
    // path when the directory cannot be created, listed or written; damaged data never makes it throw.
    RecoveryReport open();

    enum class Append { ok, full };
    // Stages a record; durable once sync() returns. `full` when max_bytes (or every segment id) is in use;
    // throws std::length_error for a payload that could never fit.
    Append append(std::string_view payload, std::uint64_t& seq_out);
    // Writes and fdatasyncs everything appended (and fsyncs the directory for new files): write() then
    // sync_written(). Throws WriteFailed or SyncFailed (see above).
    void sync();
    // Writes everything appended to the files (the page cache) without syncing: not durable, not readable yet.
    // Throws WriteFailed (what this call was writing is dropped; what earlier calls wrote stays).
    void write();
    // Syncs everything written so far and makes it readable; the records are durable once it returns.
    // Throws SyncFailed.
    void sync_written();

    // Appends to `out` up to `max_records` records not yet handed out, in seq order: the recovered backlog
    // first, then synced appends. Returns how many it appended; 0 when nothing is available (never blocks).
    std::size_t next(std::vector<Record>& out, std::size_t max_records);
    // For a caller that still holds the contents of records it appended (a disk buffer handing on the batch it
    // just wrote): hands out the `count` records from `first_seq` on without copying them, when they are the
    // next ones next() would return and all still in the memory window (`taken`); `passed` when some of them
    // were handed out already; otherwise (`not_yet`) changes nothing, and next() brings them in due course.
    enum class Take { taken, not_yet, passed };
    Take take_front(std::uint64_t first_seq, std::uint64_t count);
    // The records [first_seq, first_seq + count) were delivered; in any order, any grouping, repeats are
    // harmless. A segment is deleted once all its records are released (the synced ledger is written first):
    // here, or with deferred_removal by remove_released(), and then release() returns true when one waits.
    // Throws std::out_of_range for records not handed out yet, SyncFailed when writing the ledger fails so.
    bool release(std::uint64_t first_seq, std::uint64_t count);
    // Deletes the segments whose records are all released; returns whether there were any. Throws
    // WriteFailed (the file stays, and the next open() deletes it), SyncFailed.
    bool remove_released();
    // Persists the release state now (when it changed): after it returns, released records do not come back
    // after a crash. Call it when the reader goes idle. Throws WriteFailed or SyncFailed.
    void checkpoint();

    struct Stats {
        std::uint64_t records;    // appended and not released (set-aside records are not counted)
        std::uint64_t bytes;      // bytes of segment files, including what is appended and not yet synced
        std::uint64_t set_aside;  // records set aside since open() (recovery and reads)
        std::chrono::system_clock::time_point oldest;  // append time of the oldest record; {} when empty
    };
    Stats stats() const;

private:
    struct Segment;
    struct Staged;
    struct StagedRecord;
    struct MemoryRecord;
    class Scanner;

    void check_usable() const;
    enum class Persist {
        periodic,  // when ledger_interval or ledger_every_records says so; skipped if the other thread writes
        durable    // now, and synced
    };
    void persist_ledger(Persist how);
    void write_ledger(const std::string& bytes);         // ledger.tmp, fdatasync, rename, directory fsync
    void write_recent_ledger(const std::string& bytes);  // appended to ledger.recent, no sync
    // Merges a ledger file into the release state; false when it fails its checksum. Throws UnsupportedFormat
    // for a newer version of a synced ledger (an unsynced one may be torn anywhere, so it is only dropped).
    bool read_ledger(const std::filesystem::path& path, std::uint64_t& next, bool synced);
    void preserve(const std::filesystem::path& file, std::uint64_t offset, std::uint64_t length);
    std::uint64_t mark_released_locked(std::uint64_t first, std::uint64_t end);
    bool released_locked(std::uint64_t seq) const;
    bool fully_released_locked(std::uint64_t first, std::uint64_t end) const;
    struct Doomed {
        std::uint64_t id;
        std::uint64_t bytes;
        std::uint64_t released_as_of;  // ledger_changes_ once all its records were released
    };
    bool doom_released_locked();  // moves fully released, sealed segments to doomed_
    void forget_removed_locked(const Doomed& d);
    std::size_t read_from_files(std::vector<Record>& out, std::size_t max_records);
    void rollback_staged();
    std::filesystem::path path_of(std::uint64_t id) const;
    std::filesystem::path temp_path_of(std::uint64_t id) const;

    FileLayer& files_;
    const SegmentLogOptions options_;
    std::atomic<bool> failed_{false};
    bool opened_ = false;

    // Shared state, under mutex_.
    mutable std::mutex mutex_;
    std::deque<Segment> segments_;                     // by first_seq; only what is synced
    std::set<std::uint64_t> ids_in_use_;               // segments_, what is staged or written, and doomed_
    std::vector<Doomed> doomed_;                       // released segments waiting for remove_released()
    std::map<std::uint64_t, std::uint64_t> released_;  // [start, end) ranges of released sequence numbers
    std::uint64_t ledger_changes_ = 0;                 // counts changes of the release state
    std::uint64_t ledger_written_changes_ = 0;         // ... as of the last ledger write
    std::uint64_t ledger_synced_changes_ = 0;          // ... as of the last synced ledger write
    std::uint64_t released_since_ledger_ = 0;          // records released since the ledger was last written
    std::uint64_t synced_end_ = 0;                     // every seq below this is synced (or was recovered)
    std::uint64_t handed_end_ = 0;                     // every seq below this was handed out (or skipped)
    std::uint64_t live_records_ = 0;                   // synced, not released
    std::uint64_t set_aside_ = 0;
    std::deque<MemoryRecord> memory_;  // synced records of this run not handed out yet, while they fit
    std::uint64_t memory_bytes_ = 0;
    bool overflow_ = false;  // some synced records not handed out are only in the files

    // Reader state (reader thread only): where next() reads the files.
    std::uint64_t read_segment_first_ = 0;  // first_seq of the segment being read
    std::uint64_t read_offset_ = 0;
    std::unique_ptr<File> read_file_;
    std::uint64_t read_file_first_ = ~std::uint64_t{0};
    std::unique_ptr<Scanner> read_scanner_;

    // Writer state (writer thread only).
    std::vector<Staged> staged_;  // per file touched since the last write(), in order
    std::shared_ptr<File> active_file_;
    std::uint64_t active_id_ = 0;
    std::uint64_t active_first_ = 0;
    std::uint64_t active_size_ = 0;  // including what is staged
    std::uint64_t next_seq_ = 0;
    std::uint64_t last_id_ = 0;
    bool have_active_ = false;  // appends go to the active segment; false: the next append starts one
    // Between write() and sync_written(), under written_mutex_.
    std::mutex written_mutex_;
    std::vector<Staged> written_;  // written to the files, not synced, in order
    std::string spare_bytes_;      // staging capacity kept between syncs
    std::vector<StagedRecord> spare_records_;
    std::atomic<std::int64_t> oldest_staged_ms_{0};
    std::atomic<std::uint64_t> segment_bytes_on_disk_{0};  // written under mutex_
    std::atomic<std::uint64_t> staged_bytes_{0};           // appended and not yet synced (staged or written)
    std::atomic<std::uint64_t> staged_records_{0};

    std::mutex removing_mutex_;  // one remove_released() at a time

    // Ledger writes (either thread), under ledger_mutex_; never held with mutex_ during I/O.
    std::mutex ledger_mutex_;
    std::chrono::steady_clock::time_point ledger_synced_{};
    std::unique_ptr<File> recent_file_;  // ledger.recent, open for appending
    std::uint64_t recent_bytes_ = 0;
};

}  // namespace hubflow::core::buffer
