#include "hubflow/json_parse.h"

#include <gtest/gtest.h>

using hubflow::Value;
using hubflow::JsonSyntaxError;
using hubflow::parse_json;

namespace {

struct SyntaxProblem {
    int line = 0;
    int column = 0;
    std::string message;
};

SyntaxProblem problem_in(const std::string& text) {
    try {
        parse_json(text);
    } catch (const JsonSyntaxError& e) {
        return {e.position().line, e.position().column, e.what()};
    }
    ADD_FAILURE() << "no syntax error in: " << text;
    return {};
}

}  // namespace

TEST(JsonParser, ParsesEveryValueType) {
    Value v = parse_json(R"({"s":"x","i":-42,"d":1.5e3,"t":true,"f":false,"n":null,"a":[1,"2"],"o":{"k":[]}})");
    ASSERT_TRUE(v.is_object());
    EXPECT_EQ(v.find("s")->as_string(), "x");
    EXPECT_TRUE(v.find("i")->is_integer());
    EXPECT_EQ(v.find("i")->as_int(), -42);
    EXPECT_FALSE(v.find("d")->is_integer());
    EXPECT_DOUBLE_EQ(v.find("d")->as_double(), 1500.0);
    EXPECT_TRUE(v.find("t")->as_bool());
    EXPECT_FALSE(v.find("f")->as_bool());
    EXPECT_TRUE(v.find("n")->is_null());
    EXPECT_EQ(v.find("a")->as_array().size(), 2u);
    EXPECT_TRUE(v.find("o")->find("k")->is_array());
}

TEST(JsonParser, KeepsKeyOrder) {
    Value v = parse_json(R"({"z":1,"a":2,"m":3})");
    const auto& o = v.as_object();
    EXPECT_EQ(o[0].first, "z");
    EXPECT_EQ(o[1].first, "a");
    EXPECT_EQ(o[2].first, "m");
}

TEST(JsonParser, RecordsLineAndColumnOfValues) {
    Value v = parse_json("{\n  \"a\": 1,\n    \"b\": [true]\n}");
    EXPECT_EQ(v.find("a")->position.line, 2);
    EXPECT_EQ(v.find("a")->position.column, 8);
    EXPECT_EQ(v.find("b")->position.line, 3);
    EXPECT_EQ(v.find("b")->as_array()[0].position.column, 11);
}

TEST(JsonParser, DecodesEscapesAndSurrogatePairs) {
    Value v = parse_json(R"(["a\"b\\c\/\n\t", "\u00e9\ud83d\ude00"])");
    EXPECT_EQ(v.as_array()[0].as_string(), "a\"b\\c/\n\t");
    EXPECT_EQ(v.as_array()[1].as_string(), "\xC3\xA9\xF0\x9F\x98\x80");
}

TEST(JsonParser, ReportsWhereSyntaxBreaks) {
    auto p = problem_in("{\n  \"a\": 1,\n  \"b\" 2\n}");
    EXPECT_EQ(p.line, 3);
    EXPECT_EQ(p.column, 7);
    EXPECT_NE(p.message.find("expected ':'"), std::string::npos);

    p = problem_in("{\"a\": 1,}");
    EXPECT_NE(p.message.find("trailing comma"), std::string::npos);

    p = problem_in("{\"a\": \"unterminated");
    EXPECT_NE(p.message.find("unterminated string"), std::string::npos);

    p = problem_in("[1, 2");
    EXPECT_NE(p.message.find("end of file"), std::string::npos);

    p = problem_in("{} x");
    EXPECT_NE(p.message.find("after the JSON document"), std::string::npos);

    p = problem_in("[01]");
    EXPECT_FALSE(p.message.empty());

    p = problem_in("[\"\\x\"]");
    EXPECT_NE(p.message.find("invalid escape"), std::string::npos);
}

TEST(JsonParser, RefusesDuplicateKeys) {
    auto p = problem_in("{\"a\": 1,\n \"a\": 2}");
    EXPECT_EQ(p.line, 2);
    EXPECT_NE(p.message.find("duplicate key 'a'"), std::string::npos);
}

TEST(JsonParser, RefusesExcessiveNesting) {
    std::string deep(1000, '[');
    auto p = problem_in(deep);
    EXPECT_NE(p.message.find("nesting"), std::string::npos);
}

TEST(JsonParser, RoundTripsThroughToJson) {
    const std::string text = R"({"a":[1,2.5,"x\n"],"b":{"c":null,"d":true}})";
    EXPECT_EQ(hubflow::to_json(parse_json(text)), text);
}
