#include "tail_source.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <unordered_set>

#include "hubflow/json.h"

namespace hubflow::file {

namespace {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

constexpr std::int64_t default_batch_size = 1024;
constexpr std::int64_t default_max_line_bytes = 102400;
constexpr std::int64_t default_poll_interval_ms = 250;
constexpr std::int64_t default_rotate_wait_ms = 5000;
constexpr std::int64_t default_checkpoint_interval_ms = 1000;
constexpr std::int64_t default_drain_wait_ms = 5000;
constexpr std::int64_t max_max_line_bytes = 64LL * 1024 * 1024;
constexpr std::int64_t max_interval_ms = 24LL * 3600 * 1000;

// Large enough that a read costs little next to the lines it yields, small enough to stay in cache while
// the lines are copied out.
constexpr std::size_t block_bytes = std::size_t{256} * 1024;
// A follow-mode turn reads at most this many blocks of one file before looking at the others.
constexpr int blocks_per_turn = 64;
// Bytes at the start of a file whose hash tells a reused inode from the file a checkpoint was written for.
constexpr std::uint32_t fingerprint_max = 256;
constexpr const char* checkpoint_header =
    "# hubflow tail checkpoints v1: dev inode offset line skipping skip_from "
    "fingerprint_bytes fingerprint path";

std::runtime_error io_error(std::string_view what, const std::string& path, int err) {
    return std::runtime_error(std::string(what) + " '" + path + "': " + std::system_category().message(err));
}

std::uint64_t fnv1a(const char* data, std::size_t size) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (std::size_t i = 0; i < size; ++i) {
        h ^= static_cast<unsigned char>(data[i]);
        h *= 0x100000001b3ULL;
    }
    return h;
}

// pread() that retries on EINTR; throws on a read error.
std::size_t read_at(int fd, char* out, std::size_t size, std::uint64_t offset, const std::string& path) {
    for (;;) {
        ssize_t n = ::pread(fd, out, size, static_cast<off_t>(offset));
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno != EINTR) throw io_error("cannot read", path, errno);
    }
}

}  // namespace

ComponentDescription TailSource::describe() {
    return {"tail",
            ComponentKind::source,
            "JSON Lines files: one event per line; follows growth, rotation and truncation; checkpoints",
            {{.name = "path",
              .type = FieldType::string,
              .required = true,
              .doc = "file to read, or a glob pattern (*, ?, [...]) for several; read in name order"},
             {.name = "follow",
              .type = FieldType::boolean,
              .default_json = "true",
              .doc = "keep reading appended lines and new files (true), or read to the end and finish (false)"},
             {.name = "start_at",
              .type = FieldType::string,
              .default_json = R"("beginning")",
              .doc = "where to start in files found at start without a checkpoint: beginning or end"},
             {.name = "checkpoint",
              .type = FieldType::boolean,
              .default_json = "false",
              .doc = "remember the offset of every file in the node's data_dir, so a restart resumes there"},
             {.name = "checkpoint_interval_ms",
              .type = FieldType::integer,
              .default_json = std::to_string(default_checkpoint_interval_ms),
              .doc = "with checkpoint: how often offsets are written while running (also at stop)"},
             {.name = "drain_wait_ms",
              .type = FieldType::integer,
              .default_json = std::to_string(default_drain_wait_ms),
              .doc = "at stop: how long to wait for emitted lines to be delivered before the last checkpoint"},
             {.name = "batch_size",
              .type = FieldType::integer,
              .default_json = std::to_string(default_batch_size),
              .doc = "largest number of events emitted at once"},
             {.name = "max_line_bytes",
              .type = FieldType::integer,
              .default_json = std::to_string(default_max_line_bytes),
              .doc = "longer lines are skipped, counted and logged with file and line number"},
             {.name = "kind",
              .type = FieldType::string,
              .default_json = R"("")",
              .doc = "metadata kind of every event (empty = the payload's kind field, if any)"},
             {.name = "poll_interval_ms",
              .type = FieldType::integer,
              .default_json = std::to_string(default_poll_interval_ms),
              .doc = "with follow: how long to wait before looking again when every file is at its end"},
             {.name = "rotate_wait_ms",
              .type = FieldType::integer,
              .default_json = std::to_string(default_rotate_wait_ms),
              .doc = "with follow: how long a file renamed away or deleted is still read after its last growth"}}};
}

