#pragma once
// UTF-8 validation for the WebSocket decoder (text messages, close reasons). Header-only because it sits on
// the hot path and the ASCII loop must inline.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace hubflow::signalr {

// Validates one text delivered in chunks, in order; a multi-byte sequence may straddle two chunks, which is
// how fragmented WebSocket text messages arrive. Rejects what RFC 3629 forbids: overlong forms, surrogates
// (U+D800..U+DFFF), code points over U+10FFFF, stray continuation bytes.
class Utf8Validator {
public:
    // Returns false as soon as the text so far cannot be valid UTF-8 (and keeps returning false).
    bool feed(std::string_view chunk) noexcept;
    // True when the text fed so far ends on a character boundary (and is valid).
    bool complete() const noexcept { return !bad_ && need_ == 0; }
    void reset() noexcept { *this = Utf8Validator(); }

private:
    bool fail() noexcept {
        bad_ = true;
        return false;
    }

    std::uint8_t need_ = 0;   // continuation bytes still expected
    std::uint8_t lo_ = 0x80;  // range allowed for the next continuation byte: the first one after E0, ED, F0
    std::uint8_t hi_ = 0xBF;  // and F4 is narrower, which is what excludes overlongs, surrogates and > U+10FFFF
    bool bad_ = false;
};

inline bool Utf8Validator::feed(std::string_view chunk) noexcept {
    if (bad_) return false;
    auto p = reinterpret_cast<const unsigned char*>(chunk.data());
    const auto* end = p + chunk.size();
    while (p < end) {
        if (need_ == 0) {
            // Event JSON is mostly ASCII: check eight bytes at a time until a non-ASCII byte shows up.
            while (end - p >= 8) {
                std::uint64_t w;
                std::memcpy(&w, p, 8);
                if (w & 0x8080808080808080ULL) break;
                p += 8;
            }
            if (p == end) break;
            unsigned c = *p++;
            if (c < 0x80) continue;
            if (c < 0xC2) return fail();  // continuation byte without a lead, or an overlong 2-byte form
            if (c < 0xE0) {
                need_ = 1;
            } else if (c < 0xF0) {
                need_ = 2;
                if (c == 0xE0) lo_ = 0xA0;
                if (c == 0xED) hi_ = 0x9F;
            } else if (c < 0xF5) {
                need_ = 3;
                if (c == 0xF0) lo_ = 0x90;
                if (c == 0xF4) hi_ = 0x8F;
            } else {
                return fail();
            }
        } else {
            unsigned c = *p++;
            if (c < lo_ || c > hi_) return fail();
            --need_;
            lo_ = 0x80;
            hi_ = 0xBF;
        }
    }
    return true;
}

inline bool is_valid_utf8(std::string_view text) noexcept {
    Utf8Validator v;
    return v.feed(text) && v.complete();
}

}  // namespace hubflow::signalr
