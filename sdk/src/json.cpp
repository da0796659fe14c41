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

    bool hex4(unsigned& v) {
        auto value = detail::parse_hex4(std::string_view(p, static_cast<std::size_t>(end - p)));
        if (!value) return false;
        v = *value;
        p += 4;
        return true;
    }

    void ws() {
        while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
            ++p;
    }

    // At the opening quote. Unescaped text goes to `out` when it is not null.
    bool string(std::string* out) {
        if (p >= end || *p != '"') return false;
        ++p;
        while (p < end) {
            const char* run = p;
            while (p < end && *p != '"' && *p != '\\')
                ++p;
            if (out) out->append(run, static_cast<std::size_t>(p - run));
            if (p >= end) return false;
            if (*p == '"') {
                ++p;
                return true;
            }
            ++p;  // backslash
            if (p >= end) return false;
            char e = *p++;
            if (!out) {
                if (e == 'u' && end - p < 4) return false;
                if (e == 'u') p += 4;
                continue;
            }
            switch (e) {
                case '"':
                    *out += '"';
                    break;
                case '\\':
                    *out += '\\';
                    break;
                case '/':
                    *out += '/';
                    break;
                case 'b':
                    *out += '\b';
                    break;
                case 'f':
                    *out += '\f';
                    break;
                case 'n':
                    *out += '\n';
                    break;
                case 'r':
                    *out += '\r';
                    break;
                case 't':
                    *out += '\t';
                    break;
                case 'u': {
                    unsigned cp = 0;
                    if (!hex4(cp)) return false;
                    if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                        p += 2;
                        unsigned low = 0;
                        if (!hex4(low)) return false;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    }
                    detail::append_utf8(*out, cp);
                    break;
                }
                default:
                    return false;
            }
        }
        return false;
    }

    bool value_skip() {
        ws();
        if (p >= end) return false;
        if (*p == '"') return string(nullptr);
        if (*p == '{' || *p == '[') {
            int depth = 0;
            while (p < end) {
                char c = *p;
                if (c == '"') {
                    if (!string(nullptr)) return false;
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

    // Finds `path[depth..]` inside the object at p.
    bool find(const std::vector<std::string>& path, std::size_t depth, std::string& out) {
        ws();
        if (p >= end || *p != '{') return false;
        ++p;
        std::string key;
        for (;;) {
            ws();
            if (p < end && *p == '}') return false;
            key.clear();
            if (!string(&key)) return false;
            ws();
            if (p >= end || *p != ':') return false;
            ++p;
            ws();
            if (key == path[depth]) {
                if (depth + 1 < path.size()) return find(path, depth + 1, out);
                if (p >= end) return false;
                if (*p == '"') return string(&out);
                const char* start = p;
                if (!value_skip()) return false;
                std::string_view raw(start, static_cast<std::size_t>(p - start));
                if (raw == "null") return false;
                out.append(raw);
                return true;
            }
            if (!value_skip()) return false;
            ws();
            if (p < end && *p == ',') {
                ++p;
                continue;
            }
            return false;
        }
    }
};

}  // namespace

bool find_json_field(std::string_view json, const std::vector<std::string>& path, std::string& out) {
    if (path.empty()) return false;
    Scanner s{json.data(), json.data() + json.size()};
    std::size_t mark = out.size();
    if (s.find(path, 0, out)) return true;
    out.resize(mark);
    return false;
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
