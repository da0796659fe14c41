#include "hubflow/json.h"

#include "unicode.h"

#include <cstring>
#include <ctime>
#include <stdexcept>

namespace hubflow {

void append_json_string(std::string& out, std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    // Written through a pointer into room made once: every escape but \u00XX at most doubles a byte, and the
    // rare control character makes more room for itself. One store per plain byte, no append call per run: the
    // hub serialises every event through here.
    const std::size_t base = out.size();
    out.resize(base + 2 + text.size() * 2);
    char* w = out.data() + base;
    *w++ = '"';
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char ch = text[i];
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c != '"' && c != '\\') {
            *w++ = ch;
            continue;
        }
        *w++ = '\\';
        switch (c) {
            case '"':
                *w++ = '"';
                break;
            case '\\':
                *w++ = '\\';
                break;
            case '\n':
                *w++ = 'n';
                break;
            case '\r':
                *w++ = 'r';
                break;
            case '\t':
                *w++ = 't';
                break;
            case '\b':
                *w++ = 'b';
                break;
            case '\f':
                *w++ = 'f';
                break;
            default: {
                // \u00XX: four more bytes than the doubling allowed for.
                const std::size_t used = static_cast<std::size_t>(w - out.data());
                out.resize(out.size() + 4);
                w = out.data() + used;
                *w++ = 'u';
                *w++ = '0';
                *w++ = '0';
                *w++ = hex[c >> 4];
                *w++ = hex[c & 0xF];
            }
        }
    }
    *w++ = '"';
    out.resize(static_cast<std::size_t>(w - out.data()));
}

namespace {

// A cursor over JSON text. Every function returns false on malformed input instead of throwing: a payload
// that is not what a path expects simply has no such field.
struct Scanner {
    const char* p;
    const char* end;
    std::string decoded_key;  // only for a member name with escapes in it

    void ws() {
        while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
            ++p;
    }

    // At the opening quote of a member name; `key` views the input unless the name has escapes.
    bool key(std::string_view& key) {
        if (p >= end || *p != '"') return false;
        const char* start = p;
        if (!skip_json_string(p, end)) return false;
        key = std::string_view(start + 1, static_cast<std::size_t>(p - start - 2));
        if (key.find('\\') == std::string_view::npos) return true;
        decoded_key.clear();
        const char* q = start;
        if (!read_json_string(q, end, decoded_key)) return false;
        key = decoded_key;
        return true;
    }

    bool value_skip() {
        ws();
        if (p >= end) return false;
        if (*p == '"') return skip_json_string(p, end);
        if (*p == '{' || *p == '[') {
            int depth = 0;
            while (p < end) {
                char c = *p;
                if (c == '"') {
                    if (!skip_json_string(p, end)) return false;
                    continue;
                }
                if (c == '{' || c == '[')
                    ++depth;
                else if (c == '}' || c == ']') {
                    if (--depth == 0) {
                        ++p;
                        return true;
                    }
                }
                ++p;
            }
            return false;
        }
        const char* start = p;
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
            ++p;
        return p > start;
    }

    // At a member's value: appends it to `out` as find_json_field describes; false when it is null or bad.
    bool value(std::string& out) {
        if (p >= end) return false;
        if (*p == '"') {
            const std::size_t mark = out.size();
            if (read_json_string(p, end, out)) return true;
            out.resize(mark);
            return false;
        }
        const char* start = p;
        if (!value_skip()) return false;
        std::string_view raw(start, static_cast<std::size_t>(p - start));
        if (raw == "null") return false;
        out.append(raw);
        return true;
    }

    // Walks the members of the object at p, calling on_member(name) with p at each member's value. on_member
    // returns true when it has consumed the value, false to have it skipped; walk() stops early when
    // `done()` says so. False when the text is not an object or is malformed before the walk ends.
    template <typename OnMember, typename Done>
    bool walk(OnMember&& on_member, Done&& done) {
        ws();
        if (p >= end || *p != '{') return false;
        ++p;
        ws();
        if (p < end && *p == '}') return true;
        for (;;) {
            ws();
            std::string_view name;
            if (!key(name)) return false;
            ws();
            if (p >= end || *p != ':') return false;
            ++p;
            ws();
            if (!on_member(name) && !value_skip()) return false;
            if (done()) return true;
            ws();
            if (p < end && *p == ',') {
                ++p;
                continue;
            }
            return p < end && *p == '}';
        }
    }