TailSource::~TailSource() {
    stop();
}

void TailSource::configure(const ConfigView& config, Context& context) {
    context_ = &context;
    pattern_ = config.string("path");
    if (pattern_.empty()) throw config.error("path", "must name a file or a glob pattern");
    is_glob_ = pattern_.find_first_of("*?[") != std::string::npos;

    // The host fills in the schema's defaults; the fallbacks serve callers that do not (tools, tests).
    follow_ = config.boolean_or("follow", true);
    start_at_end_ = (config.has("start_at") ? config.one_of("start_at", {"beginning", "end"}) : "beginning") == "end";
    checkpoint_ = config.boolean_or("checkpoint", false);
    auto ms = [&](std::string_view key, std::int64_t fallback) {
        return std::chrono::milliseconds(config.has(key) ? config.integer_in(key, 1, max_interval_ms) : fallback);
    };
    checkpoint_interval_ = ms("checkpoint_interval_ms", default_checkpoint_interval_ms);
    poll_interval_ = ms("poll_interval_ms", default_poll_interval_ms);
    rotate_wait_ = ms("rotate_wait_ms", default_rotate_wait_ms);
    batch_size_ = static_cast<std::size_t>(config.has("batch_size") ? config.integer_in("batch_size", 1, 1'000'000)
                                                                    : default_batch_size);
    max_line_bytes_ = static_cast<std::size_t>(config.has("max_line_bytes")
                                                   ? config.integer_in("max_line_bytes", 1, max_max_line_bytes)
                                                   : default_max_line_bytes);
    kind_ = config.string_or("kind", "");

    auto& metrics = context.metrics();
    bytes_read_ = &metrics.counter("bytes_read", "bytes of lines read from files (skipped ones included)");
    long_lines_ = &metrics.counter("lines_too_long", "lines longer than max_line_bytes, skipped");
    retired_ = &metrics.counter("files_retired", "files read to the end after being renamed away or deleted");
    truncations_ = &metrics.counter("truncations", "files found shorter than the read offset, read again from 0");
    files_open_ = &metrics.gauge("files_open", "files being read");
    lost_batches_ = &metrics.counter("checkpoint_freezes", "batches that ended lost and froze the checkpoint");
    drain_wait_ = ms("drain_wait_ms", default_drain_wait_ms);
    tracking_ = context.track_deliveries(*this);
}

void TailSource::start() {
    // A whole line must fit in the buffer with its '\n', so that "no '\n' in a full buffer" means "too long".
    buffer_size_ = std::max(block_bytes, max_line_bytes_ + 1);
    buffer_ = std::make_unique<char[]>(buffer_size_);
    if (checkpoint_) {
        checkpoint_path_ = (context_->data_dir() / "tail-offsets").string();
        load_checkpoints();
    }
    if (!follow_ && !is_glob_) {
        struct stat st {};
        if (::stat(pattern_.c_str(), &st) != 0) throw io_error("cannot open", pattern_, errno);
    }
    scan(true);
    next_checkpoint_ = context_->clock().monotonic() + checkpoint_interval_;
}

void TailSource::stop() {
    for (auto& f : files_) {
        if (f->fd >= 0) ::close(f->fd);
        f->fd = -1;
    }
    files_.clear();
    if (files_open_) files_open_->set(0);
}

std::vector<std::string> TailSource::matching_paths() const {
    if (!is_glob_) return {pattern_};
    std::vector<std::string> paths;
    glob_t g{};
    int rc = ::glob(pattern_.c_str(), 0, nullptr, &g);
    if (rc == 0) {
        for (std::size_t i = 0; i < g.gl_pathc; ++i)
            paths.emplace_back(g.gl_pathv[i]);
    } else if (rc != GLOB_NOMATCH) {
        context_->log().warn("cannot expand '", pattern_, "' (glob error ", rc, ")");
    }
    ::globfree(&g);
    return paths;
}

