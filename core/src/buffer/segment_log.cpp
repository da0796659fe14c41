#include "buffer/segment_log.h"

#include <libdeflate.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>

namespace hubflow::core::buffer {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t time_sample_every = 1024;

void put32(char* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        p[i] = static_cast<char>(v >> (8 * i));
}
void put64(char* p, std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
        p[i] = static_cast<char>(v >> (8 * i));
}
std::uint32_t get32(const char* p) {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}
std::uint64_t get64(const char* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

// CRC-32 as zlib computes it (ISO-HDLC polynomial), by libdeflate's carry-less-multiply version.
std::uint32_t checksum(const char* data, std::size_t size) {
    return ::libdeflate_crc32(0, data, size);
}

// Append times feed only the oldest record's age: the coarse clock (a few ms) costs a fraction of the fine one.
std::int64_t now_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string segment_header(std::uint64_t id, std::uint64_t first_seq) {
    std::string h(format::segment_header_size, '\0');
    std::memcpy(h.data(), format::segment_magic, 8);
    put32(h.data() + 8, format::version);
    put32(h.data() + 12, static_cast<std::uint32_t>(format::segment_header_size));
    put64(h.data() + 16, id);
    put64(h.data() + 24, first_seq);
    put32(h.data() + 32, checksum(h.data(), 32));
    return h;
}

// Parses a segment file name, seg-<16 hex digits>.hfb.
bool parse_segment_name(const std::string& name, std::uint64_t& id) {
    if (name.size() != 4 + 16 + 4 || name.compare(0, 4, "seg-") != 0 || name.compare(20, 4, ".hfb") != 0) return false;
    id = 0;
    for (std::size_t i = 4; i < 20; ++i) {
        char c = name[i];
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (digit < 0) return false;
        id = (id << 4) | static_cast<std::uint64_t>(digit);
    }
    return true;
}

bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string format::segment_file_name(std::uint64_t id) {
    static const char hex[] = "0123456789abcdef";
    std::string name = "seg-0000000000000000.hfb";
    for (int i = 0; i < 16; ++i)
        name[19 - i] = hex[(id >> (4 * i)) & 0xf];
    return name;
}

UnsupportedFormat::UnsupportedFormat(fs::path path, std::uint32_t version)
    : std::runtime_error("disk buffer file " + path.string() + " has format version " + std::to_string(version) +
                         "; this hubflow reads version " + std::to_string(format::version) +
                         " only (written by a newer hubflow? move the directory away or upgrade)"),
      path_(std::move(path)),
      version_(version) {}

struct SegmentLog::Segment {
    std::uint64_t id = 0;
    std::uint64_t first_seq = 0;  // sequence numbers [first_seq, end_seq) belong to this segment
    std::uint64_t end_seq = 0;
    std::uint64_t limit = 0;       // the reader reads up to here (synced, recovered)
    std::uint64_t file_bytes = 0;  // size on disk
    bool sealed = false;           // a later segment's header is durable: this one may be deleted once released
    std::vector<std::pair<std::uint64_t, std::uint64_t>> skip;  // damaged byte ranges found by recovery
    std::vector<std::pair<std::uint64_t, std::int64_t>> times;  // (seq, append ms) every time_sample_every
};

struct SegmentLog::StagedRecord {
    std::uint64_t seq;
    std::uint64_t offset;  // of the payload in Staged::bytes
    std::uint32_t size;
    std::int64_t ms;
};

struct SegmentLog::Staged {
    using Rec = StagedRecord;
    std::uint64_t id = 0;
    std::uint64_t first_seq = 0;
    bool create = false;
    std::uint64_t size_before = 0;
    std::string bytes;
    std::vector<Rec> records;
    std::shared_ptr<File> file;  // set by write(); shared with the appends that follow into the same file
};

struct SegmentLog::MemoryRecord {
    Record record;  // the payload is empty unless memory_window_payloads
    std::uint64_t segment_first;
    std::uint64_t end_offset;
    std::uint32_t size;  // of the payload
};

// Reads records from a segment file in large chunks. A record header is trusted only when its magic and its
// own checksum match and it fits below the limit; otherwise the scanner resynchronises on the next header that
// passes those checks, so a damaged length can never send it past good records or into garbage.
class SegmentLog::Scanner {
public:
    Scanner(File& file, std::uint64_t limit, std::size_t chunk)
        : file_(file), limit_(limit), chunk_(std::max<std::size_t>(chunk, 4096)) {}

    void set_limit(std::uint64_t limit) {
        limit_ = limit;
        // Bytes past the old limit may have been read while they were still being written.
        if (start_ + buffer_.size() > limit_) buffer_.resize(limit_ > start_ ? limit_ - start_ : 0);
    }

    struct Step {
        enum class Kind { record, damage, end } kind = Kind::end;
        std::uint64_t next = 0;  // offset after the record or the damaged bytes
        std::uint64_t seq = 0;   // record: its seq; damage before a good record: that record's seq
        std::int64_t ms = 0;
        std::uint32_t size = 0;  // record: payload bytes
        bool payload_ok = false;
        std::string_view payload;  // valid until the next call
    };

    Step step(std::uint64_t pos) {
        Step s;
        if (pos >= limit_) return s;
        if (header_at(pos, s)) {
            s.kind = Step::Kind::record;
            const char* h = view(pos, format::record_header_size + s.size);
            s.payload = std::string_view(h + format::record_header_size, s.size);
            s.payload_ok = checksum(s.payload.data(), s.payload.size()) == get32(h + 24);
            return s;
        }
        s.kind = Step::Kind::damage;
        s.next = limit_;
        std::uint64_t q = pos + 1;
        char magic[4];
        put32(magic, format::record_magic);
        while (q + format::record_header_size <= limit_) {
            auto span = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_, limit_ - q));
            const char* p = view(q, span);
            if (p == nullptr || span < 4) break;
            const void* hit = ::memmem(p, span, magic, 4);
            if (hit == nullptr) {
                q += span - 3;
                continue;
            }
            std::uint64_t candidate = q + static_cast<std::uint64_t>(static_cast<const char*>(hit) - p);
            Step found;
            if (header_at(candidate, found)) {
                s.next = candidate;
                s.seq = found.seq;
                return s;
            }
            q = candidate + 1;
        }
        return s;
    }

