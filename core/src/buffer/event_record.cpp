#include "buffer/event_record.h"

#include <cstdint>
#include <cstring>

namespace hubflow::core::buffer {

namespace {

template <typename T>
void put(std::string& out, T value) {
    char bytes[sizeof(T)];
    for (std::size_t i = 0; i < sizeof(T); ++i)
        bytes[i] = static_cast<char>(static_cast<std::uint64_t>(value) >> (8 * i));
    out.append(bytes, sizeof(T));
}

void put_string(std::string& out, std::string_view text) {
    put<std::uint32_t>(out, static_cast<std::uint32_t>(text.size()));
    out.append(text);
}

class Reader {
public:
    explicit Reader(std::string_view bytes) : rest_(bytes) {}
    template <typename T>
    bool get(T& value) {
        if (rest_.size() < sizeof(T)) return false;
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i)
            v |= static_cast<std::uint64_t>(static_cast<unsigned char>(rest_[i])) << (8 * i);
        value = static_cast<T>(v);
        rest_.remove_prefix(sizeof(T));
        return true;
    }
    bool get_string(std::string& out) {
        std::uint32_t n = 0;
        if (!get(n) || rest_.size() < n) return false;
        out.assign(rest_.data(), n);
        rest_.remove_prefix(n);
        return true;
    }
    bool empty() const { return rest_.empty(); }

private:
    std::string_view rest_;
};

}  // namespace

void encode_event(const Event& event, std::string& out) {
    const Metadata& m = event.meta;
    out.reserve(out.size() + 1 + 8 + 6 * 4 + m.kind.size() + m.site_id.size() + m.user_id.size() + m.id.size() +
                m.source.size() + event.payload.size());
    out.push_back(static_cast<char>(event_record_version));
    put<std::int64_t>(out,
                      std::chrono::duration_cast<std::chrono::nanoseconds>(m.received_at.time_since_epoch()).count());
    put_string(out, m.kind);
    put_string(out, m.site_id);
    put_string(out, m.user_id);
    put_string(out, m.id);
    put_string(out, m.source);
    put_string(out, event.payload);
}

std::optional<std::string> decode_event(std::string_view record, Event& event) {
    if (record.empty()) return "an empty record";
    const auto version = static_cast<unsigned char>(record[0]);
    if (version != event_record_version)
        return "event record version " + std::to_string(version) + " (this hubflow reads version " +
               std::to_string(event_record_version) + ")";
    Reader in(record.substr(1));
    std::int64_t ns = 0;
    Metadata& m = event.meta;
    if (!in.get(ns) || !in.get_string(m.kind) || !in.get_string(m.site_id) || !in.get_string(m.user_id) ||
        !in.get_string(m.id) || !in.get_string(m.source) || !in.get_string(event.payload))
        return std::string("a field runs past the end of the record");
    if (!in.empty()) return std::string("bytes left over after the payload");
    m.received_at = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(ns)));
    return std::nullopt;
}

}  // namespace hubflow::core::buffer