void TailSource::scan(bool first) {
    std::unordered_set<FileId, FileIdHash> seen;
    for (const auto& path : matching_paths()) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        FileId id{st.st_dev, st.st_ino};
        if (!seen.insert(id).second) continue;  // two names (hard links, symlinks) for one file: read it once
        auto it = std::find_if(files_.begin(), files_.end(), [&](const auto& f) { return f->id == id; });
        if (it != files_.end()) {
            (*it)->path = path;
            (*it)->gone = false;
            continue;
        }
        open_new(path, id, first);
    }
    if (files_.empty() && !warned_no_match_) {
        warned_no_match_ = true;
        context_->log().info("no file matches '", pattern_, "'", follow_ ? " yet; waiting for one" : "");
    }

    if (!follow_) return;
    const auto now = context_->clock().monotonic();
    for (auto it = files_.begin(); it != files_.end();) {
        Tracked& f = **it;
        if (seen.count(f.id)) {
            ++it;
            continue;
        }
        if (!f.gone) {
            f.gone = true;
            f.last_activity = now;
        }
        if (now - f.last_activity < rotate_wait_) {
            ++it;
            continue;
        }
        retire(f);
        it = files_.erase(it);
    }
    files_open_->set(static_cast<std::int64_t>(files_.size()));
}

void TailSource::open_new(const std::string& path, const FileId& id, bool first) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        context_->log().warn("cannot open '", path, "': ", std::system_category().message(errno));
        return;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || FileId{st.st_dev, st.st_ino} != id) {
        ::close(fd);  // replaced between stat() and open(); the next scan sees the new file
        return;
    }
    auto file = std::make_unique<Tracked>();
    file->id = id;
    file->path = path;
    file->fd = fd;
    file->last_activity = context_->clock().monotonic();
    const auto size = static_cast<std::uint64_t>(st.st_size);

    bool resumed = false;
    if (auto cp = checkpoints_.find(id); cp != checkpoints_.end()) {
        const Checkpoint& c = cp->second;
        std::uint32_t bytes = 0;
        std::uint64_t value = 0;
        if (c.offset <= size && fingerprint(fd, c.offset, bytes, value) && bytes == c.fingerprint_bytes &&
            value == c.fingerprint) {
            file->offset = c.offset;
            file->line = c.line;
            file->skipping = c.skipping;
            file->skip_from = c.skip_from;
            resumed = true;
            context_->log().info("resuming '", path, "' at byte ", c.offset, " (line ", c.line + 1, ")");
        } else {
            context_->log().warn("checkpoint of '", path, "' does not fit it (",
                                 c.offset > size ? "the file is shorter" : "its first bytes differ",
                                 "): reading it from the beginning");
        }
        checkpoints_.erase(cp);
    }
    if (!resumed && first && start_at_end_) file->offset = size;
    file->safe_offset = file->skipping ? file->skip_from : file->offset;
    file->safe_line = file->line;
    files_.push_back(std::move(file));
    files_open_->set(static_cast<std::int64_t>(files_.size()));
    checkpoint_dirty_ = true;
}

void TailSource::retire(Tracked& file) {
    // The writer has had rotate_wait_ms to finish with it: its last line is complete even without '\n'.
    drain(file, true, std::numeric_limits<int>::max());
    context_->log().info("finished '", file.path, "' (renamed away or deleted) at byte ", file.offset);
    retired_->add();
    ::close(file.fd);
    file.fd = -1;
    checkpoint_dirty_ = true;
}