    // A pointer to [pos, pos + size) or nullptr when that passes the limit or the end of the file.
    const char* view(std::uint64_t pos, std::size_t size) {
        if (pos + size > limit_) return nullptr;
        if (pos >= start_ && pos + size <= start_ + buffer_.size()) return buffer_.data() + (pos - start_);
        auto want = static_cast<std::size_t>(std::min<std::uint64_t>(std::max(size, chunk_), limit_ - pos));
        buffer_.resize(want);
        start_ = pos;
        std::size_t got = file_.read_at(pos, buffer_.data(), want);
        buffer_.resize(got);
        if (got < size) return nullptr;
        return buffer_.data();
    }

    // Keeps RSS bounded once a huge record has passed.
    void trim() {
        if (buffer_.capacity() > 2 * chunk_) {
            std::string().swap(buffer_);
            start_ = 0;
        }
    }

private:
    bool header_at(std::uint64_t pos, Step& s) {
        const char* h = view(pos, format::record_header_size);
        if (h == nullptr) return false;
        if (get32(h) != format::record_magic || checksum(h, 28) != get32(h + 28)) return false;
        std::uint32_t size = get32(h + 4);
        if (size > format::max_payload || pos + format::record_header_size + size > limit_) return false;
        s.seq = get64(h + 8);
        s.ms = static_cast<std::int64_t>(get64(h + 16));
        s.next = pos + format::record_header_size + size;
        s.size = size;
        return true;
    }

    File& file_;
    std::uint64_t limit_;
    std::size_t chunk_;
    std::string buffer_;
    std::uint64_t start_ = 0;
};

SegmentLog::SegmentLog(FileLayer& files, SegmentLogOptions options) : files_(files), options_(std::move(options)) {
    if (options_.max_segment_ids < 2) throw std::invalid_argument("disk buffer: max_segment_ids must be >= 2");
}

SegmentLog::~SegmentLog() {
    if (!opened_ || failed_) return;
    try {
        persist_ledger(Persist::durable);
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw; a crash loses no more
    }
}

fs::path SegmentLog::path_of(std::uint64_t id) const {
    return options_.dir / format::segment_file_name(id);
}

fs::path SegmentLog::temp_path_of(std::uint64_t id) const {
    return options_.dir / (format::segment_file_name(id) + ".tmp");
}

void SegmentLog::check_usable() const {
    if (!opened_) throw std::logic_error("disk buffer " + options_.dir.string() + ": open() it first");
    if (failed_)
        throw LogFailed("disk buffer " + options_.dir.string() +
                        " failed (an fsync failed, so what is on disk is unknown); it must be reopened");
}

// ---- release state --------------------------------------------------------------------------------------

std::uint64_t SegmentLog::mark_released_locked(std::uint64_t first, std::uint64_t end) {
    if (first >= end) return 0;
    std::uint64_t start = first;
    std::uint64_t stop = end;
    std::uint64_t already = 0;
    auto it = released_.upper_bound(first);
    if (it != released_.begin() && std::prev(it)->second >= first) --it;
    while (it != released_.end() && it->first <= stop) {
        std::uint64_t lo = std::max(it->first, first);
        std::uint64_t hi = std::min(it->second, end);
        if (hi > lo) already += hi - lo;
        start = std::min(start, it->first);
        stop = std::max(stop, it->second);
        it = released_.erase(it);
    }
    released_[start] = stop;
    ++ledger_changes_;
    return (end - first) - already;
}

bool SegmentLog::released_locked(std::uint64_t seq) const {
    auto it = released_.upper_bound(seq);
    if (it == released_.begin()) return false;
    return seq < std::prev(it)->second;
}

bool SegmentLog::fully_released_locked(std::uint64_t first, std::uint64_t end) const {
    if (first >= end) return true;
    auto it = released_.upper_bound(first);
    if (it == released_.begin()) return false;
    --it;
    return first >= it->first && it->second >= end;
}

bool SegmentLog::doom_released_locked() {
    for (auto it = segments_.begin(); it != segments_.end();) {
        if (it->sealed && fully_released_locked(it->first_seq, it->end_seq)) {
            // Its id and bytes stay in use until the file is gone: a new segment under the same id (ids wrap
            // around) must never be renamed into place before the old file is removed.
            doomed_.push_back({it->id, it->file_bytes, ledger_changes_});
            it = segments_.erase(it);
        } else {
            ++it;
        }
    }
    return !doomed_.empty();
}

bool SegmentLog::remove_released() {
    check_usable();
    std::unique_lock removing(removing_mutex_);
    std::vector<Doomed> doomed;
    {
        std::lock_guard lock(mutex_);
        doomed.swap(doomed_);
    }
    if (doomed.empty()) return false;
    // The synced ledger first: a segment is deleted only once its release is durable, so its records can
    // never reappear after a crash, and its seqs are never taken for damage next to the gap it leaves. A
    // synced write since the segment was released (every ledger_interval under load) already says so.
    bool synced = false;
    {
        std::lock_guard lock(mutex_);
        synced = std::all_of(doomed.begin(), doomed.end(),
                             [&](const Doomed& d) { return ledger_synced_changes_ >= d.released_as_of; });
    }
    if (!synced) {
        try {
            persist_ledger(Persist::durable);
        } catch (const WriteFailed&) {  // NOLINT(bugprone-empty-catch)
            // A full disk: deleting is what frees it, and is safe in either order (README.md).
        }
    }
    std::size_t removed = 0;
    try {
        for (; removed < doomed.size(); ++removed) {
            try {
                files_.remove(path_of(doomed[removed].id));
            } catch (const FileError& e) {
                if (e.error() != ENOENT) throw WriteFailed(e);
            }
        }
    } catch (...) {
        // Its records are released (the ledger says so), so the next open() deletes it; until then its id and
        // bytes stay in use.
        std::lock_guard lock(mutex_);
        for (std::size_t i = 0; i < removed; ++i)
            forget_removed_locked(doomed[i]);
        throw;
    }
    std::lock_guard lock(mutex_);
    for (const auto& d : doomed)
        forget_removed_locked(d);
    return true;
}

void SegmentLog::forget_removed_locked(const Doomed& d) {
    ids_in_use_.erase(d.id);
    segment_bytes_on_disk_ -= std::min<std::uint64_t>(d.bytes, segment_bytes_on_disk_);
}

