// Reading JSON strings on hot paths: the signalr source unescapes every event's payload here (a JSON text
// inside a JSON string, so an escaped quote every few characters), and field lookups skip over every string
// value on their way to a member.

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

#include "hubflow/json.h"
#include "unicode.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace hubflow {

namespace {

// What one escape stands for when it is a single character (\" \\ \/ \b \f \n \r \t), else 0.
constexpr auto simple_escapes = [] {
    std::array<char, 256> t{};
    t['"'] = '"';
    t['\\'] = '\\';
    t['/'] = '/';
    t['b'] = '\b';
    t['f'] = '\f';
    t['n'] = '\n';
    t['r'] = '\r';
    t['t'] = '\t';
    return t;
}();

// A block of input is checked at once for bytes that end a run of plain text: a quote, a backslash, a
// control character or a non-ASCII byte (which needs its UTF-8 checked). The result is the index of the first
// such byte, or block_size when there is none.
#if defined(__SSE2__)
constexpr std::size_t block_size = 16;

// Bit i set when byte i of the 16 at p stops plain text.
inline unsigned attention16(const char* p) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Signed compare: bytes 0x80..0xFF are negative, so "below 0x20" also catches every non-ASCII byte.
    const __m128i hit =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
                     _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));
    return static_cast<unsigned>(_mm_movemask_epi8(hit));
}

inline std::size_t first_attention(const char* p) {
    const unsigned mask = attention16(p);
    return mask ? static_cast<std::size_t>(std::countr_zero(mask)) : block_size;
}

// The same for 64 bytes, as a bit per byte.
inline std::uint64_t attention_mask64(const char* p) {
    return std::uint64_t{attention16(p)} | (std::uint64_t{attention16(p + 16)} << 16) |
           (std::uint64_t{attention16(p + 32)} << 32) | (std::uint64_t{attention16(p + 48)} << 48);
}

// Text is copied 16 bytes at a time, so a copy of n bytes may read and write up to 15 bytes past n.
constexpr std::size_t copy_slack = 16;

inline void copy_run(char* w, const char* from, std::size_t n) {
    std::size_t k = 0;
    do {
        std::memcpy(w + k, from + k, 16);
        k += 16;
    } while (k < n);
}

// Consumes plain text and one-character escapes from the 64 bytes at p: their positions come from one mask,
// so finding the next escape does not wait for the last one to be handled, which is what bounds a loop that
// looks for each escape from where the previous ended. Stops at anything else (the closing quote, \u, a bad
// escape, a control character, non-ASCII text) or at an escape whose second byte is in the next block;
// returns how many input bytes it consumed. Needs 64 + copy_slack bytes of input from p and of room at *w
// when Write.
template <bool Write>
inline std::size_t plain_block(const char* p, char*& w) {
    std::uint64_t mask = attention_mask64(p);
    std::size_t pos = 0;
    for (;;) {
        const std::size_t at = mask ? static_cast<std::size_t>(std::countr_zero(mask)) : 64;
        if constexpr (Write) {
            if (at > pos) copy_run(w, p + pos, at - pos);
            w += at - pos;
        }
        pos = at;
        if (at >= 63 || p[at] != '\\') return pos;
        const char e = simple_escapes[static_cast<unsigned char>(p[at + 1])];
        if (e == 0) return pos;
        if constexpr (Write) *w++ = e;
        pos = at + 2;
        mask &= ~(std::uint64_t{3} << at);  // the backslash and the character it escapes
    }
}
#else
constexpr std::size_t block_size = 8;

// Eight bytes as one word, with the usual "has a zero byte" / "has a byte below n" tests. Their borrows can
// only flag bytes above a real hit, so the lowest flagged byte is always a real one, which is all that is
// needed here.
inline std::size_t first_attention(const char* p) {
    constexpr std::uint64_t ones = 0x0101010101010101ULL;
    constexpr std::uint64_t highs = 0x8080808080808080ULL;
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    const std::uint64_t quote = w ^ (ones * '"');
    const std::uint64_t backslash = w ^ (ones * '\\');
    const std::uint64_t hits =
        (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | ((w - ones * 0x20) & ~w) | w) & highs;
    if (!hits) return block_size;
    if constexpr (std::endian::native == std::endian::little)
        return static_cast<std::size_t>(std::countr_zero(hits)) >> 3;
    else
        return static_cast<std::size_t>(std::countl_zero(hits)) >> 3;
}
#endif

// Reads the four hex digits of a \uXXXX escape at p and moves past them.
inline bool read_hex4(const char*& p, const char* end, unsigned& value) {
    const auto v = detail::parse_hex4(std::string_view(p, static_cast<std::size_t>(end - p)));
    if (!v) return false;
    value = *v;
    p += 4;
    return true;
}

// Where the next output byte goes, and the end of the room made for it.
struct Room {
    char* w;
    char* limit;
};

// Makes room for n more bytes of output, with `rest` bytes of input still to come. Geometric, but never beyond
// what the rest of the input could decode to (text is never longer than its JSON form), so the work stays
// linear. Out of line: it runs rarely, and keeping it apart lets the scan loop hold its pointers in registers.
[[gnu::noinline]] Room grow(std::string& out, char* w, std::size_t n, std::size_t rest) {
    const std::size_t used = static_cast<std::size_t>(w - out.data());
    const std::size_t want = std::max(used + n, std::min(out.size() * 2, used + n + rest));
    out.resize(want);
    return {out.data() + used, out.data() + want};
}