bool TailSource::drain(Tracked& f, bool final, int max_blocks) {
    bool progress = false;
    char* buf = buffer_.get();
    for (int block = 0; block < max_blocks && !context_->stopping(); ++block) {
        const std::size_t n = read_at(f.fd, buf, buffer_size_, f.offset, f.path);
        if (n == 0) {
            struct stat st {};
            if (::fstat(f.fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) < f.offset) {
                context_->log().warn("'", f.path, "' is shorter than the ", f.offset,
                                     " bytes already read (truncated): reading it again from the beginning");
                truncations_->add();
                f.offset = 0;
                f.line = 0;
                f.skipping = false;
                f.safe_offset = 0;
                f.safe_line = 0;
                ++f.generation;
                checkpoint_dirty_ = true;
                continue;
            }
            if (final && f.skipping) {  // the file ends inside an overlong line
                skipped(f, f.skip_from, f.offset - f.skip_from);
                f.skipping = false;
            }
            break;
        }
        const char* p = buf;
        const char* const end = buf + n;
        if (f.skipping) {
            const char* nl = static_cast<const char*>(std::memchr(p, '\n', n));
            if (!nl) {
                f.offset += n;
                bytes_read_->add(n);
                progress = true;
                continue;
            }
            p = nl + 1;
            f.skipping = false;
            skipped(f, f.skip_from, f.offset + static_cast<std::uint64_t>(p - buf) - f.skip_from);
            ++f.line;
        }
        while (p < end) {
            const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
            if (!nl) break;
            if (static_cast<std::size_t>(nl - p) > max_line_bytes_)
                skipped(f, f.offset + static_cast<std::uint64_t>(p - buf), static_cast<std::uint64_t>(nl + 1 - p));
            else
                consume_line(f, p, nl, f.offset + static_cast<std::uint64_t>(nl + 1 - buf));
            ++f.line;
            p = nl + 1;
        }
        const std::size_t tail = static_cast<std::size_t>(end - p);
        const bool at_end = n < buffer_size_;
        if (tail > max_line_bytes_) {
            // No '\n' yet and already too long: skip to the next '\n', reading on from here.
            f.skip_from = f.offset + static_cast<std::uint64_t>(p - buf);
            f.skipping = true;
            p = end;
        } else if (tail > 0 && at_end && final) {
            consume_line(f, p, end, f.offset + static_cast<std::uint64_t>(end - buf));
            ++f.line;
            p = end;
        }
        const auto used = static_cast<std::uint64_t>(p - buf);
        if (used > 0) {
            f.offset += used;
            bytes_read_->add(used);
            progress = true;
        }
        if (at_end) break;  // what remains is an incomplete line, read again next time
    }
    if (progress) {
        f.last_activity = context_->clock().monotonic();
        checkpoint_dirty_ = true;
    }
    return progress;
}

void TailSource::consume_line(Tracked& f, const char* begin, const char* end, std::uint64_t next_offset) {
    if (end > begin && end[-1] == '\r') --end;  // CRLF files
    if (end == begin) return;                   // blank lines carry no event
    if (tracking_ && !frozen_) {
        if (marks_.empty() || !(marks_.back().id == f.id))
            marks_.push_back({f.id, f.generation, next_offset, f.line + 1});
        else
            marks_.back().offset = next_offset, marks_.back().line = f.line + 1;
    }
    if (batch_.empty()) {
        batch_ = context_->reusable_batch(batch_size_);
        filled_ = 0;
    }
    Event& e = batch_[filled_++];
    e.payload.assign(begin, static_cast<std::size_t>(end - begin));
    Metadata& m = e.meta;
    std::array<JsonMember, 4> wanted;
    std::size_t count = 0;
    const auto want = [&](const MetaKey& key, std::string& out) {
        out.clear();
        if (::memmem(e.payload.data(), e.payload.size(), key.quoted.data(), key.quoted.size()))
            wanted[count++] = {key.name, &out};
    };
    if (!kind_.empty())
        m.kind = kind_;
    else
        want(kind_key_, m.kind);
    want(site_key_, m.site_id);
    want(user_key_, m.user_id);
    want(id_key_, m.id);
    if (count > 0) find_json_members(e.payload, std::span(wanted.data(), count));
    if (filled_ == batch_size_) emit_pending();
}

void TailSource::skipped(const Tracked& f, std::uint64_t line_start, std::uint64_t bytes) {
    long_lines_->add();
    const auto now = context_->clock().monotonic();
    if (skip_logged_ && now - last_skip_log_ < std::chrono::seconds(1)) {
        ++unlogged_skips_;
        return;
    }
    std::string more = unlogged_skips_ ? " (" + std::to_string(unlogged_skips_) + " more since the last message)" : "";
    unlogged_skips_ = 0;
    last_skip_log_ = now;
    skip_logged_ = true;
    context_->log().warn("skipped line ", f.line + 1, " of '", f.path, "' (at byte ", line_start, "): ", bytes,
                         " bytes, longer than max_line_bytes ", max_line_bytes_, more);
}