// Ledger v1: magic[8] | u32 version | u32 ranges | u64 next_seq | ranges x (u64 start, u64 end) | u32 crc32
void SegmentLog::persist_ledger(Persist how) {
    std::unique_lock<std::mutex> writing(ledger_mutex_, std::defer_lock);
    if (how != Persist::periodic) {
        writing.lock();
    } else if (!writing.try_lock()) {
        return;  // the other thread is writing it right now
    }
    const auto now = std::chrono::steady_clock::now();
    // Synced at most every ledger_interval (and whenever asked): what a power cut may take back is bounded by
    // that; in between, updates every ledger_every_records go to the page cache only, which a kill -9 keeps.
    const bool durable = how == Persist::durable || now - ledger_synced_ >= options_.ledger_interval;
    std::string bytes;
    std::uint64_t changes = 0;
    {
        std::lock_guard lock(mutex_);
        changes = ledger_changes_;
        if (changes == (durable ? ledger_synced_changes_ : ledger_written_changes_)) return;
        if (how == Persist::periodic && !durable && released_since_ledger_ < options_.ledger_every_records) return;
        released_since_ledger_ = 0;
        bytes.resize(24 + 16 * released_.size() + 4);
        std::memcpy(bytes.data(), format::ledger_magic, 8);
        put32(bytes.data() + 8, format::version);
        put32(bytes.data() + 12, static_cast<std::uint32_t>(released_.size()));
        put64(bytes.data() + 16, synced_end_);
        char* p = bytes.data() + 24;
        for (const auto& [start, end] : released_) {
            put64(p, start);
            put64(p + 8, end);
            p += 16;
        }
        put32(p, checksum(bytes.data(), bytes.size() - 4));
    }
    if (durable) {
        write_ledger(bytes);
        ledger_synced_ = now;
    } else {
        write_recent_ledger(bytes);
    }
    std::lock_guard lock(mutex_);
    ledger_written_changes_ = changes;
    if (durable) ledger_synced_changes_ = changes;
}

void SegmentLog::write_recent_ledger(const std::string& bytes) {
    // Appended, never synced and never renamed over the synced ledger: a crash can cut the last image short
    // (open() then reads the images before it) but can never take the synced ledger with it. Appending to an
    // open file costs a write(2); emptying one (O_TRUNC) makes ext4 start writing it back at close, a
    // millisecond each time, so the file only starts over past recent_ledger_limit.
    constexpr std::uint64_t recent_ledger_limit = 1 << 20;
    try {
        if (recent_file_ && recent_bytes_ + bytes.size() > recent_ledger_limit) recent_file_.reset();
        if (!recent_file_) {
            recent_file_ = files_.open(options_.dir / format::recent_ledger_file_name, OpenMode::create_replace);
            recent_bytes_ = 0;
        }
        recent_file_->append(bytes);
        recent_bytes_ += bytes.size();
    } catch (const FileError& e) {
        recent_file_.reset();  // whatever it ends in, the next write starts the file over
        throw WriteFailed(e);
    }
}

void SegmentLog::write_ledger(const std::string& bytes) {
    const fs::path tmp = options_.dir / "ledger.tmp";
    const fs::path path = options_.dir / format::ledger_file_name;
    std::unique_ptr<File> file;
    try {
        file = files_.open(tmp, OpenMode::create_replace);
        file->append(bytes);
    } catch (const FileError& e) {
        if (file) {
            file.reset();
            try {
                files_.remove(tmp);       // give the space back
            } catch (const FileError&) {  // NOLINT(bugprone-empty-catch): the next open() removes it
            }
        }
        throw WriteFailed(e);
    }
    try {
        file->sync();
    } catch (const FileError& e) {
        failed_ = true;
        throw SyncFailed(e);
    }
    file.reset();
    try {
        files_.rename(tmp, path);
    } catch (const FileError& e) {
        throw WriteFailed(e);
    }
    try {
        files_.sync_directory(options_.dir);
    } catch (const FileError& e) {
        failed_ = true;
        throw SyncFailed(e);
    }
}

void SegmentLog::checkpoint() {
    check_usable();
    persist_ledger(Persist::durable);
}

// ---- recovery -------------------------------------------------------------------------------------------

void SegmentLog::preserve(const fs::path& file, std::uint64_t offset, std::uint64_t length) {
    // Diagnostics only: never let a failure here stop recovery or reading.
    try {
        const fs::path dir = options_.dir / format::set_aside_dir_name;
        files_.create_directories(dir);
        auto source = files_.open(file, OpenMode::read);
        std::string bytes(static_cast<std::size_t>(std::min<std::uint64_t>(length, 1 << 20)), '\0');
        bytes.resize(source->read_at(offset, bytes.data(), bytes.size()));
        auto copy =
            files_.open(dir / (file.filename().string() + "-" + std::to_string(offset) + ".bin"), OpenMode::create_new);
        copy->append(bytes);
    } catch (const FileError&) {  // NOLINT(bugprone-empty-catch): the position is in the report anyway
    }
}

bool SegmentLog::read_ledger(const fs::path& path, std::uint64_t& next, bool synced) {
    auto file = files_.open(path, OpenMode::read);
    std::string bytes(static_cast<std::size_t>(file->size()), '\0');
    bytes.resize(file->read_at(0, bytes.data(), bytes.size()));
    file.reset();
    // The synced ledger is one image; ledger.recent is images appended one after the other, of which every
    // whole one counts (each states releases that happened) and the first that is not whole ends it.
    std::size_t pos = 0;
    std::size_t images = 0;
    while (pos < bytes.size()) {
        const char* p = bytes.data() + pos;
        const std::size_t avail = synced ? bytes.size() : bytes.size() - pos;
        const bool ok = avail >= 28 && std::memcmp(p, format::ledger_magic, 8) == 0;
        const std::uint32_t version = ok ? get32(p + 8) : 0;
        const std::uint32_t count = ok ? get32(p + 12) : 0;
        const std::uint64_t length = 24 + 16 * static_cast<std::uint64_t>(count) + 4;
        const auto sums_up = [&](const char* image) {
            return (synced ? avail == length : avail >= length) &&
                   checksum(image, length - 4) == get32(image + length - 4);
        };
        bool whole = ok && sums_up(p);
        if (ok && version != format::version) {
            // A damaged version field is told from a newer format by the checksum taken with version 1.
            std::string as_v1(p, std::min<std::uint64_t>(avail, length));
            put32(as_v1.data() + 8, format::version);
            if (sums_up(as_v1.data())) {
                whole = true;
            } else if (synced) {
                throw UnsupportedFormat(path, version);
            } else {
                // Never synced, so torn bytes could pose as any version: only whole version 1 images count.
                // A newer hubflow's data is still refused, by its synced ledger and its segments.
                whole = false;
            }
        }
        if (!whole) break;
        next = std::max(next, get64(p + 16));
        for (std::size_t i = 0; i < count; ++i)
            mark_released_locked(get64(p + 24 + 16 * i), get64(p + 32 + 16 * i));
        ++images;
        pos += length;
        if (synced) break;
    }
    return images > 0;
}

