#include "seen_cache.h"

#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace hubflow::dedupe {

namespace {
constexpr char magic[8] = {'H', 'F', 'D', 'E', 'D', 'U', 'P', '1'};
}

bool SeenCache::seen(std::uint64_t key, time_point now) {
    auto it = index_.find(key);
    if (it != index_.end()) {
        auto entry = it->second;
        if (max_age_.count() == 0 || now - entry->first_seen < max_age_) {
            order_.splice(order_.begin(), order_, entry);  // most recently seen again
            return true;
        }
        // Outside the window: a new first sighting.
        order_.erase(entry);
        index_.erase(it);
    }
    remember(key, now);
    return false;
}

void SeenCache::remember(std::uint64_t key, time_point first_seen) {
    while (index_.size() >= capacity_ && !order_.empty()) {
        index_.erase(order_.back().key);
        order_.pop_back();
        ++evictions_;
    }
    order_.push_front({key, first_seen});
    index_[key] = order_.begin();
}

void SeenCache::save(const std::filesystem::path& file) const {
    std::filesystem::path temporary = file;
    temporary += ".tmp";
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        if (!out) throw std::runtime_error("cannot write " + temporary.string());
        out.write(magic, sizeof magic);
        const std::uint64_t count = order_.size();
        out.write(reinterpret_cast<const char*>(&count), sizeof count);
        // Oldest first, so that loading in file order rebuilds the same recency order.
        for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
            const std::int64_t ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(it->first_seen.time_since_epoch()).count();
            out.write(reinterpret_cast<const char*>(&it->key), sizeof it->key);
            out.write(reinterpret_cast<const char*>(&ms), sizeof ms);
        }
        out.flush();
        if (!out) throw std::runtime_error("cannot write " + temporary.string());
    }
    std::filesystem::rename(temporary, file);
}

bool SeenCache::load(const std::filesystem::path& file, time_point now) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return false;
    char head[sizeof magic];
    std::uint64_t count = 0;
    if (!in.read(head, sizeof head) || std::memcmp(head, magic, sizeof magic) != 0)
        throw std::runtime_error(file.string() + " is not a dedupe cache (bad header)");
    if (!in.read(reinterpret_cast<char*>(&count), sizeof count))
        throw std::runtime_error(file.string() + " is truncated");
    const auto size = std::filesystem::file_size(file);
    if (size != sizeof magic + sizeof count + count * 16)
        throw std::runtime_error(file.string() + " is corrupt: " + std::to_string(count) + " entries announced, " +
                                 std::to_string(size) + " bytes found");
    order_.clear();
    index_.clear();
    for (std::uint64_t i = 0; i < count; ++i) {
        std::uint64_t key;
        std::int64_t ms;
        in.read(reinterpret_cast<char*>(&key), sizeof key);
        in.read(reinterpret_cast<char*>(&ms), sizeof ms);
        const time_point first_seen{std::chrono::milliseconds(ms)};
        if (max_age_.count() != 0 && now - first_seen >= max_age_) continue;  // expired while stopped
        if (index_.count(key)) continue;
        remember(key, first_seen);
    }
    return true;
}

}  // namespace hubflow::dedupe
