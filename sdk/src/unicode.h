#pragma once
// Pieces both JSON readers of the SDK library need (json.cpp's field scanner, json_parse.cpp's parser).

#include <optional>
#include <string>
#include <string_view>

namespace hubflow::detail {

// Appends code point `cp` as UTF-8.
inline void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
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

}  // namespace hubflow::detail