RecoveryReport SegmentLog::open() {
    if (opened_) throw std::logic_error("disk buffer " + options_.dir.string() + ": already open");
    RecoveryReport report;
    files_.create_directories(options_.dir);
    std::vector<std::string> names = files_.list(options_.dir);
    std::sort(names.begin(), names.end());

    // The ledger: released ranges and the next sequence number when it was written. Its recent update, when
    // one is there, adds what was released since (both are true statements of releases, so their union is).
    std::uint64_t ledger_next = 0;
    const fs::path ledger_path = options_.dir / format::ledger_file_name;
    const fs::path recent_path = options_.dir / format::recent_ledger_file_name;
    const auto present = [&](const char* name) { return std::find(names.begin(), names.end(), name) != names.end(); };
    if (present(format::ledger_file_name)) {
        if (!read_ledger(ledger_path, ledger_next, true)) {
            // Without it everything on disk is handed out again: duplicates, never loss.
            const fs::path aside = options_.dir / "ledger.damaged";
            files_.rename(ledger_path, aside);
            report.problems.push_back({RecoveryReport::Problem::Kind::moved_aside, ledger_path, 0, 0, 0, 0, 0,
                                       "ledger fails its checksum; moved to " + aside.string() +
                                           "; records it released will be handed out again"});
        }
    }
    bool recent = present(format::recent_ledger_file_name);
    if (recent && !read_ledger(recent_path, ledger_next, false)) {
        // Never synced, so a crash may leave it cut short: only its releases repeat (duplicates, never loss).
        files_.remove(recent_path);
        report.problems.push_back({RecoveryReport::Problem::Kind::removed, recent_path, 0, 0, 0, 0, 0,
                                   "an update of the ledger cut short by a crash; the releases it held since the "
                                   "last synced ledger will be handed out again"});
        recent = false;
    }

    struct Found {
        Segment segment;
        fs::path path;
        std::unique_ptr<File> file;
        std::uint64_t size = 0;
        bool header_ok = false;
        std::uint64_t key = 0;  // sorts segments: the header's first seq, or the first good record's
    };
    std::vector<Found> found;
    std::uint64_t max_first = 0;
    for (const auto& name : names) {
        std::uint64_t id = 0;
        const fs::path path = options_.dir / name;
        if (name == format::ledger_file_name || name == format::recent_ledger_file_name ||
            name == format::set_aside_dir_name || ends_with(name, ".damaged"))
            continue;
        if (name == "ledger.tmp") {
            files_.remove(path);  // a ledger write that did not finish; the previous ledger stands
            continue;
        }
        if (name.size() == 28 && ends_with(name, ".hfb.tmp") && parse_segment_name(name.substr(0, 24), id)) {
            // A segment whose first sync() did not return: nothing in it was acknowledged.
            files_.remove(path);
            report.problems.push_back({RecoveryReport::Problem::Kind::removed, path, 0, 0, 0, 0, 0,
                                       "a new segment whose first sync did not finish"});
            continue;
        }
        if (!parse_segment_name(name, id)) {
            report.problems.push_back(
                {RecoveryReport::Problem::Kind::ignored, path, 0, 0, 0, 0, 0, "not a disk buffer file; left alone"});
            continue;
        }
        Found f;
        f.path = path;
        f.segment.id = id;
        f.file = files_.open(path, OpenMode::read);
        f.size = f.file->size();
        if (f.size < format::segment_header_size) {
            f.file.reset();
            files_.remove(path);
            report.problems.push_back({RecoveryReport::Problem::Kind::removed, path, 0, f.size, 0, 0, 0,
                                       "shorter than a segment header (created just before a crash)"});
            continue;
        }
        char h[format::segment_header_size];
        f.file->read_at(0, h, sizeof h);
        bool magic = std::memcmp(h, format::segment_magic, 8) == 0;
        std::uint32_t version = get32(h + 8);
        bool crc = checksum(h, 32) == get32(h + 32);
        if (magic && version != format::version) {
            put32(h + 8, format::version);
            if (checksum(h, 32) != get32(h + 32)) throw UnsupportedFormat(path, version);
            crc = false;  // a flipped version field: reported as a damaged header below
        }
        f.header_ok = magic && crc;
        if (f.header_ok) {
            f.key = get64(h + 24);
            max_first = std::max(max_first, f.key);
        } else {
            Scanner scanner(*f.file, f.size, options_.read_chunk_bytes);
            std::uint64_t pos = format::segment_header_size;
            auto step = scanner.step(pos);
            if (step.kind == Scanner::Step::Kind::damage && step.next < f.size) step = scanner.step(step.next);
            if (step.kind != Scanner::Step::Kind::record) {
                f.file.reset();
                fs::path aside = path;
                aside += ".damaged";
                files_.rename(path, aside);
                report.problems.push_back(
                    {RecoveryReport::Problem::Kind::moved_aside, path, 0, f.size, 0, 0, 0,
                     "segment header fails its checksum and no record in it parses; moved to " + aside.string()});
                continue;
            }
            f.key = step.seq;
            report.problems.push_back({RecoveryReport::Problem::Kind::damaged_header, path, 0,
                                       format::segment_header_size, 0, 0, 0,
                                       "segment header fails its checksum; its records are read by their own"});
        }
        found.push_back(std::move(f));
    }
    std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
        return a.key != b.key ? a.key < b.key : a.segment.id < b.segment.id;
    });

    // Scan every record: checksums, sequence numbers, torn tails.
    std::uint64_t floor = 0;
    struct PendingTail {
        fs::path path;
        std::uint64_t offset, length, first_seq;
    };
    std::optional<PendingTail> pending_tail;  // a damaged tail of an older segment: ends where the next begins
    auto settle_tail = [&](std::uint64_t end_seq) {
        if (!pending_tail) return;
        // The seqs up to the next segment, but no more than the damaged bytes could hold (the segments between
        // may have been released and deleted).
        end_seq = std::clamp(end_seq, pending_tail->first_seq,
                             pending_tail->first_seq + pending_tail->length / format::record_header_size + 1);
        std::uint64_t lost = mark_released_locked(pending_tail->first_seq, end_seq);
        report.records_set_aside += lost;
        report.problems.push_back({RecoveryReport::Problem::Kind::damaged_tail, pending_tail->path,
                                   pending_tail->offset, pending_tail->length, pending_tail->first_seq,
                                   std::max(end_seq, pending_tail->first_seq), lost,
                                   "bytes after the last good record of an older segment"});
        if (lost > 0) preserve(pending_tail->path, pending_tail->offset, pending_tail->length);
        pending_tail.reset();
    };
    for (std::size_t i = 0; i < found.size(); ++i) {
        Found& f = found[i];
        const bool newest = i + 1 == found.size();
        Segment& seg = f.segment;
        seg.first_seq = std::max(f.key, floor);
        settle_tail(seg.first_seq);
        std::uint64_t expected = seg.first_seq;
        std::uint64_t pos = format::segment_header_size;
        bool any_record = false;
        Scanner scanner(*f.file, f.size, options_.read_chunk_bytes);
        while (true) {
            auto step = scanner.step(pos);
            if (step.kind == Scanner::Step::Kind::end) break;
            if (step.kind == Scanner::Step::Kind::record) {
                if (step.seq < expected) {  // an older copy of a record (never acknowledged); the newer counts
                    pos = step.next;
                    continue;
                }
                mark_released_locked(expected, step.seq);  // a gap no damage explains: nothing to hand out
                any_record = true;
                if (!step.payload_ok) {
                    std::uint64_t lost = mark_released_locked(step.seq, step.seq + 1);
                    report.records_set_aside += lost;
                    report.problems.push_back({RecoveryReport::Problem::Kind::set_aside, f.path, pos, step.next - pos,
                                               step.seq, step.seq + 1, lost, "record payload fails its checksum"});
                    seg.skip.emplace_back(pos, step.next);
                    if (lost > 0) preserve(f.path, pos, step.next - pos);
                } else if (seg.times.empty() || (step.seq - seg.first_seq) % time_sample_every == 0) {
                    seg.times.emplace_back(step.seq, step.ms);
                }
                expected = step.seq + 1;
                pos = step.next;
                continue;
            }
            // Damaged bytes.
            if (step.next >= f.size) {
                if (newest && expected < ledger_next) {
                    // The ledger was written after every seq below its next seq was synced: these bytes held
                    // synced records, so this is damage, not a write cut short.
                    std::uint64_t end_seq =
                        std::min(ledger_next, expected + (f.size - pos) / format::record_header_size + 1);
                    std::uint64_t lost = mark_released_locked(expected, end_seq);
                    report.records_set_aside += lost;
                    report.problems.push_back({RecoveryReport::Problem::Kind::set_aside, f.path, pos, f.size - pos,
                                               expected, end_seq, lost,
                                               "bytes after the last good record held synced records"});
                    seg.skip.emplace_back(pos, f.size);
                    if (lost > 0) preserve(f.path, pos, f.size - pos);
                    expected = end_seq;
                } else if (newest) {
                    report.torn_bytes_cut += f.size - pos;
                    // A bit flip in the newest record looks the same; first_seq says which record that would be.
                    report.problems.push_back({RecoveryReport::Problem::Kind::torn_tail, f.path, pos, f.size - pos,
                                               expected, expected, 0,
                                               "bytes after the last good record (a write cut short)"});
                    // Left in the file, never read: recovery changes no segment, so a crash during open() or
                    // a bit flip taken for a torn write destroys nothing, and the next open() reports it again.
                    seg.skip.emplace_back(pos, f.size);
                } else {
                    pending_tail = PendingTail{f.path, pos, f.size - pos, expected};
                    seg.skip.emplace_back(pos, f.size);
                }
                break;
            }
            std::uint64_t end_seq = std::max(step.seq, expected);
            std::uint64_t lost = mark_released_locked(expected, end_seq);
            report.records_set_aside += lost;
            report.problems.push_back({RecoveryReport::Problem::Kind::set_aside, f.path, pos, step.next - pos, expected,
                                       end_seq, lost, "bytes between good records do not parse as records"});
            seg.skip.emplace_back(pos, step.next);
            if (lost > 0) preserve(f.path, pos, step.next - pos);
            expected = end_seq;
            pos = step.next;
        }
        seg.end_seq = expected;
        seg.limit = pos;
        seg.file_bytes = f.size;
        seg.sealed = true;  // recovered segments are never appended to
        floor = std::max(floor, expected);
        if (!any_record && !pending_tail) {
            f.file.reset();
            if (f.header_ok) {
                files_.remove(f.path);
                report.problems.push_back(
                    {RecoveryReport::Problem::Kind::removed, f.path, 0, f.size, 0, 0, 0, "segment without records"});
            } else {
                fs::path aside = f.path;
                aside += ".damaged";
                files_.rename(f.path, aside);
                report.problems.push_back({RecoveryReport::Problem::Kind::moved_aside, f.path, 0, f.size, 0, 0, 0,
                                           "damaged segment without a new record; moved to " + aside.string()});
            }
            continue;
        }
        f.file.reset();
        segments_.push_back(std::move(seg));
    }
    settle_tail(std::max(floor, std::max(ledger_next, max_first)));

    // Every sequence number below next_seq that is not in a segment is released: nothing to hand out there.
    const std::uint64_t next = std::max({floor, ledger_next, max_first});
    std::uint64_t cursor = 0;
    for (const auto& seg : segments_) {
        mark_released_locked(cursor, seg.first_seq);
        cursor = seg.end_seq;
    }
    mark_released_locked(cursor, next);
    while (!released_.empty() && std::prev(released_.end())->first >= next)
        released_.erase(std::prev(released_.end()));
    if (!released_.empty() && std::prev(released_.end())->second > next) std::prev(released_.end())->second = next;
    std::uint64_t covered = 0;
    for (const auto& [start, end] : released_)
        covered += end - start;
    live_records_ = next - covered;

    for (const auto& seg : segments_)
        ids_in_use_.insert(seg.id);
    for (const auto& seg : segments_)
        segment_bytes_on_disk_ += seg.file_bytes;
    // Ids follow the newest segment; a new directory starts at 0.
    last_id_ = segments_.empty() ? options_.max_segment_ids - 1 : segments_.back().id;
    doom_released_locked();

    next_seq_ = next;
    synced_end_ = next;
    handed_end_ = 0;
    if (!segments_.empty()) {
        read_segment_first_ = segments_.front().first_seq;
        read_offset_ = format::segment_header_size;
        overflow_ = true;  // the backlog is read from the files, new records wait behind it
    }
    report.records = live_records_;
    report.segments = segments_.size();
    report.next_seq = next;
    set_aside_ = report.records_set_aside;
    opened_ = true;
    // Written even when unchanged: this is also where an unwritable directory shows.
    ++ledger_changes_;
    bool merged = false;
    try {
        persist_ledger(Persist::durable);
        merged = true;
    } catch (const WriteFailed& e) {
        // A full disk must not keep the buffer from starting (and draining, which frees it); anything else
        // (a read-only or inaccessible directory) is an unusable directory.
        if (e.error() != ENOSPC && e.error() != EDQUOT) throw;
    }
    if (merged && recent) files_.remove(recent_path);  // now in the synced ledger
    remove_released();
    report.bytes = segment_bytes_on_disk_;
    return report;
}

