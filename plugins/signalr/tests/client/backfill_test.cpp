// The backfill's pure pieces: event times and the history's page bodies. Its behaviour against a history is
// tested end to end in tests/node/source_backfill.test.js and source_backfill_hub.test.js.
#include <gtest/gtest.h>

#include "client/backfill.h"

namespace hubflow::signalr {
namespace {

TEST(BackfillTime, Rfc3339AsKsWritesIt) {
    EXPECT_EQ(parse_utc_seconds("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(parse_utc_seconds("2026-08-19T12:50:38Z"), 1787143838);
    EXPECT_EQ(parse_utc_seconds("2026-08-19T12:50:38.999Z"), 1787143838);  // fractions are cut, not rounded
    EXPECT_EQ(parse_utc_seconds("2026-08-19T14:50:38+02:00"), 1787143838);
    EXPECT_EQ(parse_utc_seconds("2026-08-19T12:50:38"), 1787143838);  // no zone: UTC, as the field's name says
    EXPECT_EQ(parse_utc_seconds("2024-02-29T00:00:00Z"), 1709164800);
    EXPECT_EQ(parse_utc_seconds("1969-12-31T23:59:59Z"), -1);
    for (const char* bad : {"", "2026-08-19", "2026-13-19T12:50:38Z", "2026-08-19T24:00:00Z", "2026-08-19T12:50:38Q",
                            "2026-08-19T12:50:38.Z", "2026-08-19T12:50:38+0200", "x026-08-19T12:50:38Z"})
        EXPECT_FALSE(parse_utc_seconds(bad)) << bad;
}

TEST(BackfillPage, ItemsAsSentAndTheTokenUnescaped) {
    std::vector<std::string_view> items;
    std::optional<std::string> token;
    std::string error;
    const std::string body =
        R"( {"items": [ {"id":"a","n":[1,{"x":"}"}]} ,{"id":"b"}], "extra": {"k": [true, null, -1.5e3]},)"
        R"( "continuation_token": "{\"token\":\"+RID:~1#RT:1\",\"range\":{\"min\":\"\",\"max\":\"FF\"}}"} )";
    ASSERT_TRUE(parse_history_page(body, items, token, error)) << error;
    ASSERT_EQ(items.size(), 2u);
    EXPECT_EQ(items[0], R"({"id":"a","n":[1,{"x":"}"}]})");
    EXPECT_EQ(items[1], R"({"id":"b"})");
    ASSERT_TRUE(token);
    EXPECT_EQ(*token, R"({"token":"+RID:~1#RT:1","range":{"min":"","max":"FF"}})");
}

TEST(BackfillPage, OnlyAMissingOrNullTokenEndsTheQuery) {
    std::vector<std::string_view> items;
    std::optional<std::string> token;
    std::string error;
    ASSERT_TRUE(parse_history_page(R"({"items":[]})", items, token, error)) << error;
    EXPECT_FALSE(token);
    ASSERT_TRUE(parse_history_page(R"({"items":[],"continuation_token":null})", items, token, error)) << error;
    EXPECT_FALSE(token);
    ASSERT_TRUE(parse_history_page(R"({"items":[],"continuation_token":"t"})", items, token, error)) << error;
    EXPECT_TRUE(items.empty());
    EXPECT_EQ(token, "t");
}

TEST(BackfillPage, MalformedBodiesNameWhatIsWrong) {
    std::vector<std::string_view> items;
    std::optional<std::string> token;
    std::string error;
    const std::pair<const char*, const char*> cases[] = {
        {"", "the body is empty"},
        {"[]", "the body is not a JSON object"},
        {"<html>", "the body is not a JSON object"},
        {"{not json", "the body is not valid JSON"},
        {R"({"continuation_token":"t"})", "the body has no `items`"},
        {R"({"items":5})", "`items` is not an array"},
        {R"({"items":[1]})", "item 0 of `items` is not an object"},
        {R"({"items":[{"id":"a"},{"id":}]})", "item 1 of `items` is not valid JSON"},
        {R"({"items":[{"id":"a"}})", "`items` is not valid JSON"},
        {R"({"items":[],"continuation_token":7})", "`continuation_token` is neither a string nor null"},
        {R"({"items":[],"continuation_token":""})", "`continuation_token` is an empty string"},
        {R"({"items":[],"continuation_token":"\x"})", "`continuation_token` is not a valid JSON string"},
        {R"({"items":[]} x)", "text after the JSON object"},
        {R"({"items":[],"a":tru})", "the value of `a` is not valid JSON"},
        {R"({"items":[{"id":"a"})", "`items` is not valid JSON"},
    };
    for (const auto& [body, expected] : cases) {
        error.clear();
        EXPECT_FALSE(parse_history_page(body, items, token, error)) << body;
        EXPECT_NE(error.find(expected), std::string::npos) << body << " -> " << error;
    }
    // Nesting deeper than a page can sensibly hold is refused rather than recursed into.
    std::string deep = R"({"items":[{"a":)" + std::string(200, '[') + std::string(200, ']') + "}]}";
    EXPECT_FALSE(parse_history_page(deep, items, token, error));
}

}  // namespace
}  // namespace hubflow::signalr
