#pragma once
// The `file` sink: appends each event's payload as one line of a JSON Lines file.
//
// Threading: every member function is called from the node's own thread (see hubflow/component.h), so the
// sink holds no locks.
//
// Hot path, per batch: each event's file is resolved from the precompiled path template (skipping the
// formatting altogether while the second and the fieldless template do not change), its line is appended to
// that file's buffer, and then every touched file gets one write(). Files are opened lazily, kept open up to
// `max_open_files` and closed least recently used first.
//
// Crash safety: lines are only ever appended whole. A file found ending in a partial line (a crash during a
// write) has that tail moved to `<path>.partial` before anything is appended, so readers of the main file
// never see a broken line and no byte is thrown away.

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hubflow/component.h"
#include "hubflow/path_template.h"
#include "hubflow/schema.h"

namespace hubflow::file {

enum class FsyncPolicy { never, interval, batch };

// Delivery (SDK 1.2): a batch is delivered as durably as the fsync policy promises. With `batch` it is synced
// before deliver() returns; with `interval` its acknowledgement waits for the next fdatasync (at most
// fsync_interval_ms), so an upstream checkpoint or disk buffer never passes events a power cut could still
// take; with `never` it counts as delivered once write(2) has it (the page cache: safe from kill -9, not from
// a power cut). Events whose write or sync failed are settled lost.
class FileSink final : public AcknowledgingSink {
public:
    FileSink() = default;
    ~FileSink() override;
    FileSink(const FileSink&) = delete;
    FileSink& operator=(const FileSink&) = delete;

    static ComponentDescription describe();

    void configure(const ConfigView& config, Context& context) override;
    // Opens the file at once when the path has no placeholders or strftime fields, so a file that cannot be
    // opened refuses the start instead of failing the first batch.
    void start() override;
    // Throws std::runtime_error naming the file and the system's reason when a file cannot be written; the
    // other files of the batch are still written first.
    void deliver(const EventBatch& batch, BatchAck ack) override;
    void tick() override;
    std::chrono::milliseconds tick_interval() const override;
    // fdatasync() on every file written since its last sync, whatever the fsync policy.
    void flush() override;
    void stop() override;

private:
    struct File {
        std::string path;
        int fd = -1;
        std::uint64_t size = 0;          // bytes in the file; this sink is its only writer (the path is claimed)
        std::string pending;             // this batch's lines, written in one go
        bool dirty = false;              // written since the last fdatasync
        bool new_entry = false;          // created since the last sync: its directory entry needs an fsync too
        bool in_batch = false;           // listed in batch_files_
        std::list<File*>::iterator lru;  // place in lru_ while open
    };

    File& entry(std::string_view path);
    void write_pending(File& file);
    void append(File& file, std::string_view data);
    void ensure_open(File& file);
    void open_file(File& file);
    // Returns the file's size after moving a partial last line, if any, to <path>.partial.
    std::uint64_t repair_tail(const File& file, int fd, std::uint64_t size);
    void rotate(File& file);
    void sync(File& file);
    void close(File& file, bool sync_first);
    void evict_least_recently_used();
    void forget_if_idle(File& file);
    void sync_all();
    void write_batch(const EventBatch& batch);
    // fsync=interval: settles what waited for this sync, delivered when it worked, lost when it did not.
    void settle_unsynced(bool synced);
    void sync_and_settle();
    // Errors are gathered so that one bad file does not keep the others from being written or synced; the
    // call then throws them as one.
    void note_error(const std::string& message);
    void throw_noted_errors();

    // Settings.
    std::optional<PathTemplate> template_;
    std::uint64_t rotate_bytes_ = 0;
    int keep_files_ = 5;
    FsyncPolicy fsync_ = FsyncPolicy::interval;
    std::chrono::milliseconds fsync_interval_{1000};
    std::size_t max_open_files_ = 64;

    Context* context_ = nullptr;
    Counter* bytes_written_ = nullptr;
    Counter* files_rotated_ = nullptr;
    Counter* partial_lines_repaired_ = nullptr;
    Gauge* open_files_gauge_ = nullptr;

    // Files that are open or hold lines for the batch being written. Keys view File::path, which lives as
    // long as its entry.
    std::unordered_map<std::string_view, std::unique_ptr<File>> files_;
    std::list<File*> lru_;  // open files, least recently used first
    std::size_t open_count_ = 0;
    std::vector<File*> batch_files_;
    std::string first_error_;
    std::size_t error_count_ = 0;

    // Path resolution cache across events and batches.
    std::string path_;  // scratch, then the last rendered path
    std::int64_t path_second_ = 0;
    bool path_valid_ = false;

    std::chrono::steady_clock::time_point next_sync_{};
    std::vector<std::pair<BatchAck, std::size_t>> unsynced_;  // written, waiting for the interval's sync
};

}  // namespace hubflow::file