// ---- writer ---------------------------------------------------------------------------------------------

SegmentLog::Append SegmentLog::append(std::string_view payload, std::uint64_t& seq_out) {
    check_usable();
    const std::uint64_t record_size = format::record_header_size + payload.size();
    if (payload.size() > format::max_payload || record_size + format::segment_header_size > options_.max_bytes)
        throw std::length_error("disk buffer " + options_.dir.string() + ": a record of " +
                                std::to_string(payload.size()) + " bytes can never fit max_bytes " +
                                std::to_string(options_.max_bytes));
    const bool roll = !have_active_ || active_size_ >= options_.segment_bytes;
    const std::uint64_t need = record_size + (roll ? format::segment_header_size : 0);
    if (segment_bytes_on_disk_.load() + staged_bytes_.load() + need > options_.max_bytes) return Append::full;
    if (roll) {
        std::lock_guard lock(mutex_);
        const std::uint64_t cap = options_.max_segment_ids;
        if (ids_in_use_.size() >= cap) return Append::full;
        std::uint64_t id = (last_id_ + 1) % cap;
        while (ids_in_use_.count(id) != 0)
            id = (id + 1) % cap;
        ids_in_use_.insert(id);
        last_id_ = id;
        Staged st;
        st.id = id;
        st.first_seq = next_seq_;
        st.create = true;
        st.bytes = segment_header(id, next_seq_);
        staged_.push_back(std::move(st));
        active_id_ = id;
        active_first_ = next_seq_;
        active_size_ = format::segment_header_size;
        have_active_ = true;
        staged_bytes_.fetch_add(format::segment_header_size, std::memory_order_relaxed);
    } else if (staged_.empty()) {
        Staged st;
        st.id = active_id_;
        st.first_seq = active_first_;
        st.size_before = active_size_;
        {
            std::lock_guard lock(written_mutex_);
            st.bytes = std::move(spare_bytes_);
            st.records = std::move(spare_records_);
        }
        st.bytes.clear();
        st.records.clear();
        staged_.push_back(std::move(st));
    }
    Staged& st = staged_.back();
    const std::uint64_t seq = next_seq_++;
    const std::int64_t ms = now_ms();
    char h[format::record_header_size];
    put32(h, format::record_magic);
    put32(h + 4, static_cast<std::uint32_t>(payload.size()));
    put64(h + 8, seq);
    put64(h + 16, static_cast<std::uint64_t>(ms));
    put32(h + 24, checksum(payload.data(), payload.size()));
    put32(h + 28, checksum(h, 28));
    st.bytes.append(h, sizeof h);
    st.records.push_back({seq, st.bytes.size(), static_cast<std::uint32_t>(payload.size()), ms});
    st.bytes.append(payload);
    active_size_ += record_size;
    // sync_written() takes these down from another thread.
    staged_bytes_.fetch_add(record_size, std::memory_order_relaxed);
    if (staged_records_.fetch_add(1, std::memory_order_relaxed) == 0)
        oldest_staged_ms_.store(ms, std::memory_order_relaxed);
    seq_out = seq;
    return Append::ok;
}

