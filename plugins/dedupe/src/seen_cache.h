#pragma once
// The memory of a `dedupe` node: event keys (64-bit hashes) in least-recently-seen order, bounded by a count
// and optionally by age. A hit refreshes the key's recency but not its first-seen time, so a window of
// `max_age` counts from the first sighting: a re-delivery after the window passes and starts a new one.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <list>
#include <string>
#include <unordered_map>

namespace hubflow::dedupe {

class SeenCache {
public:
    using time_point = std::chrono::system_clock::time_point;
    SeenCache(std::size_t capacity, std::chrono::milliseconds max_age) : capacity_(capacity), max_age_(max_age) {}

    // True when `key` was seen within the window and is still cached (a duplicate); otherwise remembers it,
    // evicting the least recently seen key when full, and returns false.
    bool seen(std::uint64_t key, time_point now);

    std::size_t size() const { return index_.size(); }
    std::uint64_t evictions() const { return evictions_; }

    // Persistence: a small binary file (magic, count, then key and first-seen ms per entry, oldest first),
    // written to a temporary name and renamed, so a crash leaves the old file or the new one. load() returns
    // false, leaving the cache empty, when the file is missing; throws std::runtime_error naming the problem
    // when it is unreadable or corrupt.
    void save(const std::filesystem::path& file) const;
    bool load(const std::filesystem::path& file, time_point now);

private:
    struct Entry {
        std::uint64_t key;
        time_point first_seen;
    };
    void remember(std::uint64_t key, time_point first_seen);

    std::size_t capacity_;
    std::chrono::milliseconds max_age_;  // zero = no window
    std::list<Entry> order_;             // front = most recently seen
    std::unordered_map<std::uint64_t, std::list<Entry>::iterator> index_;
    std::uint64_t evictions_ = 0;
};

}  // namespace hubflow::dedupe
