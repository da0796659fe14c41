#include <gtest/gtest.h>

#include "hubflow/config.h"
#include "hubflow/json.h"
#include "hubflow/json_parse.h"

using namespace hubflow;
using hubflow::parse_json;

namespace {

template <typename F>
std::string error_of(F f) {
    try {
        f();
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "no error";
}

}  // namespace

TEST(ConfigView, TypedGettersReadValues) {
    Value v = parse_json(R"({"s":"x","i":3,"d":0.5,"b":true,"l":["a","b"],"o":{"k":"v"}})");
    ConfigView c(v);
    EXPECT_EQ(c.string("s"), "x");
    EXPECT_EQ(c.integer("i"), 3);
    EXPECT_DOUBLE_EQ(c.number("d"), 0.5);
    EXPECT_DOUBLE_EQ(c.number("i"), 3.0);
    EXPECT_TRUE(c.boolean("b"));
    EXPECT_EQ(c.strings("l"), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(c.object("o").string("k"), "v");
    EXPECT_EQ(c.string_or("missing", "dflt"), "dflt");
    EXPECT_EQ(c.integer_or("missing", 7), 7);
}

TEST(ConfigView, ErrorsNameTheKeyPath) {
    Value v = parse_json(R"({"s":1,"i":1.5,"l":["a",2],"o":{"port":70000,"mode":"x"}})");
    ConfigView c(v);
    EXPECT_EQ(error_of([&] { c.string("s"); }), "'s': expected a string, found number");
    EXPECT_EQ(error_of([&] { c.integer("i"); }), "'i': expected an integer, found a fraction");
    EXPECT_EQ(error_of([&] { c.strings("l"); }), "'l[1]': expected a string, found number");
    EXPECT_EQ(error_of([&] { c.string("absent"); }), "'absent': is required");
    EXPECT_EQ(error_of([&] { c.object("o").integer_in("port", 1, 65535); }),
              "'o.port': must be between 1 and 65535, found 70000");
    EXPECT_EQ(error_of([&] { c.object("o").one_of("mode", {"a", "b"}); }), "'o.mode': must be one of a, b, found 'x'");
}

TEST(ConfigView, ErrorsCarryThePosition) {
    Value v = parse_json("{\n\n  \"n\": \"x\"}");
    try {
        ConfigView(v).integer("n");
        FAIL();
    } catch (const ConfigError& e) {
        EXPECT_EQ(e.position().line, 3);
        EXPECT_EQ(e.key(), "n");
    }
}

TEST(JsonHelpers, AppendJsonStringEscapes) {
    std::string out;
    append_json_string(out, std::string("a\"b\\c\n\x01\t", 8));
    EXPECT_EQ(out, R"("a\"b\\c\n\u0001\t")");
}

TEST(JsonHelpers, AppendJsonStringMatchesAPlainReferenceOnEveryByte) {
    // Every byte value, control characters in a row (each needs more room than the doubling allows), after
    // text already in the buffer.
    std::string text;
    for (int round = 0; round < 3; ++round)
        for (int c = 0; c < 256; ++c)
            text += static_cast<char>(c);
    text += std::string(40, '\x1f');
    std::string expected = "prefix\"";
    for (unsigned char c : text) {
        static constexpr char hex[] = "0123456789abcdef";
        if (c == '"')
            expected += "\\\"";
        else if (c == '\\')
            expected += "\\\\";
        else if (c == '\n')
            expected += "\\n";
        else if (c == '\r')
            expected += "\\r";
        else if (c == '\t')
            expected += "\\t";
        else if (c == '\b')
            expected += "\\b";
        else if (c == '\f')
            expected += "\\f";
        else if (c < 0x20)
            expected += std::string("\\u00") + hex[c >> 4] + hex[c & 0xF];
        else
            expected += static_cast<char>(c);
    }
    expected += '"';
    std::string out = "prefix";
    append_json_string(out, text);
    EXPECT_EQ(out, expected);
}

TEST(JsonHelpers, FieldPathReadsMetadataThenPayload) {
    Event e;
    e.payload = R"({"id":"p-1","user_id":null,"lock":{"id":"L\"1","n":5,"deep":{"x":[1,{"y":2}]}},"ok":true})";
    e.meta.kind = "entry";
    e.meta.site_id = "S1";
    EXPECT_EQ(FieldPath("kind").get(e), "entry");
    EXPECT_EQ(FieldPath("site_id").get(e), "S1");
    EXPECT_EQ(FieldPath("id").get(e), "p-1");  // metadata id unset: falls back to the payload
    e.meta.id = "m-1";
    EXPECT_EQ(FieldPath("id").get(e), "m-1");
    EXPECT_EQ(FieldPath("payload.id").get(e), "p-1");
    EXPECT_EQ(FieldPath("lock.id").get(e), "L\"1");
    EXPECT_EQ(FieldPath("lock.n").get(e), "5");
    EXPECT_EQ(FieldPath("lock.deep.x").get(e), R"([1,{"y":2}])");
    EXPECT_EQ(FieldPath("ok").get(e), "true");
    EXPECT_FALSE(FieldPath("user_id").get(e).has_value());  // null counts as absent
    EXPECT_FALSE(FieldPath("lock.missing").get(e).has_value());
    EXPECT_FALSE(FieldPath("ok.x").get(e).has_value());
    EXPECT_THROW(FieldPath("a..b"), std::invalid_argument);
}

TEST(JsonHelpers, FieldLookupSurvivesMalformedPayloads) {
    std::string out;
    for (std::string bad : {"", "[", "{", "{\"a\"", "{\"a\":", "{\"a\":\"x", "not json", "{\"a\":1,", "{\"b\":[1,2"})
        EXPECT_FALSE(find_json_field(bad, {"a", "b"}, out)) << bad;
    EXPECT_TRUE(out.empty());
}

TEST(JsonHelpers, FormatUtc) {
    EXPECT_EQ(format_utc(std::chrono::system_clock::time_point(std::chrono::seconds(1787144238))),
              "2026-08-19T12:57:18Z");
}
