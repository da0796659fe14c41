#pragma once
// The low-level pieces of appending JSON Lines to files durably (SDK 1.2), shared by the file sink and the
// dead-letter writer and open to third-party sinks: whole writes, positioned reads, directory syncs, and the
// repair of a partial last line that a crash left behind. Plain POSIX descriptors; errors are
// std::runtime_error naming the operation, the file and the system's reason.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace hubflow {

std::runtime_error file_error(std::string_view what, const std::string& path, int err);

// Writes all of `data`, looping on partial writes and EINTR. Returns 0, or the errno that stopped it; `done`
// says how many bytes reached the file either way, so a caller can cut back to a whole line.
int write_all(int fd, const char* data, std::size_t size, std::size_t& done);
void write_all_or_throw(int fd, const char* data, std::size_t size, const std::string& path);

// Reads exactly `size` bytes at `offset`; throws on an error or a short file.
void read_at(int fd, char* out, std::size_t size, std::uint64_t offset, const std::string& path);

// A new or renamed name is durable only once the directory holding it is synced.
void sync_directory(const std::filesystem::path& dir);

// For the file of `size` bytes open (read and write) at `fd`: when it ends in a partial line (an interrupted
// write), appends that tail and a line break to `<path>.partial` (created with `partial_mode`), syncs it and its
// directory, then cuts the tail from the file and syncs the file. Returns the file's size afterwards (`size`
// when the last byte is a line break or the file is empty). Reads in bounded chunks, whatever the tail's size.
std::uint64_t move_partial_last_line(int fd, const std::string& path, std::uint64_t size, unsigned partial_mode);

}  // namespace hubflow
