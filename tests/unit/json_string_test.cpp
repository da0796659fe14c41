// The SDK's JSON string reader and the one-pass member lookup, against a plain reference: a character-at-a-
// time decoder written straight from RFC 8259 and RFC 3629. The reader works on blocks of 16 and 64 bytes, so
// every case is tried at many offsets and lengths, with escapes and defects on each side of a block edge.

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "hubflow/json.h"

using namespace hubflow;

namespace {

std::optional<unsigned> hex4(std::string_view s, std::size_t at) {
    if (at + 4 > s.size()) return std::nullopt;
    unsigned v = 0;
    for (std::size_t i = at; i < at + 4; ++i) {
        const char c = s[i];
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

void put_utf8(std::string& out, unsigned cp) {
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

// Decodes the string literal at the start of `s`: its text and the length of the literal, or nothing.
struct Decoded {
    std::string text;
    std::size_t length;
};

std::optional<Decoded> reference_decode(std::string_view s) {
    if (s.empty() || s[0] != '"') return std::nullopt;
    std::string out;
    std::size_t i = 1;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '"') return Decoded{out, i + 1};
        if (c < 0x20) return std::nullopt;
        if (c == '\\') {
            if (i + 1 >= s.size()) return std::nullopt;
            const char e = s[i + 1];
            i += 2;
            switch (e) {
                case '"':
                case '\\':
                case '/':
                    out += e;
                    continue;
                case 'b':
                    out += '\b';
                    continue;
                case 'f':
                    out += '\f';
                    continue;
                case 'n':
                    out += '\n';
                    continue;
                case 'r':
                    out += '\r';
                    continue;
                case 't':
                    out += '\t';
                    continue;
                case 'u':
                    break;
                default:
                    return std::nullopt;
            }
            auto cp = hex4(s, i);
            if (!cp || (*cp >= 0xDC00 && *cp <= 0xDFFF)) return std::nullopt;
            i += 4;
            if (*cp >= 0xD800 && *cp <= 0xDBFF) {
                if (i + 2 > s.size() || s[i] != '\\' || s[i + 1] != 'u') return std::nullopt;
                auto low = hex4(s, i + 2);
                if (!low || *low < 0xDC00 || *low > 0xDFFF) return std::nullopt;
                i += 6;
                *cp = 0x10000 + ((*cp - 0xD800) << 10) + (*low - 0xDC00);
            }
            put_utf8(out, *cp);
            continue;
        }
        if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        // UTF-8: the lead byte fixes the length and the range of the first continuation byte.
        std::size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return std::nullopt;
        }
        if (i + n > s.size()) return std::nullopt;
        for (std::size_t k = 1; k < n; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return std::nullopt;
        }
        out.append(s.substr(i, n));
        i += n;
    }
    return std::nullopt;
}

// Checks both readers against the reference on the literal at the start of `text`.
void expect_like_reference(const std::string& text) {
    const auto expected = reference_decode(text);
    const char* p = text.data();
    std::string out = "kept:";
    const bool read = read_json_string(p, text.data() + text.size(), out);
    const char* q = text.data();
    const bool skipped = skip_json_string(q, text.data() + text.size());
    ASSERT_EQ(read, expected.has_value()) << testing::PrintToString(text);
    ASSERT_EQ(skipped, expected.has_value()) << testing::PrintToString(text);
    if (!expected) return;
    EXPECT_EQ(out, "kept:" + expected->text) << testing::PrintToString(text);
    EXPECT_EQ(static_cast<std::size_t>(p - text.data()), expected->length) << testing::PrintToString(text);
    EXPECT_EQ(q, p) << testing::PrintToString(text);
}

// Pieces of string literals, good and bad, for random literals.
const std::vector<std::string> good_pieces = {"a",
                                              "plain text",
                                              std::string(70, 'x'),
                                              R"(\")",
                                              R"(\\)",
                                              R"(\/)",
                                              R"(\b\f\n\r\t)",
                                              R"(\u00e9)",
                                              R"(\u20AC)",
                                              R"(\ud83d\ude00)",
                                              R"(\u0000)",
                                              "\xC3\xA9",
                                              "\xE2\x82\xAC",
                                              "\xF0\x9F\x98\x80",
                                              R"({\"id\":\"a-1\",\"n\":2})"};
const std::vector<std::string> bad_pieces = {"\x01",     "\n",      "\x7f\x80",  "\xC0\xAF",  "\xED\xA0\x80",
                                             "\xF5\x80", R"(\x41)", R"(\ud800)", R"(\udc00)", R"(\u12)"};

}  // namespace

TEST(JsonString, ReadsBackWhatAppendJsonStringWrote) {
    std::mt19937 rng(11);
    const std::string alphabet = std::string("\"\\/\b\f\n\r\t\x01\x1f abcXYZ{}:,") + "\xC3\xA9" + "\xE2\x82\xAC";
    for (int round = 0; round < 3000; ++round) {
        std::string text;
        const std::size_t length = rng() % 300;
        while (text.size() < length) {
            const std::size_t at = rng() % alphabet.size();
            // Multi-byte characters whole: the text must be valid UTF-8 to come back as it went in.
            const auto c = static_cast<unsigned char>(alphabet[at]);
            if (c >= 0x80) {
                text += (c == 0xC3) ? "\xC3\xA9" : (c == 0xE2) ? "\xE2\x82\xAC" : "z";
                continue;
            }
            text += alphabet[at];
        }
        std::string literal(rng() % 20, ' ');  // the literal at every offset from an aligned start
        const std::size_t start = literal.size();
        append_json_string(literal, text);
        const std::size_t end_of_literal = literal.size();
        literal += std::string(rng() % 100, ',');  // followed by more input, or not
        const char* p = literal.data() + start;
        std::string out;
        ASSERT_TRUE(read_json_string(p, literal.data() + literal.size(), out)) << testing::PrintToString(literal);
        EXPECT_EQ(out, text);
        EXPECT_EQ(static_cast<std::size_t>(p - literal.data()), end_of_literal);
    }
}

