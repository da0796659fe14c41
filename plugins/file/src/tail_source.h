#pragma once
// The `tail` source: reads JSON Lines files, one event per line, and optionally follows them as they grow,
// across rotation (rename + new file, or truncation), with the read position checkpointed per file.
//
// Threading: configure(), start(), run() and stop() are called by the host one after the other; run() is the
// node's own thread and the only one touching the state below, so there are no locks.
//
// Files are known by identity (device + inode), not by name: a path is only where a file was last seen. A
// rotation therefore needs no special case: the renamed file keeps its identity and is read to its end (a
// writer may still append to it for a while, hence `rotate_wait_ms`), and the new file at the path is a new
// identity, read from its beginning. A file renamed to another name the pattern also matches (app.log ->
// app.log.1 under "app.log*") is the same file and is not read twice.
//
// Hot path: a file is read with pread() in large blocks into one buffer shared by every file; complete lines
// are cut out with memchr and copied into the events of a recycled batch (Context::reusable_batch), so steady
// state allocates nothing per line. Only a file's offset survives between reads: an incomplete last line is
// read again next time rather than copied aside, which costs a few hundred bytes per block.
//
// Delivery: the source tracks how each batch it emits ends (SDK 1.2 acknowledgements) and checkpoints a file
// only up to the last line of the last batch that is finished downstream with every batch before it, so a
// restart after kill -9 reads again exactly what was not delivered (at-least-once: lines delivered but not yet
// checkpointed come twice, at most what was in flight plus one checkpoint interval). A batch that ends lost (a
// node failed or threw) freezes the checkpoint for the rest of the run. When the source stops it waits up to
// `drain_wait_ms` for what it emitted to end before it writes its last checkpoint. Under a host that cannot
// track deliveries the checkpoint covers what was emitted, as before SDK 1.2.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hubflow/component.h"
#include "hubflow/schema.h"

namespace hubflow::file {

class TailSource final : public Source, private DeliveryListener {
public:
    TailSource() = default;
    ~TailSource() override;
    TailSource(const TailSource&) = delete;
    TailSource& operator=(const TailSource&) = delete;

    static ComponentDescription describe();

    void configure(const ConfigView& config, Context& context) override;
    // Loads the checkpoint and opens the files the path matches now. Without `follow`, a plain path (no glob)
    // that does not exist refuses the start.
    void start() override;
    // follow=false: reads every file to its end (a last line without '\n' included) and returns.
    // follow=true: reads what is there, then polls for growth, new files, rotation and truncation until the
    // host stops. Either way the pending batch is emitted and the checkpoint written before returning.
    void run() override;
    void stop() override;

private:
    struct FileId {
        dev_t dev = 0;
        ino_t ino = 0;
        bool operator==(const FileId&) const = default;
    };
    struct FileIdHash {
        std::size_t operator()(const FileId& id) const noexcept {
            return std::hash<std::uint64_t>()(static_cast<std::uint64_t>(id.ino) * 0x9E3779B97F4A7C15ULL ^
                                              static_cast<std::uint64_t>(id.dev));
        }
    };
    struct Tracked {
        FileId id;
        std::string path;  // where it was last seen
        int fd = -1;
        std::uint64_t offset = 0;     // first byte not yet turned into an event or skipped
        std::uint64_t line = 0;       // lines consumed before `offset`, counted from where reading began
        bool skipping = false;        // `offset` is inside a line longer than max_line_bytes
        std::uint64_t skip_from = 0;  // where that line began
        bool gone = false;            // no path the pattern matches names it any more (renamed away, deleted)
        std::chrono::steady_clock::time_point last_activity{};
        // Acknowledged progress: the position after the last line whose batch, and every batch before it, is
        // finished downstream. `generation` counts truncations, so a late report about the old content is
        // ignored.
        std::uint64_t safe_offset = 0;
        std::uint64_t safe_line = 0;
        std::uint64_t generation = 0;
    };
    // Where a file stands after the last of its lines in one batch.
    struct Mark {
        FileId id;
        std::uint64_t generation;
        std::uint64_t offset;
        std::uint64_t line;
    };
    struct InFlight {
        std::uint64_t number;
        std::vector<Mark> marks;
    };
    struct Checkpoint {
        std::uint64_t offset = 0;
        std::uint64_t line = 0;
        bool skipping = false;
        std::uint64_t skip_from = 0;
        std::uint32_t fingerprint_bytes = 0;
        std::uint64_t fingerprint = 0;
    };
    // A payload field copied into metadata. Most payloads lack some of these fields: memmem() for the quoted
    // name rules them out faster than a scan of the JSON, and the names a line does hold are then looked up
    // in one pass (find_json_members). (libstdc++'s Boyer-Moore-Horspool searcher, with its hashed skip table,
    // was several times slower than memmem().)
    struct MetaKey {
        explicit MetaKey(const std::string& field) : name(field), quoted('"' + field + '"') {}
        const std::string name;
        const std::string quoted;  // "site_id" with its quotes
    };