void SegmentLog::rollback_staged() {
    // Cut every file back to what was written before, so a retried append cannot land behind a half-written
    // record (what earlier write() calls put there waits for sync_written()).
    try {
        bool removed = false;
        for (auto& st : staged_) {
            if (st.create) {
                if (active_file_ == st.file) active_file_.reset();
                st.file.reset();
                for (const auto& path : {temp_path_of(st.id), path_of(st.id)}) {
                    try {
                        files_.remove(path);
                        removed = true;
                    } catch (const FileError& e) {
                        if (e.error() != ENOENT) throw;
                    }
                }
            } else if (st.file) {
                st.file->truncate(st.size_before);
                st.file->sync();
            }
        }
        // Durably gone before their seqs are given out again: a half-written file coming back after a crash
        // would hold other records under the same seqs.
        if (removed) files_.sync_directory(options_.dir);
    } catch (const FileError& e) {
        failed_ = true;
        throw SyncFailed(e);
    }
    {
        std::lock_guard lock(mutex_);
        for (const auto& st : staged_)
            if (st.create) ids_in_use_.erase(st.id);
    }
    std::uint64_t bytes = 0;
    std::uint64_t records = 0;
    for (const auto& st : staged_) {
        if (!st.records.empty()) next_seq_ = std::min(next_seq_, st.records.front().seq);
        bytes += st.bytes.size();
        records += st.records.size();
    }
    staged_.clear();
    staged_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    staged_records_.fetch_sub(records, std::memory_order_relaxed);
    active_file_.reset();
    have_active_ = false;  // the next append starts a new segment
}

