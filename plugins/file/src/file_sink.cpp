#include "file_sink.h"

#include "hubflow/line_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <system_error>

namespace hubflow::file {

namespace {

namespace fs = std::filesystem;

constexpr std::int64_t default_rotate_bytes = 0;
constexpr std::int64_t default_keep_files = 5;
constexpr const char* default_fsync = "interval";
constexpr std::int64_t default_fsync_interval_ms = 1000;
constexpr std::int64_t default_max_open_files = 64;

constexpr std::int64_t max_keep_files = 1000;
constexpr std::int64_t max_fsync_interval_ms = 24 * 3600 * 1000;
constexpr std::int64_t max_max_open_files = 100'000;

// A rename or a new name is durable only once the directory holding it is synced.
void sync_directory_of(const std::string& path) {
    sync_directory(fs::path(path).parent_path());
}

// One event, one line: a payload may carry raw line breaks as JSON whitespace, and those become spaces.
void append_line(std::string& out, std::string_view payload) {
    std::size_t at = out.size();
    out.append(payload);
    if (std::memchr(payload.data(), '\n', payload.size()) || std::memchr(payload.data(), '\r', payload.size())) {
        for (std::size_t i = at; i < out.size(); ++i)
            if (out[i] == '\n' || out[i] == '\r') out[i] = ' ';
    }
    out += '\n';
}

std::int64_t second_of(std::chrono::system_clock::time_point t) {
    return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

ComponentDescription FileSink::describe() {
    return {"file",
            ComponentKind::sink,
            "JSON Lines files: one event payload per line; path templates, size rotation, fsync policy",
            {{.name = "path",
              .type = FieldType::string,
              .required = true,
              .doc = "file to append to; {field} placeholders and strftime % fields (UTC, from received_at)",
              .claim = Claim::file_path},
             {.name = "rotate_bytes",
              .type = FieldType::integer,
              .default_json = std::to_string(default_rotate_bytes),
              .doc = "rotate a file before a write would take it past this many bytes (0 = never)"},
             {.name = "keep_files",
              .type = FieldType::integer,
              .default_json = std::to_string(default_keep_files),
              .doc = "rotated files kept as path.1 (newest) to path.N; older ones are deleted"},
             {.name = "fsync",
              .type = FieldType::string,
              .default_json = std::string("\"") + default_fsync + "\"",
              .doc = "when written data is made durable: never, interval or batch"},
             {.name = "fsync_interval_ms",
              .type = FieldType::integer,
              .default_json = std::to_string(default_fsync_interval_ms),
              .doc = "with fsync=interval: how often written files get fdatasync"},
             {.name = "max_open_files",
              .type = FieldType::integer,
              .default_json = std::to_string(default_max_open_files),
              .doc = "files held open at once; the least recently used one is closed beyond it"}}};
}

FileSink::~FileSink() {
    for (File* file : lru_)
        ::close(file->fd);
}

void FileSink::configure(const ConfigView& config, Context& context) {
    context_ = &context;

    try {
        template_.emplace(config.string("path"));
    } catch (const std::invalid_argument& e) {
        throw config.error("path", e.what());
    }

    // The host fills in the schema's defaults; the fallbacks serve callers that do not (unit tests, tools).
    std::int64_t rotate = config.integer_or("rotate_bytes", default_rotate_bytes);
    if (rotate < 0)
        throw config.error("rotate_bytes",
                           "must be 0 (never rotate) or a size in bytes, found " + std::to_string(rotate));
    rotate_bytes_ = static_cast<std::uint64_t>(rotate);

    keep_files_ = static_cast<int>(config.has("keep_files") ? config.integer_in("keep_files", 0, max_keep_files)
                                                            : default_keep_files);

    std::string policy = config.has("fsync") ? config.one_of("fsync", {"never", "interval", "batch"}) : default_fsync;
    fsync_ = policy == "never" ? FsyncPolicy::never : policy == "batch" ? FsyncPolicy::batch : FsyncPolicy::interval;

    fsync_interval_ = std::chrono::milliseconds(config.has("fsync_interval_ms")
                                                    ? config.integer_in("fsync_interval_ms", 1, max_fsync_interval_ms)
                                                    : default_fsync_interval_ms);

    max_open_files_ = static_cast<std::size_t>(config.has("max_open_files")
                                                   ? config.integer_in("max_open_files", 1, max_max_open_files)
                                                   : default_max_open_files);

    auto& metrics = context.metrics();
    bytes_written_ = &metrics.counter("bytes_written", "bytes appended to files");
    files_rotated_ = &metrics.counter("files_rotated", "files renamed to path.1 by size rotation");
    partial_lines_repaired_ =
        &metrics.counter("partial_lines_repaired", "partial last lines moved to <path>.partial on open");
    open_files_gauge_ = &metrics.gauge("open_files", "files held open");
}

void FileSink::start() {
    next_sync_ = context_->clock().monotonic() + fsync_interval_;
    if (template_->has_fields() || template_->has_time()) return;
    template_->render(Event{}, 0, path_);
    path_valid_ = true;
    File& file = entry(path_);
    try {
        ensure_open(file);
    } catch (...) {
        forget_if_idle(file);
        throw;
    }
}

FileSink::File& FileSink::entry(std::string_view path) {
    if (auto it = files_.find(path); it != files_.end()) return *it->second;
    auto file = std::make_unique<File>();
    file->path.assign(path);
    File& ref = *file;
    files_.emplace(std::string_view(ref.path), std::move(file));
    return ref;
}

void FileSink::deliver(const EventBatch& batch, BatchAck ack) {
    try {
        write_batch(batch);
    } catch (...) {
        ack.lost(batch.size());
        throw;
    }
    if (fsync_ == FsyncPolicy::interval)
        unsynced_.emplace_back(ack, batch.size());
    else
        ack.delivered(batch.size());
}

void FileSink::settle_unsynced(bool synced) {
    for (auto& [ack, events] : unsynced_)
        synced ? ack.delivered(events) : ack.lost(events);
    unsynced_.clear();
}

void FileSink::write_batch(const EventBatch& batch) {
    if (batch.empty()) return;
    const bool fields = template_->has_fields();
    const bool time = template_->has_time();
    std::optional<std::int64_t> now_second;

    try {
        File* file = nullptr;
        for (const Event& event : batch) {
            bool resolve = false;
            if (fields || time) {
                std::int64_t second = 0;
                if (time) {
                    if (event.meta.received_at.time_since_epoch().count() != 0) {
                        second = second_of(event.meta.received_at);
                    } else {
                        if (!now_second) now_second = second_of(context_->clock().now());
                        second = *now_second;
                    }
                }
                if (fields) {
                    template_->render(event, second, path_);
                    resolve = !file || path_ != file->path;
                } else if (!path_valid_ || second != path_second_) {
                    template_->render(event, second, path_);
                    path_second_ = second;
                    path_valid_ = true;
                    resolve = true;
                }
            } else if (!path_valid_) {
                template_->render(event, 0, path_);
                path_valid_ = true;
            }
            if (resolve || !file) {
                file = &entry(path_);
                if (!file->in_batch) {
                    file->in_batch = true;
                    batch_files_.push_back(file);
                    if (file->fd >= 0) lru_.splice(lru_.end(), lru_, file->lru);
                }
            }
            append_line(file->pending, event.payload);
        }
    } catch (...) {
        for (File* f : batch_files_) {
            f->pending.clear();
            f->in_batch = false;
            forget_if_idle(*f);
        }
        batch_files_.clear();
        throw;
    }

    for (File* file : batch_files_) {
        try {
            write_pending(*file);
            if (fsync_ == FsyncPolicy::batch) sync(*file);
        } catch (const std::exception& e) {
            note_error(e.what());
            file->pending.clear();
        }
        file->in_batch = false;
        forget_if_idle(*file);
    }
    batch_files_.clear();
    throw_noted_errors();
}

void FileSink::write_pending(File& file) {
    if (file.pending.empty()) return;
    ensure_open(file);
    std::string_view data = file.pending;
    while (rotate_bytes_ > 0 && !data.empty()) {
        std::uint64_t room = file.size < rotate_bytes_ ? rotate_bytes_ - file.size : 0;
        if (data.size() <= room) break;
        // Write the whole lines that still fit, then rotate. A single line longer than rotate_bytes gets a
        // fresh file to itself: lines are never split.
        std::size_t cut = 0;
        if (room > 0)
            if (const void* nl = ::memrchr(data.data(), '\n', static_cast<std::size_t>(room)))
                cut = static_cast<std::size_t>(static_cast<const char*>(nl) - data.data()) + 1;
        if (cut == 0 && file.size == 0)
            cut = static_cast<std::size_t>(static_cast<const char*>(std::memchr(data.data(), '\n', data.size())) -
                                           data.data()) +
                  1;
        if (cut > 0) {
            append(file, data.substr(0, cut));
            data.remove_prefix(cut);
        }
        if (!data.empty()) rotate(file);
    }
    if (!data.empty()) append(file, data);
    file.pending.clear();
}

void FileSink::append(File& file, std::string_view data) {
    std::size_t done = 0;
    int err = write_all(file.fd, data.data(), data.size(), done);
    std::size_t keep = done;
    if (err && done > 0) {
        // Keep the whole lines that made it and cut the partial one, so the file still ends on a line break.
        keep = 0;
        if (const void* nl = ::memrchr(data.data(), '\n', done))
            keep = static_cast<std::size_t>(static_cast<const char*>(nl) - data.data()) + 1;
    }
    file.size += keep;
    if (done > 0) file.dirty = true;
    bytes_written_->add(keep);
    if (!err) return;
    if (keep < done && ::ftruncate(file.fd, static_cast<off_t>(file.size)) != 0)
        close(file, false);  // reopening repairs the tail into <path>.partial
    throw file_error("cannot write", file.path, err);
}

void FileSink::ensure_open(File& file) {
    if (file.fd >= 0) return;
    while (open_count_ >= max_open_files_ && !lru_.empty())
        evict_least_recently_used();
    open_file(file);
    lru_.push_back(&file);
    file.lru = std::prev(lru_.end());
    ++open_count_;
    open_files_gauge_->set(static_cast<std::int64_t>(open_count_));
}

void FileSink::open_file(File& file) {
    const char* path = file.path.c_str();
    // O_RDWR rather than O_WRONLY: the partial-line check reads the file's last bytes.
    constexpr int flags = O_RDWR | O_APPEND | O_CLOEXEC;
    int fd = ::open(path, flags);
    bool created = false;
    if (fd < 0 && errno == ENOENT) {
        fs::path dir = fs::path(file.path).parent_path();
        if (!dir.empty()) {
            std::error_code ec;
            fs::create_directories(dir, ec);
            if (ec)
                throw std::runtime_error("cannot create directory '" + dir.string() + "' for '" + file.path +
                                         "': " + ec.message());
        }
        fd = ::open(path, flags | O_CREAT | O_EXCL, 0666);
        created = fd >= 0;
        if (fd < 0 && errno == EEXIST) fd = ::open(path, flags);
    }
    if (fd < 0) throw file_error("cannot open", file.path, errno);

    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        int err = errno;
        ::close(fd);
        throw file_error("cannot stat", file.path, err);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw std::runtime_error("cannot write '" + file.path + "': not a regular file");
    }
    auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > 0) {
        try {
            size = repair_tail(file, fd, size);
        } catch (...) {
            ::close(fd);
            throw;
        }
    }
    file.fd = fd;
    file.size = size;
    file.dirty = false;
    file.new_entry = created;
}

std::uint64_t FileSink::repair_tail(const File& file, int fd, std::uint64_t size) {
    const std::uint64_t cut = move_partial_last_line(fd, file.path, size, 0666);
    if (cut == size) return size;
    context_->log().warn("'", file.path, "' ended in a partial line of ", size - cut,
                         " bytes (an interrupted write); moved it to '", file.path, ".partial'");
    partial_lines_repaired_->add();
    return cut;
}

void FileSink::rotate(File& file) {
    // The file is complete and durable before it gets its new name.
    if (fsync_ != FsyncPolicy::never) sync(file);
    close(file, false);

    auto numbered = [&](int n) { return file.path + "." + std::to_string(n); };
    // Leftovers beyond keep_files, e.g. from an earlier, larger setting.
    for (int n = keep_files_ + 1; ::unlink(numbered(n).c_str()) == 0; ++n) {
    }
    for (int n = keep_files_ - 1; n >= 1; --n) {
        std::string from = numbered(n);
        if (::rename(from.c_str(), numbered(n + 1).c_str()) != 0 && errno != ENOENT)
            throw file_error("cannot rotate", from, errno);
    }
    int result = keep_files_ > 0 ? ::rename(file.path.c_str(), numbered(1).c_str()) : ::unlink(file.path.c_str());
    if (result != 0 && errno != ENOENT) throw file_error("cannot rotate", file.path, errno);
    if (fsync_ != FsyncPolicy::never) sync_directory_of(file.path);
    files_rotated_->add();
    ensure_open(file);
}

void FileSink::sync(File& file) {
    if (file.fd < 0) return;
    if (file.dirty) {
        if (::fdatasync(file.fd) != 0) throw file_error("cannot sync", file.path, errno);
        file.dirty = false;
    }
    if (file.new_entry) {
        sync_directory_of(file.path);
        file.new_entry = false;
    }
}

void FileSink::close(File& file, bool sync_first) {
    if (file.fd < 0) return;
    std::exception_ptr failure;
    if (sync_first) {
        try {
            sync(file);
        } catch (...) {
            failure = std::current_exception();
        }
    }
    // No retry on EINTR: on Linux the descriptor is gone either way.
    if (::close(file.fd) != 0 && errno != EINTR && !failure)
        failure = std::make_exception_ptr(file_error("cannot close", file.path, errno));
    file.fd = -1;
    file.dirty = false;
    file.new_entry = false;
    lru_.erase(file.lru);
    --open_count_;
    open_files_gauge_->set(static_cast<std::int64_t>(open_count_));
    if (failure) std::rethrow_exception(failure);
}

void FileSink::evict_least_recently_used() {
    File& victim = *lru_.front();
    // With fsync=interval, data waiting for the next sync must not lose that promise by being closed.
    try {
        close(victim, fsync_ != FsyncPolicy::never);
    } catch (const std::exception& e) {
        note_error(e.what());  // the file being opened is not to blame for it
    }
    forget_if_idle(victim);
}

void FileSink::forget_if_idle(File& file) {
    if (file.fd >= 0 || file.in_batch || !file.pending.empty()) return;
    files_.erase(std::string_view(file.path));
}

void FileSink::note_error(const std::string& message) {
    if (error_count_++ == 0) first_error_ = message;
}

void FileSink::throw_noted_errors() {
    if (error_count_ == 0) return;
    std::string message = std::move(first_error_);
    if (error_count_ > 1) message += " (and " + std::to_string(error_count_ - 1) + " more errors)";
    first_error_.clear();
    error_count_ = 0;
    throw std::runtime_error(message);
}

void FileSink::sync_all() {
    for (File* file : lru_) {
        try {
            sync(*file);
        } catch (const std::exception& e) {
            note_error(e.what());
        }
    }
    throw_noted_errors();
}

void FileSink::tick() {
    if (fsync_ != FsyncPolicy::interval) return;
    auto now = context_->clock().monotonic();
    if (now < next_sync_) return;
    next_sync_ = now + fsync_interval_;
    sync_and_settle();
}

std::chrono::milliseconds FileSink::tick_interval() const {
    if (fsync_ != FsyncPolicy::interval) return std::chrono::seconds(1);
    return std::min<std::chrono::milliseconds>(fsync_interval_, std::chrono::milliseconds(250));
}

void FileSink::flush() {
    // `never` means the kernel decides, at the end of input too: everything written is settled already.
    if (fsync_ != FsyncPolicy::never) sync_and_settle();
}

void FileSink::sync_and_settle() {
    try {
        sync_all();
    } catch (...) {
        settle_unsynced(false);
        throw;
    }
    settle_unsynced(true);
}

void FileSink::stop() {
    while (!lru_.empty()) {
        File& file = *lru_.front();
        try {
            close(file, fsync_ != FsyncPolicy::never);
        } catch (const std::exception& e) {
            note_error(e.what());
        }
    }
    files_.clear();
    path_valid_ = false;
    settle_unsynced(error_count_ == 0 && fsync_ != FsyncPolicy::never);
    throw_noted_errors();
}

}  // namespace hubflow::file
