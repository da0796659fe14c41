#include "hubflow/dead_letters.h"
#include "hubflow/line_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "hubflow/json.h"
#include "hubflow/path_template.h"

namespace hubflow {

namespace {

namespace fs = std::filesystem;

// Creates the missing directories of `dir`, each 0700, and syncs the parent of each one it creates.
void create_private_directories(const fs::path& dir, const std::string& for_file) {
    std::vector<fs::path> missing;
    for (fs::path at = dir; !at.empty() && at != at.root_path(); at = at.parent_path()) {
        struct stat st {};
        if (::stat(at.c_str(), &st) == 0) break;
        if (errno != ENOENT) throw file_error("cannot look at the directory", at.string(), errno);
        missing.push_back(at);
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        if (::mkdir(it->c_str(), 0700) != 0 && errno != EEXIST)
            throw std::runtime_error("cannot create directory '" + it->string() + "' for '" + for_file +
                                     "': " + std::system_category().message(errno));
        sync_directory(it->parent_path());
    }
}

bool is_object_text(std::string_view record) {
    const auto first = record.find_first_not_of(" \t\r\n");
    const auto last = record.find_last_not_of(" \t\r\n");
    return first != std::string_view::npos && record[first] == '{' && record[last] == '}';
}

// One record, one line: raw line breaks can only be JSON whitespace, and become spaces.
void append_line(std::string& out, std::string_view record) {
    const std::size_t at = out.size();
    out.append(record);
    for (std::size_t i = at; i < out.size(); ++i)
        if (out[i] == '\n' || out[i] == '\r') out[i] = ' ';
    out += '\n';
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

void DeadLetterRecord::name(std::string_view name) {
    if (!members_.empty()) members_ += ',';
    append_json_string(members_, name);
    members_ += ':';
}

DeadLetterRecord& DeadLetterRecord::add_string(std::string_view name, std::string_view value) {
    this->name(name);
    append_json_string(members_, value);
    return *this;
}

DeadLetterRecord& DeadLetterRecord::add_integer(std::string_view name, std::int64_t value) {
    this->name(name);
    members_ += std::to_string(value);
    return *this;
}

DeadLetterRecord& DeadLetterRecord::add_null(std::string_view name) {
    this->name(name);
    members_ += "null";
    return *this;
}

DeadLetterRecord& DeadLetterRecord::add_time(std::string_view name, std::chrono::system_clock::time_point t) {
    return add_string(name, format_utc(t));
}

DeadLetterRecord& DeadLetterRecord::add_json(std::string_view name, std::string_view json) {
    this->name(name);
    members_ += json;
    return *this;
}

std::string DeadLetterRecord::text() const {
    return '{' + members_ + '}';
}

std::string DeadLetterRecord::with_json(std::string_view name, std::string_view json) const {
    std::string out;
    out.reserve(members_.size() + name.size() + json.size() + 8);
    out += '{';
    out += members_;
    if (!members_.empty()) out += ',';
    append_json_string(out, name);
    out += ':';
    out += json;
    out += '}';
    return out;
}

// ---------------------------------------------------------------------------------------------------------------

class DeadLetterWriter::Impl {
public:
    Impl(std::string_view path, Context& context)
        : template_(path),
          log_(context.log()),
          records_(context.metrics().counter("dead_letter_records_written", "records appended to dead_letter")),
          bytes_(context.metrics().counter("dead_letter_bytes_written", "bytes appended to dead_letter")),
          repaired_(context.metrics().counter("dead_letter_partial_lines_repaired",
                                              "partial last lines of dead_letter moved to <path>.partial")) {}

    ~Impl() {
        if (fd_ >= 0) ::close(fd_);
    }

    const std::string& path() const { return template_.text(); }

    void open() {
        std::lock_guard lock(mutex_);
        if (template_.has_fields() || template_.has_time()) return;
        template_.render(Event{}, 0, scratch_);
        switch_to(scratch_);
    }

    void write(std::span<const std::string> records, std::chrono::system_clock::time_point at) {
        for (std::size_t i = 0; i < records.size(); ++i)
            if (!is_object_text(records[i]))
                throw std::invalid_argument("dead-letter record " + std::to_string(i + 1) + " of " +
                                            std::to_string(records.size()) + " is not a JSON object text");
        const std::int64_t second = std::chrono::floor<std::chrono::seconds>(at.time_since_epoch()).count();

        std::lock_guard lock(mutex_);
        // Records go out in their order, one write per run of records that share a file.
        Event record;
        std::string lines;
        std::size_t count = 0;
        for (const std::string& text : records) {
            if (template_.has_fields()) record.payload = text;
            template_.render(record, second, scratch_);
            if (fd_ < 0 || scratch_ != current_path_) {
                if (!lines.empty()) append_synced(lines, count);
                lines.clear();
                count = 0;
                switch_to(scratch_);
            }
            append_line(lines, text);
            ++count;
        }
        if (!lines.empty()) append_synced(lines, count);
    }

    void close() {
        std::lock_guard lock(mutex_);
        close_current();
    }

private:
    // Makes `path` the open file, closing the one before.
    void switch_to(const std::string& path) {
        close_current();
        current_path_ = path;
        fd_ = open_file(current_path_, size_);
    }

    void close_current() {
        if (fd_ < 0) return;
        const int fd = std::exchange(fd_, -1);
        // Every write() was synced already; a close error still says the data may not be there.
        if (::close(fd) != 0 && errno != EINTR) throw file_error("cannot close", current_path_, errno);
    }

    int open_file(const std::string& path, std::uint64_t& size) {
        constexpr int flags = O_RDWR | O_APPEND | O_CLOEXEC;  // read too: the partial-line check reads the tail
        int fd = ::open(path.c_str(), flags);
        bool created = false;
        if (fd < 0 && errno == ENOENT) {
            create_private_directories(fs::path(path).parent_path(), path);
            fd = ::open(path.c_str(), flags | O_CREAT | O_EXCL, 0600);
            created = fd >= 0;
            if (fd < 0 && errno == EEXIST) fd = ::open(path.c_str(), flags);
        }
        if (fd < 0) throw file_error("cannot open the dead-letter file", path, errno);
        try {
            struct stat st {};
            if (::fstat(fd, &st) != 0) throw file_error("cannot stat", path, errno);
            if (!S_ISREG(st.st_mode)) throw std::runtime_error("cannot write '" + path + "': not a regular file");
            size = static_cast<std::uint64_t>(st.st_size);
            if (size > 0) size = repair_tail(path, fd, size);
            if (created) sync_directory(fs::path(path).parent_path());
        } catch (...) {
            ::close(fd);
            throw;
        }
        return fd;
    }

    // Returns the file's size after moving a partial last line, if any, to <path>.partial.
    std::uint64_t repair_tail(const std::string& path, int fd, std::uint64_t size) {
        const std::uint64_t cut = move_partial_last_line(fd, path, size, 0600);
        if (cut == size) return size;
        log_.warn("dead-letter file '", path, "' ended in a partial line of ", size - cut,
                  " bytes (an interrupted write); moved it to '", path, ".partial'");
        repaired_.add();
        return cut;
    }

    // Appends whole lines to the open file and syncs them. On failure the file is cut back to its last whole
    // line and closed: a descriptor whose sync failed is never trusted again (the kernel may have dropped the
    // pages), and reopening repairs what cannot be cut.
    void append_synced(std::string_view lines, std::size_t count) {
        std::size_t done = 0;
        int err = write_all(fd_, lines.data(), lines.size(), done);
        std::size_t keep = done;
        if (err && done > 0) {
            keep = 0;
            if (const void* nl = ::memrchr(lines.data(), '\n', done))
                keep = static_cast<std::size_t>(static_cast<const char*>(nl) - lines.data()) + 1;
            if (::ftruncate(fd_, static_cast<off_t>(size_ + keep)) != 0) keep = done;
        }
        size_ += keep;
        bytes_.add(keep);
        if (err) {
            ::close(std::exchange(fd_, -1));
            throw file_error("cannot write the dead-letter file", current_path_, err);
        }
        if (::fdatasync(fd_) != 0) {
            err = errno;
            ::close(std::exchange(fd_, -1));
            throw file_error("cannot sync the dead-letter file", current_path_, err);
        }
        records_.add(count);
    }

    std::mutex mutex_;
    PathTemplate template_;
    Logger& log_;
    Counter& records_;
    Counter& bytes_;
    Counter& repaired_;
    std::string scratch_;
    std::string current_path_;  // the open file's, or the last one's
    int fd_ = -1;
    std::uint64_t size_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------

DeadLetterWriter::DeadLetterWriter(std::string_view path, Context& context)
    : impl_(std::make_unique<Impl>(path, context)) {}

DeadLetterWriter::~DeadLetterWriter() {
    try {
        impl_->close();
    } catch (...) {  // nothing is left unsynced: every write() synced before it returned
    }
}

const std::string& DeadLetterWriter::path() const {
    return impl_->path();
}

void DeadLetterWriter::open() {
    impl_->open();
}

void DeadLetterWriter::write(std::span<const std::string> records, std::chrono::system_clock::time_point at) {
    impl_->write(records, at);
}

void DeadLetterWriter::write(const std::string& record, std::chrono::system_clock::time_point at) {
    impl_->write(std::span<const std::string>(&record, 1), at);
}

void DeadLetterWriter::close() {
    impl_->close();
}

}  // namespace hubflow