// At the opening quote; appends the unescaped text to *out when Write. One pass that writes through a
// pointer: a string append per escape (or a second pass to find the end first) would cost more than the rest
// of a parse. The output starts as whatever capacity `out` already has (a reused string keeps the previous
// text's).
template <bool Write>
bool scan(const char*& at, const char* const end, std::string* out) {
    if (at >= end || *at != '"') return false;
    const char* p = at + 1;
    Room r{nullptr, nullptr};
    if constexpr (Write) {
        const std::size_t base = out->size();
        const std::size_t room =
            std::min(static_cast<std::size_t>(end - p), std::max<std::size_t>(out->capacity() - base, 64));
        out->resize(base + room);
        r = {out->data() + base, out->data() + out->size()};
    }
    auto rest = [&] { return static_cast<std::size_t>(end - p); };
#if defined(__SSE2__)
    constexpr bool dense_capable = true;
#else
    constexpr bool dense_capable = false;
#endif
    bool dense = false;  // an escape has been seen: the text is event JSON nested in a string
    for (;;) {
#if defined(__SSE2__)
        // Once escapes have shown up, 64 bytes at a time (see plain_block). Not before: most strings are short
        // and plain (names, ids), and for those the 16-byte loop below is cheaper.
        while (dense && end - p >= static_cast<std::ptrdiff_t>(64 + copy_slack)) {
            if constexpr (Write) {
                if (static_cast<std::size_t>(r.limit - r.w) < 64 + copy_slack)
                    r = grow(*out, r.w, 64 + copy_slack, rest());
            }
            const std::size_t used = plain_block<Write>(p, r.w);
            p += used;
            if (used < 64) break;
        }
#endif
        // A block at a time: it is stored whole (the output has room for it) and the write position advances
        // only past its plain bytes, so a run between two escapes costs no call. A one-character escape is
        // dealt with right here too, without leaving the loop.
        bool escaped = false;
        while (end - p >= static_cast<std::ptrdiff_t>(block_size)) {
            if constexpr (Write) {
                if (static_cast<std::size_t>(r.limit - r.w) < block_size) r = grow(*out, r.w, block_size, rest());
                std::memcpy(r.w, p, block_size);
            }
            const std::size_t plain = first_attention(p);
            p += plain;
            if constexpr (Write) r.w += plain;
            if (plain == block_size) continue;
            if (*p != '\\' || end - p < 2) break;
            const char e = simple_escapes[static_cast<unsigned char>(p[1])];
            if (e == 0) break;
            if constexpr (Write) *r.w++ = e;  // room: the block stored had at least one byte to spare
            p += 2;
            escaped = true;
            if (dense_capable) break;
        }
        if (escaped && dense_capable) {
            dense = true;
            continue;
        }
        // One character at a time: the end of the string, a \u escape, a bad escape, a control character,
        // non-ASCII text, and the last few bytes of the input.
        at = p;
        if (p >= end) return false;
        const auto c = static_cast<unsigned char>(*p);
        if (c == '"') {
            at = p + 1;
            if constexpr (Write) out->resize(static_cast<std::size_t>(r.w - out->data()));
            return true;
        }
        if (c >= 0x80) {
            const std::size_t n = detail::utf8_sequence_length(reinterpret_cast<const unsigned char*>(p),
                                                               reinterpret_cast<const unsigned char*>(end));
            if (n == 0) return false;
            if constexpr (Write) {
                if (static_cast<std::size_t>(r.limit - r.w) < n) r = grow(*out, r.w, n, rest());
                std::memcpy(r.w, p, n);
                r.w += n;
            }
            p += n;
            continue;
        }
        if (c < 0x20) return false;  // a raw control character
        if (c != '\\') {
            if constexpr (Write) {
                if (r.limit == r.w) r = grow(*out, r.w, 1, rest());
                *r.w++ = static_cast<char>(c);
            }
            ++p;
            continue;
        }
        if (end - p < 2) return false;
        const char e = p[1];
        p += 2;
        if (e != 'u') {
            const char plain = simple_escapes[static_cast<unsigned char>(e)];
            if (plain == 0) return false;
            if constexpr (Write) {
                if (r.limit == r.w) r = grow(*out, r.w, 1, rest());
                *r.w++ = plain;
            }
            continue;
        }
        unsigned cp;
        if (!read_hex4(p, end, cp)) return false;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // a low surrogate without its high half
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned low;
            if (end - p < 2 || p[0] != '\\' || p[1] != 'u') return false;
            p += 2;
            if (!read_hex4(p, end, low) || low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        if constexpr (Write) {
            if (static_cast<std::size_t>(r.limit - r.w) < 4) r = grow(*out, r.w, 4, rest());
            r.w = detail::put_utf8(r.w, cp);
        }
    }
}

}  // namespace

bool read_json_string(const char*& p, const char* end, std::string& out) {
    return scan<true>(p, end, &out);
}

bool skip_json_string(const char*& p, const char* end) {
    return scan<false>(p, end, nullptr);
}

}  // namespace hubflow