    std::vector<std::string> matching_paths() const;
    // Matches the pattern against the file system: new files are opened (at their checkpoint, at the start,
    // or at the end for start_at=end during the first scan), renamed ones follow their identity, and files no
    // path names any more are marked gone and, after rotate_wait_ms without growth, read to the end and closed.
    void scan(bool first);
    void open_new(const std::string& path, const FileId& id, bool first);
    void retire(Tracked& file);
    // Reads from `offset` up to `max_blocks` blocks or the end; `final` also takes a last line without '\n'.
    // Returns whether anything was consumed.
    bool drain(Tracked& file, bool final, int max_blocks);
    void consume_line(Tracked& file, const char* begin, const char* end, std::uint64_t next_offset);
    void skipped(const Tracked& file, std::uint64_t line_start, std::uint64_t bytes);
    void emit_pending();
    // DeliveryListener: any thread; only queues the report for the source's own thread.
    void batch_ended(std::uint64_t number, BatchOutcome outcome) override;
    // On the source's thread: applies the reports that arrived, in batch order.
    void settle_ended();
    // Waits until every emitted batch has ended (or one was lost), or `deadline`.
    void wait_in_flight(std::chrono::steady_clock::time_point deadline);
    bool unsettled(const Tracked& file) const;

    void load_checkpoints();
    void save_checkpoints();
    bool fingerprint(int fd, std::uint64_t offset, std::uint32_t& bytes, std::uint64_t& value) const;

    // Settings.
    std::string pattern_;
    bool is_glob_ = false;
    bool follow_ = true;
    bool start_at_end_ = false;
    bool checkpoint_ = false;
    std::size_t batch_size_ = 1024;
    std::size_t max_line_bytes_ = 102400;
    std::string kind_;
    std::chrono::milliseconds poll_interval_{250};
    std::chrono::milliseconds rotate_wait_{5000};
    std::chrono::milliseconds checkpoint_interval_{1000};
    std::chrono::milliseconds drain_wait_{5000};

    Context* context_ = nullptr;
    Counter* bytes_read_ = nullptr;
    Counter* long_lines_ = nullptr;
    Counter* retired_ = nullptr;
    Counter* truncations_ = nullptr;
    Gauge* files_open_ = nullptr;

    const MetaKey kind_key_{"kind"}, site_key_{"site_id"}, user_key_{"user_id"}, id_key_{"id"};

    std::vector<std::unique_ptr<Tracked>> files_;  // in the order found: a glob's files are read in name order
    std::unordered_map<FileId, Checkpoint, FileIdHash> checkpoints_;  // loaded, not yet matched to a file
    std::string checkpoint_path_;
    bool checkpoint_dirty_ = false;
    std::chrono::steady_clock::time_point next_checkpoint_{};
    std::chrono::steady_clock::time_point next_scan_{};

    // Acknowledgements. Everything but the `ended_` hand-over is the source thread's own.
    bool tracking_ = false;
    bool frozen_ = false;  // a batch ended lost: no checkpoint moves for the rest of the run
    std::uint64_t emitted_batches_ = 0;
    std::vector<Mark> marks_;         // of the batch being filled
    std::deque<InFlight> in_flight_;  // emitted, oldest first, until it and all before it have ended
    std::unordered_map<std::uint64_t, BatchOutcome> ended_early_;  // ended while an older batch is in flight
    std::mutex ended_mutex_;
    std::condition_variable ended_changed_;
    std::vector<std::pair<std::uint64_t, BatchOutcome>> ended_;  // reports not yet applied
    Counter* lost_batches_ = nullptr;

    std::unique_ptr<char[]> buffer_;
    std::size_t buffer_size_ = 0;
    EventBatch batch_;
    std::size_t filled_ = 0;

    // Messages about skipped lines: at most one a second, with a count of the ones held back.
    std::chrono::steady_clock::time_point last_skip_log_{};
    bool skip_logged_ = false;
    std::uint64_t unlogged_skips_ = 0;
    bool warned_no_match_ = false;
};

}  // namespace hubflow::file
