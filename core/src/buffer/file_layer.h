#pragma once
// Every file operation the disk buffer does goes through FileLayer, so tests can put a layer underneath that
// loses what was not synced, crashes in the middle of an operation, flips bits, tears writes or fails with
// ENOSPC/EIO/EROFS (tests/unit/buffer/fault_file_layer.h). make_posix_file_layer() is the real one.
//
// Errors are thrown as FileError, carrying errno, the operation and the path, so every message names the file.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace hubflow::core::buffer {

class FileError : public std::runtime_error {
public:
    FileError(int error, std::string operation, std::filesystem::path path);
    // Builds the message but lets a subclass keep the original's errno, operation and path.
    FileError(const FileError& cause, const std::string& prefix);

    int error() const { return error_; }
    const std::string& operation() const { return operation_; }
    const std::filesystem::path& path() const { return path_; }

private:
    int error_;
    std::string operation_;
    std::filesystem::path path_;
};

// An open file. Not thread-safe: each File is used by one thread at a time.
class File {
public:
    virtual ~File() = default;
    // Appends all of `data` at the end of the file or throws (a short write followed by an error throws).
    virtual void append(std::string_view data) = 0;
    // Reads up to `size` bytes at `offset`; fewer only at the end of the file.
    virtual std::size_t read_at(std::uint64_t offset, char* out, std::size_t size) = 0;
    // fdatasync: the data written so far, and the size, are durable when this returns.
    virtual void sync() = 0;
    virtual std::uint64_t size() = 0;
    virtual void truncate(std::uint64_t size) = 0;
};

enum class OpenMode {
    read,           // existing file, read only
    read_write,     // existing file, read and append (the active segment; a write that failed is cut back)
    create_new,     // a new file, mode 0600; fails with EEXIST if it exists
    create_replace  // created (0600) or emptied; for a temporary file that is then renamed into place
};

class FileLayer {
public:
    virtual ~FileLayer() = default;
    virtual std::unique_ptr<File> open(const std::filesystem::path& path, OpenMode mode) = 0;
    // rename(2): atomic replacement of `to`.
    virtual void rename(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
    virtual void remove(const std::filesystem::path& path) = 0;
    // Names (not paths) of the entries of `dir`, in no particular order.
    virtual std::vector<std::string> list(const std::filesystem::path& dir) = 0;
    // Creates `dir` (mode 0700) and any missing parents; an existing directory is kept as it is.
    virtual void create_directories(const std::filesystem::path& dir) = 0;
    // fsync of the directory itself: entries created, renamed or removed in it are durable when this returns.
    virtual void sync_directory(const std::filesystem::path& dir) = 0;
};

std::unique_ptr<FileLayer> make_posix_file_layer();

}  // namespace hubflow::core::buffer
