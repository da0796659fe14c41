#include "hubflow/line_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace hubflow {

namespace {
// The repair reads and copies through a buffer of this size, so a huge partial tail is no huge allocation.
constexpr std::size_t repair_chunk = 64 * 1024;
}  // namespace

std::runtime_error file_error(std::string_view what, const std::string& path, int err) {
    return std::runtime_error(std::string(what) + " '" + path + "': " + std::system_category().message(err));
}

int write_all(int fd, const char* data, std::size_t size, std::size_t& done) {
    done = 0;
    while (done < size) {
        ssize_t n = ::write(fd, data + done, size - done);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return n < 0 ? errno : EIO;  // 0 bytes for a non-empty write: the device took nothing
        }
    }
    return 0;
}

void write_all_or_throw(int fd, const char* data, std::size_t size, const std::string& path) {
    std::size_t done = 0;
    if (int err = write_all(fd, data, size, done)) throw file_error("cannot write", path, err);
}

void read_at(int fd, char* out, std::size_t size, std::uint64_t offset, const std::string& path) {
    std::size_t done = 0;
    while (done < size) {
        ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
        if (n > 0) {
            done += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            throw file_error("cannot read", path, n < 0 ? errno : EIO);
        }
    }
}

void sync_directory(const std::filesystem::path& dir) {
    const std::filesystem::path name = dir.empty() ? std::filesystem::path(".") : dir;
    int fd = ::open(name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw file_error("cannot open the directory", name.string(), errno);
    int err = ::fsync(fd) == 0 ? 0 : errno;
    ::close(fd);
    if (err) throw file_error("cannot sync the directory", name.string(), err);
}

std::uint64_t move_partial_last_line(int fd, const std::string& path, std::uint64_t size, unsigned partial_mode) {
    if (size == 0) return 0;
    char last = 0;
    read_at(fd, &last, 1, size - 1, path);
    if (last == '\n') return size;

    std::string buffer(repair_chunk, '\0');
    std::uint64_t cut = 0;  // just after the last line break; 0 when the file has none
    for (std::uint64_t end = size; end > 0;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(repair_chunk, end));
        const std::uint64_t start = end - n;
        read_at(fd, buffer.data(), n, start, path);
        if (const void* nl = ::memrchr(buffer.data(), '\n', n)) {
            cut = start + static_cast<std::uint64_t>(static_cast<const char*>(nl) - buffer.data()) + 1;
            break;
        }
        end = start;
    }

    // The tail is made durable in <path>.partial before the main file loses it.
    const std::string partial = path + ".partial";
    int pfd = ::open(partial.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, static_cast<mode_t>(partial_mode));
    if (pfd < 0) throw file_error("cannot open", partial, errno);
    try {
        for (std::uint64_t at = cut; at < size;) {
            const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(repair_chunk, size - at));
            read_at(fd, buffer.data(), n, at, path);
            write_all_or_throw(pfd, buffer.data(), n, partial);
            at += n;
        }
        write_all_or_throw(pfd, "\n", 1, partial);
        if (::fdatasync(pfd) != 0) throw file_error("cannot sync", partial, errno);
    } catch (...) {
        ::close(pfd);
        throw;
    }
    ::close(pfd);
    sync_directory(std::filesystem::path(partial).parent_path());
    if (::ftruncate(fd, static_cast<off_t>(cut)) != 0)
        throw file_error("cannot cut the partial last line of", path, errno);
    if (::fdatasync(fd) != 0) throw file_error("cannot sync", path, errno);
    return cut;
}

}  // namespace hubflow
