#include "seen_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>

namespace hubflow::dedupe {

static_assert(std::endian::native == std::endian::little, "the cache file is written in the host's byte order");

namespace {

constexpr char magic[8] = {'H', 'F', 'D', 'E', 'D', 'U', 'P', '2'};
constexpr std::size_t header_bytes = sizeof magic + 8;
constexpr std::size_t entry_bytes = 16;

// Murmur3's finaliser: spreads FNV's weak low bits over the whole word before the index masks them off.
std::uint64_t mix(std::uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

// A checksum over whole 8-byte words (the file is made of them), so that a flipped bit anywhere is caught.
std::uint64_t checksum(const char* data, std::size_t size) {
    std::uint64_t sum = 0x9e3779b97f4a7c15ull;
    for (std::size_t at = 0; at + 8 <= size; at += 8) {
        std::uint64_t word;
        std::memcpy(&word, data + at, 8);
        sum = mix(sum ^ word) + at;
    }
    return sum;
}

void put(std::string& out, std::uint64_t word) {
    out.append(reinterpret_cast<const char*>(&word), 8);
}

std::uint64_t get(const std::string& in, std::size_t at) {
    std::uint64_t word;
    std::memcpy(&word, in.data() + at, 8);
    return word;
}

[[noreturn]] void fail_errno(const std::string& what, const std::filesystem::path& file) {
    throw std::system_error(errno, std::generic_category(), what + " " + file.string());
}

}  // namespace

std::uint64_t key_hash(std::string_view text) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

SeenCache::SeenCache(std::size_t capacity, std::chrono::milliseconds max_age)
    : capacity_(std::clamp<std::size_t>(capacity, 1, max_capacity)), max_age_(max_age), index_(16, none), mask_(15) {}

std::size_t SeenCache::home(std::uint64_t key) const {
    return mix(key) & mask_;
}

std::size_t SeenCache::find_cell(std::uint64_t key) const {
    std::size_t cell = home(key);
    while (index_[cell] != none && slots_[index_[cell]].key != key)
        cell = (cell + 1) & mask_;
    return cell;
}

void SeenCache::erase_cell(std::size_t cell) {
    // Backward-shift deletion: move each later member of the probe run into the hole unless that would put it
    // before its home cell, so every key stays reachable from its home without tombstones.
    std::size_t hole = cell;
    for (std::size_t i = (cell + 1) & mask_; index_[i] != none; i = (i + 1) & mask_) {
        const std::size_t h = home(slots_[index_[i]].key);
        if (((i - h) & mask_) >= ((i - hole) & mask_)) {
            index_[hole] = index_[i];
            hole = i;
        }
    }
    index_[hole] = none;
}

void SeenCache::grow_index() {
    reserve(index_.size());
}

void SeenCache::reserve(std::size_t keys) {
    keys = std::min(keys, capacity_);
    slots_.reserve(keys);
    if (2 * keys > index_.size()) {
        index_.assign(std::bit_ceil(2 * keys), none);
        mask_ = index_.size() - 1;
        for (std::uint32_t s = 0; s < slots_.size(); ++s)
            index_[find_cell(slots_[s].key)] = s;
    }
}

void SeenCache::unlink(std::uint32_t s) {
    Slot& slot = slots_[s];
    if (slot.prev != none)
        slots_[slot.prev].next = slot.next;
    else
        head_ = slot.next;
    if (slot.next != none)
        slots_[slot.next].prev = slot.prev;
    else
        tail_ = slot.prev;
    slot.prev = slot.next = none;
}

void SeenCache::push_front(std::uint32_t s) {
    Slot& slot = slots_[s];
    slot.prev = none;
    slot.next = head_;
    if (head_ != none) slots_[head_].prev = s;
    head_ = s;
    if (tail_ == none) tail_ = s;
}

void SeenCache::insert(std::uint64_t key, std::int64_t first_seen, std::size_t cell) {
    std::uint32_t s;
    if (slots_.size() < capacity_) {
        if (2 * (slots_.size() + 1) > index_.size()) {
            grow_index();
            cell = find_cell(key);
        }
        // Grow by doubling but never past the capacity, so a full cache holds no spare slots.
        if (slots_.size() == slots_.capacity())
            slots_.reserve(std::min(capacity_, std::max<std::size_t>(16, 2 * slots_.size())));
        slots_.push_back({key, first_seen, none, none});
        s = static_cast<std::uint32_t>(slots_.size() - 1);
    } else {
        s = tail_;
        erase_cell(find_cell(slots_[s].key));
        unlink(s);
        ++evictions_;
        cell = find_cell(key);  // the deletion may have shifted the run `cell` was in
        slots_[s].key = key;
        slots_[s].first_seen = first_seen;
    }
    index_[cell] = s;
    push_front(s);
}

bool SeenCache::seen(std::uint64_t key, time_point now) {
    const std::size_t cell = find_cell(key);
    const std::uint32_t s = index_[cell];
    if (s == none) {
        insert(key, now.time_since_epoch().count(), cell);
        return false;
    }
    Slot& slot = slots_[s];
    const bool duplicate = !expired(slot, now);
    if (!duplicate) slot.first_seen = now.time_since_epoch().count();  // outside the window: a new first sighting
    if (head_ != s) {
        unlink(s);
        push_front(s);
    }
    return duplicate;
}

std::size_t SeenCache::memory_bytes() const {
    return slots_.capacity() * sizeof(Slot) + index_.capacity() * sizeof(std::uint32_t);
}

std::vector<std::uint64_t> SeenCache::keys_oldest_first() const {
    std::vector<std::uint64_t> keys;
    keys.reserve(slots_.size());
    for (std::uint32_t s = tail_; s != none; s = slots_[s].prev)
        keys.push_back(slots_[s].key);
    return keys;
}

void SeenCache::save(const std::filesystem::path& file, time_point now) const {
    std::string data;
    data.reserve(header_bytes + slots_.size() * entry_bytes + 8);
    data.append(magic, sizeof magic);
    put(data, 0);  // the count, filled in below
    std::uint64_t count = 0;
    // Oldest first, so that loading in file order rebuilds the same recency order.
    for (std::uint32_t s = tail_; s != none; s = slots_[s].prev) {
        if (expired(slots_[s], now)) continue;
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(time_point::duration(slots_[s].first_seen));
        put(data, slots_[s].key);
        put(data, static_cast<std::uint64_t>(ms.count()));
        ++count;
    }
    std::memcpy(data.data() + sizeof magic, &count, 8);
    put(data, checksum(data.data(), data.size()));

    std::filesystem::path temporary = file;
    temporary += ".tmp";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail_errno("cannot create", temporary);
    for (std::size_t at = 0; at < data.size();) {
        const ssize_t n = ::write(fd, data.data() + at, data.size() - at);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int error = errno;
            ::close(fd);
            errno = error;
            fail_errno("cannot write", temporary);
        }
        at += static_cast<std::size_t>(n);
    }
    // Synced before the rename, so that after a power loss the name points at complete contents.
    if (::fsync(fd) != 0) {
        const int error = errno;
        ::close(fd);
        errno = error;
        fail_errno("cannot sync", temporary);
    }
    ::close(fd);
    std::filesystem::rename(temporary, file);
    const int dir = ::open(file.parent_path().empty() ? "." : file.parent_path().c_str(), O_RDONLY | O_CLOEXEC);
    if (dir >= 0) {
        ::fsync(dir);  // makes the rename itself durable; best effort
        ::close(dir);
    }
}

bool SeenCache::load(const std::filesystem::path& file, time_point now) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        if (!std::filesystem::exists(file)) return false;
        throw std::runtime_error("cannot read " + file.string());
    }
    std::string data(std::filesystem::file_size(file), '\0');
    if (!in.read(data.data(), static_cast<std::streamsize>(data.size())))
        throw std::runtime_error("cannot read " + file.string());
    if (data.size() < header_bytes + 8 || std::memcmp(data.data(), magic, sizeof magic) != 0)
        throw std::runtime_error(file.string() + " is not a dedupe cache (bad header)");
    const std::uint64_t count = get(data, sizeof magic);
    if (count > (data.size() - header_bytes - 8) / entry_bytes || data.size() != header_bytes + count * entry_bytes + 8)
        throw std::runtime_error(file.string() + " is truncated or damaged: " + std::to_string(count) +
                                 " entries announced, " + std::to_string(data.size()) + " bytes found");
    if (get(data, data.size() - 8) != checksum(data.data(), data.size() - 8))
        throw std::runtime_error(file.string() + " is damaged (checksum mismatch)");

    SeenCache fresh(capacity_, max_age_);
    fresh.reserve(count);
    for (std::uint64_t i = 0; i < count; ++i) {
        const std::size_t at = header_bytes + i * entry_bytes;
        const std::uint64_t key = get(data, at);
        const auto ms = std::chrono::milliseconds(static_cast<std::int64_t>(get(data, at + 8)));
        const time_point first_seen{std::chrono::duration_cast<time_point::duration>(ms)};
        if (max_age_.count() != 0 && now - first_seen >= max_age_) continue;  // expired while stopped
        const std::size_t cell = fresh.find_cell(key);
        if (fresh.index_[cell] != none) continue;  // a well-formed file has no repeats; keep the first
        // Beyond the capacity (it was lowered since the save), the oldest entries are evicted as they would be.
        fresh.insert(key, first_seen.time_since_epoch().count(), cell);
    }
    fresh.evictions_ = 0;
    *this = std::move(fresh);
    return true;
}

}  // namespace hubflow::dedupe
