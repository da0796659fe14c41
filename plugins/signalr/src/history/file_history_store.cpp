#include "history/file_history_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <Poco/Checksum.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace hubflow::signalr {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t header_bytes = 8;                              // length + CRC
constexpr std::size_t fixed_body_bytes = 8 + 8 + 8 + 1 + 4 + 4 + 4;  // seq .. payload length
constexpr std::uint32_t max_body_bytes = 64u * 1024 * 1024;

std::int64_t to_ms(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string errno_text() {
    return std::strerror(errno);
}

void put(std::string& out, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get(const unsigned char* p, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
        v |= std::uint64_t{p[i]} << (8 * i);
    return v;
}

std::uint32_t crc32(std::string_view bytes) {
    Poco::Checksum c(Poco::Checksum::TYPE_CRC32);
    c.update(bytes.data(), static_cast<unsigned>(bytes.size()));
    return c.checksum();
}

bool write_all(int fd, const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    return true;
}

std::string segment_name(std::uint64_t first_seq) {
    std::string digits = std::to_string(first_seq);
    return std::string(20 - std::min<std::size_t>(20, digits.size()), '0') + digits + ".log";
}

void make_private_dir(const fs::path& dir) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw std::runtime_error("history: cannot create " + dir.string() + ": " + errno_text());
    ::chmod(dir.c_str(), 0700);
}

}  // namespace

struct FileHistoryStore::Segment {
    fs::path path;
    int fd = -1;
    std::uint64_t size = 0;
    std::size_t records = 0;
    bool doomed = false;  // every record trimmed: the file is deleted when the last reference goes
    ~Segment() {
        if (fd >= 0) ::close(fd);
        if (doomed) ::unlink(path.c_str());
    }
};

FileHistoryStore::FileHistoryStore(FileHistorySettings settings) : settings_(std::move(settings)) {
    if (settings_.segment_events == 0) settings_.segment_events = std::max<std::size_t>(256, settings_.max_events / 4);
    settings_.scan_limit = std::max<std::size_t>(1, settings_.scan_limit);
    make_private_dir(settings_.dir);
    std::error_code ec;
    for (const auto& item : fs::directory_iterator(settings_.dir, ec)) {
        if (!item.is_directory()) continue;
        auto site = decode_site(item.path().filename().string());
        if (!site) {
            settings_.warn("history: ignoring the folder " + item.path().string() + " (not a site's)");
            continue;
        }
        load_site(item.path(), *site);
    }
    if (ec) throw std::runtime_error("history: cannot list " + settings_.dir.string() + ": " + ec.message());
}

FileHistoryStore::~FileHistoryStore() = default;