void TailSource::emit_pending() {
    if (filled_ == 0) return;
    batch_.resize(filled_);
    filled_ = 0;
    // Recorded before emit(): the batch may end inside it.
    if (tracking_ && !frozen_) in_flight_.push_back({++emitted_batches_, std::exchange(marks_, {})});
    context_->emit(std::move(batch_));
    batch_ = EventBatch();
}

void TailSource::batch_ended(std::uint64_t number, BatchOutcome outcome) {
    {
        std::lock_guard lock(ended_mutex_);
        ended_.emplace_back(number, outcome);
    }
    ended_changed_.notify_all();
}

void TailSource::settle_ended() {
    std::vector<std::pair<std::uint64_t, BatchOutcome>> reports;
    {
        std::lock_guard lock(ended_mutex_);
        reports.swap(ended_);
    }
    if (reports.empty() || frozen_) return;
    for (const auto& [number, outcome] : reports)
        ended_early_.emplace(number, outcome);
    while (!in_flight_.empty()) {
        auto it = ended_early_.find(in_flight_.front().number);
        if (it == ended_early_.end()) break;
        const BatchOutcome outcome = it->second;
        ended_early_.erase(it);
        if (outcome == BatchOutcome::lost) {
            lost_batches_->add();
            context_->log().error("lines up to byte ",
                                  in_flight_.front().marks.empty() ? 0 : in_flight_.front().marks.back().offset,
                                  " were lost downstream (a node failed or threw): the checkpoint stays before them "
                                  "for the rest of this run, so a restart reads them again");
            frozen_ = true;
            in_flight_.clear();
            ended_early_.clear();
            marks_.clear();
            return;
        }
        for (const Mark& m : in_flight_.front().marks) {
            auto f = std::find_if(files_.begin(), files_.end(), [&](const auto& t) { return t->id == m.id; });
            if (f == files_.end() || (*f)->generation != m.generation) continue;
            (*f)->safe_offset = m.offset;
            (*f)->safe_line = m.line;
        }
        in_flight_.pop_front();
        checkpoint_dirty_ = true;
    }
}

bool TailSource::unsettled(const Tracked& file) const {
    if (!tracking_) return false;
    for (const Mark& m : marks_)
        if (m.id == file.id) return true;
    for (const auto& batch : in_flight_)
        for (const Mark& m : batch.marks)
            if (m.id == file.id) return true;
    return false;
}

void TailSource::wait_in_flight(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        settle_ended();
        if (!tracking_ || frozen_ || in_flight_.empty()) return;
        std::unique_lock lock(ended_mutex_);
        if (!ended_changed_.wait_until(lock, deadline, [&] { return !ended_.empty(); })) return;
    }
}

void TailSource::run() {
    if (!buffer_) start();
    for (;;) {
        bool progress = false;
        for (auto& f : files_)
            if (f->fd >= 0)
                progress |= drain(*f, !follow_, follow_ ? blocks_per_turn : std::numeric_limits<int>::max());
        // Checkpoints cover emitted lines only, so the batch goes first.
        emit_pending();
        settle_ended();
        if (!follow_ || context_->stopping()) break;
        const auto now = context_->clock().monotonic();
        if (checkpoint_ && checkpoint_dirty_ && now >= next_checkpoint_) {
            save_checkpoints();
            next_checkpoint_ = now + checkpoint_interval_;
        }
        // New, rotated and vanished files: looked for whenever everything is read, and at least every
        // poll_interval_ms while some file keeps growing, so that one busy file does not hide the others.
        if (!progress || now >= next_scan_) {
            scan(false);
            next_scan_ = now + poll_interval_;
        }
        if (progress) continue;
        if (!context_->wait_for(poll_interval_)) break;
    }
    emit_pending();
    // Without follow the run is a batch job: it ends when everything read has ended downstream, unless the
    // host stops it first. A stop waits a bounded time, so a stuck sink cannot hold the host's shutdown.
    if (!follow_ && !context_->stopping())
        while (!context_->stopping() && tracking_ && !frozen_ && !in_flight_.empty())
            wait_in_flight(std::chrono::steady_clock::now() + poll_interval_);
    wait_in_flight(std::chrono::steady_clock::now() + drain_wait_);
    if (!in_flight_.empty() && !frozen_)
        context_->log().warn(in_flight_.size(), " batches had not ended downstream after drain_wait_ms ",
                             drain_wait_.count(), ": the checkpoint stays before them");
    if (checkpoint_) save_checkpoints();
    if (unlogged_skips_)
        context_->log().warn(unlogged_skips_, " more lines longer than max_line_bytes ", max_line_bytes_,
                             " were skipped since the last message");
    unlogged_skips_ = 0;
}