void SegmentLog::sync() {
    write();
    sync_written();
}

void SegmentLog::write() {
    check_usable();
    if (staged_.empty()) return;
    try {
        for (auto& st : staged_) {
            if (st.create) {
                // Written under a temporary name and renamed once synced: a file named like a segment always
                // has a whole, durable header, so a header cut short by a crash can never pass for one of a
                // newer format version. Appends that follow go to it at once, before it is synced and renamed.
                st.file = files_.open(temp_path_of(st.id), OpenMode::create_new);
                active_file_ = st.file;
            } else {
                if (!active_file_) active_file_ = files_.open(path_of(st.id), OpenMode::read_write);
                st.file = active_file_;
            }
            st.file->append(st.bytes);
        }
    } catch (const FileError& e) {
        rollback_staged();
        throw WriteFailed(e);
    }
    std::lock_guard lock(written_mutex_);
    for (auto& st : staged_)
        written_.push_back(std::move(st));
    staged_.clear();
}

void SegmentLog::sync_written() {
    check_usable();
    std::vector<Staged> batch;
    {
        std::lock_guard lock(written_mutex_);
        batch.swap(written_);
    }
    if (batch.empty()) {
        try {
            persist_ledger(Persist::periodic);
        } catch (const WriteFailed&) {  // NOLINT(bugprone-empty-catch): kept dirty; checkpoint() reports it
        }
        return;
    }
    // Everything written, whichever thread wrote it, is in the files: fdatasync once per file, in order.
    // A failed rename is treated like a failed sync: the records are synced under a name recovery removes,
    // so the log must be reopened rather than go on with a segment it cannot name.
    try {
        const File* last = nullptr;
        for (const auto& st : batch) {
            if (st.file.get() == last) continue;
            st.file->sync();
            last = st.file.get();
        }
        bool created = false;
        for (const auto& st : batch) {
            if (!st.create) continue;
            files_.rename(temp_path_of(st.id), path_of(st.id));
            created = true;
        }
        if (created) files_.sync_directory(options_.dir);
    } catch (const FileError& e) {
        failed_ = true;
        throw SyncFailed(e);
    }

    std::uint64_t bytes = 0;
    std::uint64_t records = 0;
    {
        std::lock_guard lock(mutex_);
        for (auto& st : batch) {
            if (st.create) {
                for (auto& seg : segments_)
                    seg.sealed = true;
                Segment seg;
                seg.id = st.id;
                seg.first_seq = st.first_seq;
                seg.end_seq = st.first_seq;
                seg.limit = 0;
                segments_.push_back(std::move(seg));
            }
            Segment& seg = segments_.back();
            seg.limit += st.bytes.size();
            seg.file_bytes = seg.limit;
            bytes += st.bytes.size();
            for (const auto& rec : st.records) {
                if (seg.times.empty() || (rec.seq - seg.first_seq) % time_sample_every == 0)
                    seg.times.emplace_back(rec.seq, rec.ms);
                if (!overflow_) {
                    if (memory_bytes_ + rec.size <= options_.memory_window_bytes) {
                        memory_.push_back({{rec.seq, options_.memory_window_payloads
                                                         ? std::string(st.bytes.data() + rec.offset, rec.size)
                                                         : std::string()},
                                           seg.first_seq,
                                           st.size_before + rec.offset + rec.size,
                                           rec.size});
                        memory_bytes_ += rec.size;
                    } else {
                        overflow_ = true;
                    }
                }
            }
            if (!st.records.empty()) {
                seg.end_seq = st.records.back().seq + 1;
                synced_end_ = seg.end_seq;
            }
            live_records_ += st.records.size();
            records += st.records.size();
        }
        segment_bytes_on_disk_ += bytes;
        // The ledger also records how far the log was synced (at most every ledger_interval), which lets
        // recovery tell damage in the newest records from a torn write.
        ++ledger_changes_;
    }
    staged_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    staged_records_.fetch_sub(records, std::memory_order_relaxed);
    {
        std::lock_guard lock(written_mutex_);
        spare_bytes_ = std::move(batch.back().bytes);
        spare_records_ = std::move(batch.back().records);
    }
    try {
        persist_ledger(Persist::periodic);
    } catch (const WriteFailed&) {  // NOLINT(bugprone-empty-catch): kept dirty; checkpoint() reports it
    }
}

// ---- reader ---------------------------------------------------------------------------------------------

std::size_t SegmentLog::next(std::vector<Record>& out, std::size_t max_records) {
    check_usable();
    std::size_t n = 0;
    if (!options_.memory_window_payloads) {
        // Positions only: read from the files (the page cache, as a rule), then forget what was read.
        n = read_from_files(out, max_records);
        std::lock_guard lock(mutex_);
        while (!memory_.empty() && memory_.front().record.seq < handed_end_) {
            memory_bytes_ -= memory_.front().size;
            memory_.pop_front();
        }
        if (memory_.empty() && handed_end_ >= synced_end_) overflow_ = false;
        return n;
    }
    {
        std::lock_guard lock(mutex_);
        while (n < max_records && !memory_.empty()) {
            MemoryRecord& m = memory_.front();
            read_segment_first_ = m.segment_first;
            read_offset_ = m.end_offset;
            handed_end_ = m.record.seq + 1;
            memory_bytes_ -= m.size;
            out.push_back(std::move(m.record));
            memory_.pop_front();
            ++n;
        }
        if (n == max_records || !overflow_) return n;
    }
    return n + read_from_files(out, max_records - n);
}

SegmentLog::Take SegmentLog::take_front(std::uint64_t first_seq, std::uint64_t count) {
    check_usable();
    std::lock_guard lock(mutex_);
    if (first_seq < handed_end_) return Take::passed;
    if (count == 0 || memory_.size() < count || memory_.front().record.seq != first_seq ||
        memory_[count - 1].record.seq != first_seq + count - 1)
        return Take::not_yet;
    for (std::uint64_t i = 0; i < count; ++i) {
        MemoryRecord& m = memory_.front();
        read_segment_first_ = m.segment_first;
        read_offset_ = m.end_offset;
        handed_end_ = m.record.seq + 1;
        memory_bytes_ -= m.size;
        memory_.pop_front();
    }
    return Take::taken;
}