std::string FileHistoryStore::encode_site(std::string_view site) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (std::size_t i = 0; i < site.size(); ++i) {
        auto c = static_cast<unsigned char>(site[i]);
        bool keep = std::isalnum(c) || c == '-' || c == '_' || (c == '.' && i != 0);
        if (keep) {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

std::optional<std::string> FileHistoryStore::decode_site(std::string_view name) {
    std::string out;
    for (std::size_t i = 0; i < name.size(); ++i) {
        if (name[i] != '%') {
            out.push_back(name[i]);
            continue;
        }
        auto digit = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        if (i + 2 >= name.size()) return std::nullopt;
        int hi = digit(name[i + 1]), lo = digit(name[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    if (out.empty() || encode_site(out) != name) return std::nullopt;
    return out;
}

void FileHistoryStore::load_site(const fs::path& dir, const std::string& name) {
    auto owned = std::make_unique<Site>();
    Site& s = *owned;
    s.dir = dir;
    std::vector<fs::path> files;
    for (const auto& item : fs::directory_iterator(dir))
        if (item.is_regular_file() && item.path().extension() == ".log") files.push_back(item.path());
    std::sort(files.begin(), files.end());
    for (std::size_t f = 0; f < files.size(); ++f) {
        const bool newest = f + 1 == files.size();
        int fd = ::open(files[f].c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
        if (fd < 0) throw std::runtime_error("history: cannot open " + files[f].string() + ": " + errno_text());
        auto segment = std::make_shared<Segment>();
        segment->path = files[f];
        segment->fd = fd;
        struct stat st {};
        ::fstat(fd, &st);
        std::string bytes(static_cast<std::size_t>(st.st_size), '\0');
        std::size_t got = 0;
        while (got < bytes.size()) {
            ssize_t n = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        bytes.resize(got);
        std::size_t at = 0;
        std::string problem;
        while (at < bytes.size()) {
            if (bytes.size() - at < header_bytes) {
                problem = "a torn record header";
                break;
            }
            auto p = reinterpret_cast<const unsigned char*>(bytes.data() + at);
            auto length = static_cast<std::uint32_t>(get(p, 4));
            auto crc = static_cast<std::uint32_t>(get(p + 4, 4));
            if (length < fixed_body_bytes || length > max_body_bytes) {
                problem = "a record of impossible length";
                break;
            }
            if (bytes.size() - at - header_bytes < length) {
                problem = "a torn record";
                break;
            }
            std::string_view body(bytes.data() + at + header_bytes, length);
            if (crc32(body) != crc) {
                problem = "a record whose checksum does not match";
                break;
            }
            auto b = reinterpret_cast<const unsigned char*>(body.data());
            Entry e;
            e.seq = get(b, 8);
            e.event_ms = static_cast<std::int64_t>(get(b + 8, 8));
            e.append_ms = static_cast<std::int64_t>(get(b + 16, 8));
            e.hub = b[24] == 1 ? Hub::incidents : Hub::entries;
            auto id_len = get(b + 25, 4), user_len = get(b + 29, 4), payload_len = get(b + 33, 4);
            if (fixed_body_bytes + id_len + user_len + payload_len != length || b[24] > 1 ||
                (!s.entries.empty() && e.seq <= s.entries.back().seq)) {
                problem = "a malformed record";
                break;
            }
            e.user.assign(body.substr(fixed_body_bytes + id_len, user_len));
            e.segment = segment;
            e.payload_offset = at + header_bytes + fixed_body_bytes + id_len + user_len;
            e.payload_length = static_cast<std::uint32_t>(payload_len);
            s.entries.push_back(std::move(e));
            const Entry& kept = s.entries.back();
            s.by_time[kept.hub == Hub::incidents].emplace(Key{kept.event_ms, kept.seq}, &kept);
            s.next_seq = kept.seq + 1;
            s.last_append_ms = std::max(s.last_append_ms, kept.append_ms);
            ++segment->records;
            at += header_bytes + length;
        }
        segment->size = at;
        if (!problem.empty()) {
            if (newest) {
                settings_.warn("history: " + files[f].string() + " ends in " + problem + " at byte " +
                               std::to_string(at) + " (a crash mid-write); cut off there");
                if (::ftruncate(fd, static_cast<off_t>(at)) != 0)
                    throw std::runtime_error("history: cannot truncate " + files[f].string() + ": " + errno_text());
            } else {
                settings_.warn("history: " + files[f].string() + " holds " + problem + " at byte " +
                               std::to_string(at) + "; the rest of that file is ignored");
            }
        }
        if (newest)
            s.active = segment;
        else if (segment->records == 0)
            segment->doomed = true;  // nothing in it (all cut off, or created just before a crash)
    }
    // The newest segment's name also carries the next seq when retention has emptied the site.
    if (!files.empty()) {
        try {
            std::uint64_t first = std::stoull(files.back().stem().string());
            s.next_seq = std::max(s.next_seq, first);
        } catch (const std::exception&) {
        }
    }
    trim(s, to_ms(settings_.clock()));
    sites_.emplace(name, std::move(owned));
}

FileHistoryStore::Site& FileHistoryStore::site_for(std::string_view site) {
    auto it = sites_.find(std::string(site));
    if (it != sites_.end()) return *it->second;
    auto owned = std::make_unique<Site>();
    owned->dir = settings_.dir / encode_site(site);
    make_private_dir(owned->dir);
    Site& s = *owned;
    sites_.emplace(std::string(site), std::move(owned));
    return s;
}

void FileHistoryStore::open_segment(Site& s) {
    fs::path path = s.dir / segment_name(s.next_seq);
    int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("history: cannot create " + path.string() + ": " + errno_text());
    auto segment = std::make_shared<Segment>();
    segment->path = path;
    segment->fd = fd;
    struct stat st {};
    ::fstat(fd, &st);
    segment->size = static_cast<std::uint64_t>(st.st_size);
    if (settings_.fsync) {
        // The new name must survive a power loss too, not only its contents.
        int dfd = ::open(s.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
    }
    s.active = std::move(segment);
}

void FileHistoryStore::append(std::string_view site, std::span<const HistoryRecord> records) {
    if (records.empty()) return;
    std::lock_guard lock(mutex_);
    Site& s = site_for(site);
    if (!s.active || s.active->records >= settings_.segment_events) open_segment(s);
    // The wall clock may step back; arrival times stay ordered so that visibility and age cut a prefix.
    const std::int64_t now = std::max(to_ms(settings_.clock()), s.last_append_ms);
    std::string bytes;
    std::string body;
    std::vector<std::uint64_t> offsets;
    offsets.reserve(records.size());
    std::uint64_t seq = s.next_seq;
    for (const auto& r : records) {
        body.clear();
        put(body, seq++, 8);
        put(body, static_cast<std::uint64_t>(r.event_ms), 8);
        put(body, static_cast<std::uint64_t>(now), 8);
        put(body, r.hub == Hub::incidents ? 1 : 0, 1);
        put(body, r.id.size(), 4);
        put(body, r.user_id.size(), 4);
        put(body, r.payload.size(), 4);
        body.append(r.id);
        body.append(r.user_id);
        body.append(r.payload);
        if (body.size() > max_body_bytes) throw std::runtime_error("history: an event of more than 64 MiB");
        put(bytes, body.size(), 4);
        put(bytes, crc32(body), 4);
        offsets.push_back(s.active->size + bytes.size() + fixed_body_bytes + r.id.size() + r.user_id.size());
        bytes.append(body);
    }
    if (!write_all(s.active->fd, bytes)) {
        std::string why = errno_text();
        // A partial write leaves a torn record; cut it off so the next append starts on a record boundary.
        if (::ftruncate(s.active->fd, static_cast<off_t>(s.active->size)) != 0) s.active.reset();
        throw std::runtime_error("history: cannot write to " + s.active->path.string() + ": " + why);
    }
    if (settings_.fsync && ::fdatasync(s.active->fd) != 0)
        throw std::runtime_error("history: cannot sync " + s.active->path.string() + ": " + errno_text());
    s.active->size += bytes.size();
    s.active->records += records.size();
    for (std::size_t i = 0; i < records.size(); ++i) {
        const auto& r = records[i];
        Entry e{s.next_seq++,           r.event_ms, now,        r.hub,
                std::string(r.user_id), s.active,   offsets[i], static_cast<std::uint32_t>(r.payload.size())};
        s.entries.push_back(std::move(e));
        const Entry& kept = s.entries.back();
        s.by_time[kept.hub == Hub::incidents].emplace(Key{kept.event_ms, kept.seq}, &kept);
    }
    s.last_append_ms = now;
    trim(s, now);
}

void FileHistoryStore::trim(Site& s, std::int64_t now_ms) {
    const std::int64_t oldest =
        now_ms - std::chrono::duration_cast<std::chrono::milliseconds>(settings_.max_age).count();
    while (!s.entries.empty() && (s.entries.size() > settings_.max_events || s.entries.front().append_ms < oldest)) {
        Entry& e = s.entries.front();
        s.by_time[e.hub == Hub::incidents].erase(Key{e.event_ms, e.seq});
        std::shared_ptr<Segment> segment = e.segment;
        s.entries.pop_front();
        const bool last_of_segment = s.entries.empty() || s.entries.front().segment != segment;
        // The active segment stays, even empty: its name carries the next seq across a restart.
        if (last_of_segment && segment != s.active) segment->doomed = true;
    }
}

HistoryPage FileHistoryStore::query(const HistoryRequest& request) {
    std::lock_guard lock(mutex_);
    HistoryPage page;
    auto it = sites_.find(request.site);
    if (it == sites_.end()) return page;  // nothing kept for this site (yet): an empty, complete answer
    Site& s = *it->second;
    const std::int64_t now = to_ms(settings_.clock());
    trim(s, std::max(now, s.last_append_ms));

    if (request.snapshot) {
        page.snapshot = *request.snapshot;
    } else {
        // The newest event past the delay: arrival times are ordered, so the visible events are a prefix.
        const std::int64_t visible_until = now - settings_.delay.count();
        auto end = std::upper_bound(s.entries.begin(), s.entries.end(), visible_until,
                                    [](std::int64_t t, const Entry& e) { return t < e.append_ms; });
        if (end != s.entries.begin())
            page.snapshot = std::prev(end)->seq;
        else
            page.snapshot = s.entries.empty() ? s.next_seq - 1 : s.entries.front().seq - 1;
    }
    const auto& index = s.by_time[request.hub == Hub::incidents];
    const Key lo{request.from_ms.value_or(INT64_MIN), 0};
    const Key hi{request.to_ms.value_or(INT64_MAX), UINT64_MAX};
    if (request.limit == 0 || lo > hi) return page;

    std::size_t scanned = 0;
    std::optional<HistoryPosition> last_seen, last_taken;
    // Returns false to stop: the page is full and one more match exists, or the scan limit is reached.
    auto consider = [&](const Key& key, const Entry* e) -> bool {
        if (++scanned > settings_.scan_limit) {
            // Too many entries of other users or past the snapshot: answer what there is and resume after the
            // last entry looked at (the page may be empty; its token keeps the query going).
            page.next = last_seen;
            return false;
        }
        if (e->seq <= page.snapshot && (!request.user || e->user == *request.user)) {
            if (page.items.size() == request.limit) {
                page.next = last_taken;
                return false;
            }
            std::string payload(e->payload_length, '\0');
            std::size_t got = 0;
            while (got < payload.size()) {
                ssize_t n = ::pread(e->segment->fd, payload.data() + got, payload.size() - got,
                                    static_cast<off_t>(e->payload_offset + got));
                if (n <= 0) throw std::runtime_error("history: cannot read " + e->segment->path.string());
                got += static_cast<std::size_t>(n);
            }
            page.items.push_back(std::move(payload));
            last_taken = HistoryPosition{key.first, key.second};
        }
        last_seen = HistoryPosition{key.first, key.second};
        return true;
    };

    if (!request.descending) {
        auto i = index.lower_bound(lo);
        if (request.after) {
            Key after{request.after->event_ms, request.after->seq};
            if (after >= lo) i = index.upper_bound(after);
        }
        for (; i != index.end() && i->first <= hi; ++i)
            if (!consider(i->first, i->second)) break;
    } else {
        auto i = index.upper_bound(hi);
        if (request.after) {
            Key after{request.after->event_ms, request.after->seq};
            if (after <= hi) i = index.lower_bound(after);
        }
        while (i != index.begin()) {
            --i;
            if (i->first < lo) break;
            if (!consider(i->first, i->second)) break;
        }
    }
    // A page cut by the scan limit before it looked at anything resumes where it was.
    if (!page.next && scanned > settings_.scan_limit) page.next = request.after;
    return page;
}

std::size_t FileHistoryStore::size(std::string_view site) {
    std::lock_guard lock(mutex_);
    auto it = sites_.find(std::string(site));
    return it == sites_.end() ? 0 : it->second->entries.size();
}

std::size_t FileHistoryStore::segment_count(std::string_view site) {
    std::lock_guard lock(mutex_);
    auto it = sites_.find(std::string(site));
    if (it == sites_.end()) return 0;
    std::size_t n = 0;
    for (const auto& item : fs::directory_iterator(it->second->dir))
        n += item.path().extension() == ".log";
    return n;
}

}  // namespace hubflow::signalr