bool TailSource::fingerprint(int fd, std::uint64_t offset, std::uint32_t& bytes, std::uint64_t& value) const {
    char head[fingerprint_max];
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(offset, fingerprint_max));
    std::size_t got = 0;
    while (got < want) {
        ssize_t n = ::pread(fd, head + got, want - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        got += static_cast<std::size_t>(n);
    }
    bytes = static_cast<std::uint32_t>(want);
    value = fnv1a(head, want);
    return true;
}

void TailSource::load_checkpoints() {
    std::ifstream in(checkpoint_path_);
    if (!in) return;
    std::string text;
    std::size_t number = 0, bad = 0;
    while (std::getline(in, text)) {
        ++number;
        if (text.empty() || text[0] == '#') continue;
        std::istringstream fields(text);
        std::uint64_t dev = 0, ino = 0;
        int skipping = 0;
        Checkpoint c;
        std::string path;
        if (!(fields >> dev >> ino >> c.offset >> c.line >> skipping >> c.skip_from >> c.fingerprint_bytes >>
              c.fingerprint)) {
            ++bad;
            continue;
        }
        c.skipping = skipping != 0;
        checkpoints_[FileId{static_cast<dev_t>(dev), static_cast<ino_t>(ino)}] = c;
    }
    if (bad) context_->log().warn("ignored ", bad, " unreadable lines of the checkpoint file '", checkpoint_path_, "'");
}

void TailSource::save_checkpoints() {
    std::string text = checkpoint_header;
    text += '\n';
    if (frozen_) return;  // the file on disk keeps the last position known to be safe
    for (const auto& f : files_) {
        // A file none of whose lines is still in flight is safe where it is read to (skipped and blank lines
        // included); otherwise up to its acknowledged progress.
        const bool settled = !unsettled(*f);
        const std::uint64_t offset = settled ? f->offset : f->safe_offset;
        const std::uint64_t line = settled ? f->line : f->safe_line;
        const bool skipping = settled && f->skipping;
        const std::uint64_t skip_from = skipping ? f->skip_from : 0;
        std::uint32_t bytes = 0;
        std::uint64_t value = 0;
        if (f->fd < 0 || !fingerprint(f->fd, offset, bytes, value)) continue;
        text += std::to_string(f->id.dev) + ' ' + std::to_string(f->id.ino) + ' ' + std::to_string(offset) + ' ' +
                std::to_string(line) + ' ' + (skipping ? '1' : '0') + ' ' + std::to_string(skip_from) + ' ' +
                std::to_string(bytes) + ' ' + std::to_string(value) + ' ' + f->path + '\n';
    }
    // Written aside, synced, then renamed over the old one: a crash leaves either the old or the new file.
    const std::string tmp = checkpoint_path_ + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        context_->log().error("cannot write the checkpoint '", tmp, "': ", std::system_category().message(errno));
        return;
    }
    std::size_t done = 0;
    int err = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            err = n < 0 ? errno : EIO;
            break;
        }
        done += static_cast<std::size_t>(n);
    }
    if (!err && ::fdatasync(fd) != 0) err = errno;
    ::close(fd);
    if (!err && ::rename(tmp.c_str(), checkpoint_path_.c_str()) != 0) err = errno;
    if (err) {
        context_->log().error("cannot write the checkpoint '", checkpoint_path_,
                              "': ", std::system_category().message(err));
        return;
    }
    if (int dir = ::open(fs::path(checkpoint_path_).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        dir >= 0) {
        ::fsync(dir);
        ::close(dir);
    }
    checkpoint_dirty_ = false;
}

}  // namespace hubflow::file
