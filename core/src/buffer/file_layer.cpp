#include "buffer/file_layer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hubflow::core::buffer {

namespace fs = std::filesystem;

FileError::FileError(int error, std::string operation, fs::path path)
    : std::runtime_error(operation + " " + path.string() + ": " + std::strerror(error)),
      error_(error),
      operation_(std::move(operation)),
      path_(std::move(path)) {}

FileError::FileError(const FileError& cause, const std::string& prefix)
    : std::runtime_error(prefix + cause.what()),
      error_(cause.error_),
      operation_(cause.operation_),
      path_(cause.path_) {}

namespace {

class PosixFile final : public File {
public:
    PosixFile(int fd, fs::path path) : fd_(fd), path_(std::move(path)) {}
    ~PosixFile() override { ::close(fd_); }
    PosixFile(const PosixFile&) = delete;
    PosixFile& operator=(const PosixFile&) = delete;

    void append(std::string_view data) override {
        std::size_t done = 0;
        while (done < data.size()) {
            ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw FileError(errno, "write", path_);
            if (n == 0) throw FileError(EIO, "write", path_);
            done += static_cast<std::size_t>(n);
        }
    }

    std::size_t read_at(std::uint64_t offset, char* out, std::size_t size) override {
        std::size_t done = 0;
        while (done < size) {
            ssize_t n = ::pread(fd_, out + done, size - done, static_cast<off_t>(offset + done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw FileError(errno, "read", path_);
            if (n == 0) break;
            done += static_cast<std::size_t>(n);
        }
        return done;
    }

    void sync() override {
        if (::fdatasync(fd_) != 0) throw FileError(errno, "fdatasync", path_);
    }

    std::uint64_t size() override {
        struct stat st {};
        if (::fstat(fd_, &st) != 0) throw FileError(errno, "stat", path_);
        return static_cast<std::uint64_t>(st.st_size);
    }

    void truncate(std::uint64_t size) override {
        if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) throw FileError(errno, "truncate", path_);
    }

private:
    int fd_;
    fs::path path_;
};

class PosixFileLayer final : public FileLayer {
public:
    std::unique_ptr<File> open(const fs::path& path, OpenMode mode) override {
        int flags = O_CLOEXEC;
        switch (mode) {
            case OpenMode::read:
                flags |= O_RDONLY;
                break;
            case OpenMode::read_write:
                flags |= O_RDWR | O_APPEND;
                break;
            case OpenMode::create_new:
                flags |= O_RDWR | O_APPEND | O_CREAT | O_EXCL;
                break;
            case OpenMode::create_replace:
                flags |= O_RDWR | O_APPEND | O_CREAT | O_TRUNC;
                break;
        }
        int fd = ::open(path.c_str(), flags, 0600);
        if (fd < 0) throw FileError(errno, "open", path);
        return std::make_unique<PosixFile>(fd, path);
    }

    void rename(const fs::path& from, const fs::path& to) override {
        if (::rename(from.c_str(), to.c_str()) != 0) throw FileError(errno, "rename to " + to.string(), from);
    }

    void remove(const fs::path& path) override {
        if (::unlink(path.c_str()) != 0) throw FileError(errno, "unlink", path);
    }

    std::vector<std::string> list(const fs::path& dir) override {
        DIR* d = ::opendir(dir.c_str());
        if (d == nullptr) throw FileError(errno, "list", dir);
        std::vector<std::string> names;
        errno = 0;
        while (dirent* entry = ::readdir(d)) {
            std::string name = entry->d_name;
            if (name != "." && name != "..") names.push_back(std::move(name));
        }
        int error = errno;
        ::closedir(d);
        if (error != 0) throw FileError(error, "list", dir);
        return names;
    }

    void create_directories(const fs::path& dir) override {
        fs::path partial;
        for (const auto& part : dir) {
            partial /= part;
            if (::mkdir(partial.c_str(), 0700) == 0) continue;
            int error = errno;
            if (error != EEXIST) throw FileError(error, "mkdir", partial);
            struct stat st {};
            if (::stat(partial.c_str(), &st) != 0) throw FileError(errno, "stat", partial);
            if (!S_ISDIR(st.st_mode)) throw FileError(ENOTDIR, "mkdir", partial);
        }
    }

    void sync_directory(const fs::path& dir) override {
        int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) throw FileError(errno, "open directory", dir);
        int rc = ::fsync(fd);
        int error = errno;
        ::close(fd);
        if (rc != 0) throw FileError(error, "fsync directory", dir);
    }
};

}  // namespace

std::unique_ptr<FileLayer> make_posix_file_layer() {
    return std::make_unique<PosixFileLayer>();
}

}  // namespace hubflow::core::buffer
