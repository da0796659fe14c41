#pragma once
// The history in local files: per site, an append-only log cut into segments, with the index in memory.
//
//   {dir}/{site, percent-encoded}/{first seq, 20 digits}.log      folders 0700, files 0600
//
// Each record is [u32 body length][u32 CRC-32 of the body][body: u64 seq, i64 event ms, i64 append ms, u8 hub,
// u32 id length, u32 user length, u32 payload length, id, user, payload], little endian. A record is written
// with one write(2) per batch before the batch is broadcast, so a kill -9 loses nothing the clients saw; with
// `fsync`, fdatasync(2) follows, so a power loss does not either. At start every segment is read back: a torn
// or corrupt tail of the newest segment (a crash mid-write) is cut off, one in an older segment ends that
// segment's records (both logged). Retention (max_events per site, max_age by arrival) drops index entries at
// once and deletes a segment once none of its records is left.
//
// Only the index is in memory (about 200 bytes an event); payloads are read back with pread(2) when a page is
// served.

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "history/history_store.h"

namespace hubflow::signalr {

struct FileHistorySettings {
    std::filesystem::path dir;
    std::size_t max_events = 100'000;  // per site, entries and incidents together
    std::chrono::seconds max_age{86'400};
    std::chrono::milliseconds delay{0};  // before an event becomes visible to queries
    bool fsync = false;
    std::size_t segment_events = 0;   // records per segment; 0 = max_events / 4, at least 256
    std::size_t scan_limit = 20'000;  // index entries one page may look at before it returns what it has
    std::function<std::chrono::system_clock::time_point()> clock = [] { return std::chrono::system_clock::now(); };
    std::function<void(const std::string&)> warn = [](const std::string&) {};
};

class FileHistoryStore final : public HistoryStore {
public:
    // Creates the folder and reads back what is there. Throws std::runtime_error naming the path on an I/O
    // error.
    explicit FileHistoryStore(FileHistorySettings settings);
    ~FileHistoryStore() override;

    void append(std::string_view site, std::span<const HistoryRecord> records) override;
    HistoryPage query(const HistoryRequest& request) override;

    // For tests and metrics.
    std::size_t size(std::string_view site);
    std::size_t segment_count(std::string_view site);

    // Folder name of a site: letters, digits, '-', '_' and '.' kept (not a leading '.'), anything else %XX.
    static std::string encode_site(std::string_view site);
    static std::optional<std::string> decode_site(std::string_view name);

private:
    struct Segment;
    struct Entry {
        std::uint64_t seq;
        std::int64_t event_ms;
        std::int64_t append_ms;
        Hub hub;
        std::string user;
        std::shared_ptr<Segment> segment;
        std::uint64_t payload_offset;
        std::uint32_t payload_length;
    };
    using Key = std::pair<std::int64_t, std::uint64_t>;  // (event ms, seq)
    struct Site {
        std::filesystem::path dir;
        std::deque<Entry> entries;               // in seq order; references stay valid on push_back and pop_front
        std::map<Key, const Entry*> by_time[2];  // per hub
        std::shared_ptr<Segment> active;
        std::uint64_t next_seq = 1;
        std::int64_t last_append_ms = 0;
    };

    Site& site_for(std::string_view site);
    void load_site(const std::filesystem::path& dir, const std::string& site);
    void open_segment(Site& s);
    void trim(Site& s, std::int64_t now_ms);

    FileHistorySettings settings_;
    std::mutex mutex_;
    std::unordered_map<std::string, std::unique_ptr<Site>> sites_;
};

}  // namespace hubflow::signalr