std::size_t SegmentLog::read_from_files(std::vector<Record>& out, std::size_t max_records) {
    std::size_t n = 0;
    while (n < max_records) {
        std::uint64_t id = 0;
        std::uint64_t first = 0;
        std::uint64_t limit = 0;
        std::uint64_t end_seq = 0;
        std::uint64_t expected = 0;
        std::vector<std::pair<std::uint64_t, std::uint64_t>> skip;
        {
            std::lock_guard lock(mutex_);
            auto it = std::lower_bound(segments_.begin(), segments_.end(), read_segment_first_,
                                       [](const Segment& s, std::uint64_t seq) { return s.first_seq < seq; });
            if (it != segments_.end() && it->first_seq != read_segment_first_) {
                read_segment_first_ = it->first_seq;
                read_offset_ = format::segment_header_size;
            }
            while (it != segments_.end() && read_offset_ >= it->limit && std::next(it) != segments_.end()) {
                ++it;
                read_segment_first_ = it->first_seq;
                read_offset_ = format::segment_header_size;
            }
            if (it == segments_.end() || read_offset_ >= it->limit) {
                // Caught up with everything synced: from now on new records are served from memory.
                if (memory_.empty()) overflow_ = false;
                return n;
            }
            id = it->id;
            first = it->first_seq;
            limit = it->limit;
            end_seq = it->end_seq;
            expected = std::max(handed_end_, first);
            skip = it->skip;
        }
        if (read_file_first_ != first) {
            read_scanner_.reset();
            read_file_ = files_.open(path_of(id), OpenMode::read);
            read_scanner_ = std::make_unique<Scanner>(*read_file_, limit, options_.read_chunk_bytes);
            read_file_first_ = first;
        }
        read_scanner_->set_limit(limit);

        struct Damage {
            std::uint64_t offset, length, first_seq, end_seq;
        };
        std::vector<Damage> damage;
        std::vector<Record> batch;
        std::uint64_t pos = read_offset_;
        const std::uint64_t stop = pos + options_.read_chunk_bytes;
        while (n + batch.size() < max_records && pos < limit && pos < stop) {
            auto skipped = std::find_if(skip.begin(), skip.end(),
                                        [pos](const auto& r) { return pos >= r.first && pos < r.second; });
            if (skipped != skip.end()) {
                pos = skipped->second;
                continue;
            }
            auto step = read_scanner_->step(pos);
            if (step.kind == Scanner::Step::Kind::end) break;
            if (step.kind == Scanner::Step::Kind::record) {
                if (step.seq >= expected) {
                    if (step.payload_ok) {
                        batch.push_back({step.seq, std::string(step.payload)});
                    } else {
                        damage.push_back({pos, step.next - pos, step.seq, step.seq + 1});
                    }
                    expected = step.seq + 1;
                }
                pos = step.next;
                continue;
            }
            // Damage that appeared after open(): the same rules as recovery.
            std::uint64_t resume = step.next >= limit ? end_seq : std::max(step.seq, expected);
            damage.push_back({pos, step.next - pos, expected, resume});
            expected = resume;
            pos = step.next;
        }
        read_scanner_->trim();
        std::vector<Damage> lost;
        {
            std::lock_guard lock(mutex_);
            read_offset_ = pos;
            handed_end_ = std::max(handed_end_, expected);
            for (auto& record : batch) {
                if (released_locked(record.seq)) continue;  // released before a restart, or set aside
                out.push_back(std::move(record));
                ++n;
            }
            for (const auto& d : damage) {
                std::uint64_t count = mark_released_locked(d.first_seq, d.end_seq);
                if (count == 0) continue;
                live_records_ -= std::min(live_records_, count);
                set_aside_ += count;
                lost.push_back(d);
            }
        }
        for (const auto& d : lost)
            preserve(path_of(id), d.offset, d.length);
    }
    return n;
}

bool SegmentLog::release(std::uint64_t first_seq, std::uint64_t count) {
    check_usable();
    if (count == 0) return false;
    bool doomed = false;
    {
        std::lock_guard lock(mutex_);
        if (first_seq > handed_end_ || count > handed_end_ - first_seq)
            throw std::out_of_range("disk buffer " + options_.dir.string() + ": release of records " +
                                    std::to_string(first_seq) + "+" + std::to_string(count) +
                                    " that were not handed out (next() has handed out up to " +
                                    std::to_string(handed_end_) + ")");
        std::uint64_t added = mark_released_locked(first_seq, first_seq + count);
        live_records_ -= std::min(live_records_, added);
        released_since_ledger_ += added;
        doomed = doom_released_locked();
    }
    if (doomed && !options_.deferred_removal) {
        remove_released();
        doomed = false;
    }
    try {
        persist_ledger(Persist::periodic);
    } catch (const WriteFailed&) {  // NOLINT(bugprone-empty-catch): kept dirty; checkpoint() reports it
    }
    return doomed;
}

SegmentLog::Stats SegmentLog::stats() const {
    std::lock_guard lock(mutex_);
    Stats s{};
    s.records = live_records_ + staged_records_.load();
    s.bytes = segment_bytes_on_disk_.load() + staged_bytes_.load();
    s.set_aside = set_aside_;
    // The oldest unreleased record: the end of the released range that starts at 0 (the common case).
    std::uint64_t first_unreleased = 0;
    if (!released_.empty() && released_.begin()->first == 0) first_unreleased = released_.begin()->second;
    if (first_unreleased < synced_end_) {
        auto it = std::upper_bound(segments_.begin(), segments_.end(), first_unreleased,
                                   [](std::uint64_t seq, const Segment& seg) { return seq < seg.first_seq; });
        if (it != segments_.begin()) --it;
        if (it != segments_.end() && !it->times.empty()) {
            auto t = std::upper_bound(it->times.begin(), it->times.end(), first_unreleased,
                                      [](std::uint64_t seq, const auto& sample) { return seq < sample.first; });
            if (t != it->times.begin()) --t;
            s.oldest = std::chrono::system_clock::time_point(std::chrono::milliseconds(t->second));
        }
    } else if (staged_records_.load() > 0) {
        s.oldest = std::chrono::system_clock::time_point(std::chrono::milliseconds(oldest_staged_ms_.load()));
    }
    return s;
}

}  // namespace hubflow::core::buffer
