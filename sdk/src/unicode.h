#pragma once
// Pieces the JSON readers of the SDK library need (json_string.cpp's string reader, json_parse.cpp's parser).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace hubflow::detail {

// Writes code point `cp` as UTF-8 at `w`; returns the new end (at most four bytes on).
inline char* put_utf8(char* w, unsigned cp) {
    if (cp < 0x80) {
        *w++ = static_cast<char>(cp);
    } else if (cp < 0x800) {
        *w++ = static_cast<char>(0xC0 | (cp >> 6));
        *w++ = static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *w++ = static_cast<char>(0xE0 | (cp >> 12));
        *w++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        *w++ = static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        *w++ = static_cast<char>(0xF0 | (cp >> 18));
        *w++ = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        *w++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        *w++ = static_cast<char>(0x80 | (cp & 0x3F));
    }
    return w;
}

// Appends code point `cp` as UTF-8.
inline void append_utf8(std::string& out, unsigned cp) {
    char buf[4];
    out.append(buf, static_cast<std::size_t>(put_utf8(buf, cp) - buf));
}

// The value of the four hex digits of a \uXXXX escape; nothing when `digits` is not four hex digits.
inline std::optional<unsigned> parse_hex4(std::string_view digits) {
    if (digits.size() < 4) return std::nullopt;
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
        char c = digits[static_cast<std::size_t>(i)];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= static_cast<unsigned>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= static_cast<unsigned>(c - 'A' + 10);
        else
            return std::nullopt;
    }
    return v;
}

// Length of the valid UTF-8 sequence starting at p (whose first byte is >= 0x80), or 0 when it is not one.
inline std::size_t utf8_sequence_length(const unsigned char* p, const unsigned char* end) noexcept {
    unsigned c = *p;
    std::size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0xC2) return 0;
    if (c < 0xE0) {
        n = 2;
    } else if (c < 0xF0) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c < 0xF5) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (static_cast<std::size_t>(end - p) < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (std::size_t i = 2; i < n; ++i)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

}  // namespace hubflow::detail