    // Finds `path[depth..]` inside the object at p.
    bool find(const std::vector<std::string>& path, std::size_t depth, std::string& out) {
        bool found = false, settled = false;
        walk(
            [&](std::string_view name) {
                if (name != path[depth]) return false;
                settled = true;  // the first member of that name decides, found or not
                found = depth + 1 < path.size() ? find(path, depth + 1, out) : value(out);
                return true;
            },
            [&] { return settled; });
        return found;
    }
};

}  // namespace

bool find_json_field(std::string_view json, const std::vector<std::string>& path, std::string& out) {
    if (path.empty()) return false;
    Scanner s{json.data(), json.data() + json.size(), {}};
    std::size_t mark = out.size();
    if (s.find(path, 0, out)) return true;
    out.resize(mark);
    return false;
}

std::size_t find_json_members(std::string_view json, std::span<const JsonMember> members) {
    Scanner s{json.data(), json.data() + json.size(), {}};
    // Bit i: member i has been decided (found, or its first occurrence was null or bad).
    std::uint64_t settled = 0;
    const std::uint64_t all = members.size() >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << members.size()) - 1;
    std::size_t found = 0;
    s.walk(
        [&](std::string_view name) {
            for (std::size_t i = 0; i < members.size() && i < 64; ++i) {
                if ((settled >> i) & 1 || name != members[i].name) continue;
                settled |= std::uint64_t{1} << i;
                std::string& out = *members[i].out;
                const std::size_t mark = out.size();
                if (s.value(out))
                    ++found;
                else
                    out.resize(mark);
                return true;
            }
            return false;
        },
        [&] { return settled == all; });
    return found;
}

FieldPath::FieldPath(std::string_view path) : text_(path) {
    std::string_view rest = path;
    bool force_payload = false;
    if (rest.substr(0, 8) == "payload.") {
        rest.remove_prefix(8);
        force_payload = true;
    }
    if (!force_payload) {
        if (rest == "kind")
            meta_ = Meta::kind;
        else if (rest == "site_id")
            meta_ = Meta::site_id;
        else if (rest == "user_id")
            meta_ = Meta::user_id;
        else if (rest == "id")
            meta_ = Meta::id;
        else if (rest == "source")
            meta_ = Meta::source;
        else if (rest == "received_at")
            meta_ = Meta::received_at;
    }
    while (true) {
        auto dot = rest.find('.');
        std::string_view seg = rest.substr(0, dot);
        if (seg.empty()) throw std::invalid_argument("field path '" + text_ + "' has an empty segment");
        segments_.emplace_back(seg);
        if (dot == std::string_view::npos) break;
        rest.remove_prefix(dot + 1);
    }
}

bool FieldPath::append_to(const Event& event, std::string& out) const {
    const std::string* meta = nullptr;
    switch (meta_) {
        case Meta::none:
            break;
        case Meta::kind:
            meta = &event.meta.kind;
            break;
        case Meta::site_id:
            meta = &event.meta.site_id;
            break;
        case Meta::user_id:
            meta = &event.meta.user_id;
            break;
        case Meta::id:
            meta = &event.meta.id;
            break;
        case Meta::source:
            meta = &event.meta.source;
            break;
        case Meta::received_at:
            if (event.meta.received_at.time_since_epoch().count() != 0) {
                out += format_utc(event.meta.received_at);
                return true;
            }
            break;
    }
    if (meta && !meta->empty()) {
        out += *meta;
        return true;
    }
    return find_json_field(event.payload, segments_, out);
}

std::optional<std::string> FieldPath::get(const Event& event) const {
    std::string out;
    if (!append_to(event, out)) return std::nullopt;
    return out;
}

std::string format_utc(std::chrono::system_clock::time_point t) {
    std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace hubflow
