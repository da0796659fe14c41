#pragma once
// The memory of a `dedupe` node: event keys (64-bit hashes) in least-recently-seen order, bounded by a count
// and optionally by age. A hit refreshes the key's recency but not its first-seen time, so a window of
// `max_age` counts from the first sighting: a re-delivery after the window passes and starts a new one.
//
// Layout, chosen so that a million keys cost about 32 bytes each and a lookup allocates nothing:
//  - slots_: one 24-byte entry per key (hash, first-seen time, previous and next slot), linked into an
//    intrusive recency list by 32-bit indices. It grows up to `capacity` and is then reused in place: an
//    eviction overwrites the least recently seen slot.
//  - index_: an open-addressing table of slot numbers (linear probing, at most half full, 4 bytes a cell),
//    so a lookup touches one or two adjacent cells and then the slot itself. Deletion shifts later cells of
//    the same run back instead of leaving tombstones, so the table never degrades under eviction churn.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

namespace hubflow::dedupe {

// 64-bit FNV-1a of a key's text. Stable across builds and platforms, so a persisted cache stays valid after
// an upgrade. It is not collision-resistant against someone crafting keys; the inputs here are event ids.
std::uint64_t key_hash(std::string_view text);

class SeenCache {
public:
    using time_point = std::chrono::system_clock::time_point;
    static constexpr std::size_t max_capacity = 100'000'000;  // slot numbers are 32-bit

    SeenCache(std::size_t capacity, std::chrono::milliseconds max_age);

    // True when `key` was seen within the window and is still cached (a duplicate); otherwise remembers it,
    // evicting the least recently seen key when full, and returns false.
    bool seen(std::uint64_t key, time_point now);
    // Starts loading the index cell where `key` would be. A lookup in a large cache is two cache misses (the
    // cell, then the slot); issuing this for a whole batch before the lookups overlaps the first of them.
    void prefetch(std::uint64_t key) const { __builtin_prefetch(index_.data() + home(key)); }

    std::size_t size() const { return slots_.size(); }
    std::uint64_t evictions() const { return evictions_; }
    // Bytes held by the cache's own arrays (slots and index, allocated capacity), for the memory gauge.
    std::size_t memory_bytes() const;
    // Keys from the least to the most recently seen; for tests and persistence.
    std::vector<std::uint64_t> keys_oldest_first() const;

    // Persistence: a binary file, little-endian: magic "HFDEDUP2", entry count, then per entry its key and
    // first-seen time (ms since the epoch), oldest first, then a checksum of everything before it. Written to a
    // temporary name, synced and renamed, so a crash leaves the old file or the new one. Entries outside the
    // window are left out. load() returns false, leaving the cache as it was, when the file is missing; it
    // throws std::runtime_error naming the problem when the file is unreadable, truncated or damaged (the cache
    // is then unchanged too).
    void save(const std::filesystem::path& file, time_point now) const;
    bool load(const std::filesystem::path& file, time_point now);

private:
    static constexpr std::uint32_t none = UINT32_MAX;
    struct Slot {
        std::uint64_t key;
        std::int64_t first_seen;  // time_point ticks
        std::uint32_t prev;       // towards the most recent
        std::uint32_t next;       // towards the least recent
    };

    bool expired(const Slot& s, time_point now) const {
        return max_age_.count() != 0 && now - time_point(time_point::duration(s.first_seen)) >= max_age_;
    }
    std::size_t home(std::uint64_t key) const;
    std::size_t find_cell(std::uint64_t key) const;  // cell holding key, or the empty cell ending its run
    void erase_cell(std::size_t cell);
    void grow_index();
    void reserve(std::size_t keys);  // room for `keys` without growing
    void unlink(std::uint32_t s);
    void push_front(std::uint32_t s);
    void insert(std::uint64_t key, std::int64_t first_seen, std::size_t cell);

    std::size_t capacity_;
    std::chrono::milliseconds max_age_;  // zero = no window
    std::vector<Slot> slots_;
    std::vector<std::uint32_t> index_;  // slot numbers; `none` = empty. Size a power of two.
    std::size_t mask_ = 0;
    std::uint32_t head_ = none;  // most recently seen
    std::uint32_t tail_ = none;  // least recently seen: evicted first
    std::uint64_t evictions_ = 0;
};

}  // namespace hubflow::dedupe