TEST(JsonString, NotAtAQuoteIsNotAString) {
    const std::string text = "abc";
    std::string out;
    const char* p = text.data();
    EXPECT_FALSE(read_json_string(p, text.data() + text.size(), out));
    p = text.data() + text.size();
    EXPECT_FALSE(read_json_string(p, text.data() + text.size(), out));
    EXPECT_FALSE(skip_json_string(p, text.data() + text.size()));
}

TEST(JsonString, EscapesOnEitherSideOfEveryBlockEdge) {
    for (std::size_t before = 0; before < 140; ++before)
        for (const std::string escape : {R"(\")", R"(\\)", R"(\u00e9)", R"(\ud83d\ude00)", "\xC3\xA9"}) {
            const std::string literal = "\"" + std::string(before, 'a') + escape + R"(b\"c\\)" +
                                        std::string(before % 70, 'd') + "\"" + std::string(before % 90, ' ');
            expect_like_reference(literal);
        }
}

TEST(JsonString, DefectsOnEitherSideOfEveryBlockEdge) {
    for (std::size_t before = 0; before < 140; ++before) {
        for (const std::string& bad : bad_pieces) {
            std::string dense;
            for (std::size_t i = 0; i < before; ++i)
                dense += (i % 3 == 0) ? "\\\"" : "a";  // escapes first, so the 64-byte blocks are in use
            std::string literal = "\"";
            literal.append(dense).append(bad).append("tail\"").append(80, ' ');
            expect_like_reference(literal);
        }
        // The closing quote missing, or a backslash last, at every length.
        expect_like_reference("\"" + std::string(before, 'a'));
        expect_like_reference("\"" + std::string(before, 'a') + "\\");
        expect_like_reference("\"" + std::string(before, 'a') + "\\\"");
    }
}

TEST(JsonString, RandomLiteralsAgreeWithTheReference) {
    std::mt19937 rng(5);
    for (int round = 0; round < 20000; ++round) {
        std::string literal = "\"";
        const std::size_t pieces = rng() % 24;
        for (std::size_t i = 0; i < pieces; ++i) {
            if (rng() % 40 == 0)
                literal += bad_pieces[rng() % bad_pieces.size()];
            else
                literal += good_pieces[rng() % good_pieces.size()];
        }
        if (rng() % 30 != 0) literal += '"';
        literal += std::string(rng() % 100, '}');
        expect_like_reference(literal);
    }
}

TEST(JsonMembers, FindsSeveralTopLevelMembersInOnePass) {
    const std::string json =
        R"({"id":"e-1","lock":{"id":"inner","user_id":"no"},"n":12,"user_id":"u\"1","list":[1,"x"]})";
    std::string id = "old:", user_id, n, list, missing;
    const JsonMember wanted[] = {{"id", &id}, {"user_id", &user_id}, {"n", &n}, {"list", &list}, {"missing", &missing}};
    EXPECT_EQ(find_json_members(json, wanted), 4u);
    EXPECT_EQ(id, "old:e-1");  // appended, as find_json_field does
    EXPECT_EQ(user_id, "u\"1");
    EXPECT_EQ(n, "12");
    EXPECT_EQ(list, R"([1,"x"])");
    EXPECT_EQ(missing, "");
}

TEST(JsonMembers, TheFirstOfTwoNamesDecidesAndNullIsAbsent) {
    std::string id, user_id;
    const JsonMember wanted[] = {{"id", &id}, {"user_id", &user_id}};
    EXPECT_EQ(find_json_members(R"({"id":"first","user_id":null,"id":"second","user_id":"late"})", wanted), 1u);
    EXPECT_EQ(id, "first");
    EXPECT_EQ(user_id, "");
    // The same rule as find_json_field.
    std::string field;
    EXPECT_FALSE(find_json_field(R"({"user_id":null,"user_id":"late"})", {"user_id"}, field));
}

TEST(JsonMembers, EscapedNamesMatch) {
    std::string id;
    const JsonMember wanted[] = {{"id", &id}};
    EXPECT_EQ(find_json_members(R"({"\u0069d":"x"})", wanted), 1u);
    EXPECT_EQ(id, "x");
}

TEST(JsonMembers, StopsOnceEveryMemberIsSeen) {
    // Everything after the last wanted member is never read, so damage there does not matter.
    std::string id, user_id;
    const JsonMember wanted[] = {{"id", &id}, {"user_id", &user_id}};
    EXPECT_EQ(find_json_members(R"({"user_id":"u","id":"i", this is not JSON)", wanted), 2u);
    EXPECT_EQ(id, "i");
    EXPECT_EQ(user_id, "u");
}

TEST(JsonMembers, MalformedTextFindsWhatCameBeforeTheDamage) {
    for (const std::string bad : {"", "[", "{", "{\"id\"", "{\"id\":", "{\"id\":\"x", "not json", "{\"a\":[1,2",
                                  "{\"a\":\"\x01\",\"id\":\"x\"}"}) {
        std::string id;
        const JsonMember wanted[] = {{"id", &id}};
        EXPECT_EQ(find_json_members(bad, wanted), 0u) << bad;
        EXPECT_EQ(id, "") << bad;
    }
    std::string id, user_id;
    const JsonMember wanted[] = {{"id", &id}, {"user_id", &user_id}};
    EXPECT_EQ(find_json_members(R"({"id":"i","x":"unterminated)", wanted), 1u);
    EXPECT_EQ(id, "i");
    EXPECT_EQ(user_id, "");
}
