#include "hubflow/path_template.h"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>

namespace {

using hubflow::Event;
using hubflow::PathTemplate;
using hubflow::sanitize_path_value;

constexpr std::int64_t nov_14_2023_22h13 = 1'700'000'000;  // 2023-11-14T22:13:20Z

Event make_event(std::string payload, std::string kind = {}, std::string site_id = {}) {
    Event e;
    e.payload = std::move(payload);
    e.meta.kind = std::move(kind);
    e.meta.site_id = std::move(site_id);
    return e;
}

std::string render(PathTemplate& t, const Event& e, std::int64_t second = nov_14_2023_22h13) {
    std::string out = "leftover";
    t.render(e, second, out);
    return out;
}

TEST(PathTemplate, PlainTextIsConstant) {
    PathTemplate t("out/events.jsonl");
    EXPECT_FALSE(t.has_fields());
    EXPECT_FALSE(t.has_time());
    EXPECT_EQ(render(t, make_event("{}")), "out/events.jsonl");
}

TEST(PathTemplate, DoubledBracesAreLiteral) {
    PathTemplate t("a{{b}}c}");
    EXPECT_FALSE(t.has_fields());
    EXPECT_EQ(render(t, make_event("{}")), "a{b}c}");
}

TEST(PathTemplate, StrftimeRunsUseUtc) {
    PathTemplate t("logs/%Y/%m/%d/%H-%M-%S-%%.jsonl");
    EXPECT_TRUE(t.has_time());
    EXPECT_FALSE(t.has_fields());
    EXPECT_EQ(render(t, make_event("{}")), "logs/2023/11/14/22-13-20-%.jsonl");
    EXPECT_EQ(render(t, make_event("{}"), nov_14_2023_22h13 + 3600), "logs/2023/11/14/23-13-20-%.jsonl");
    EXPECT_EQ(render(t, make_event("{}")), "logs/2023/11/14/22-13-20-%.jsonl");
}

TEST(PathTemplate, FieldsComeFromMetadataThenPayload) {
    PathTemplate t("{site_id}/{kind}-{lock.id}-{door_id}.jsonl");
    EXPECT_TRUE(t.has_fields());
    EXPECT_EQ(render(t, make_event(R"({"lock":{"id":"L7"},"door_id":12})", "entry", "s1")), "s1/entry-L7-12.jsonl");
    // No metadata kind: the payload's field of that name.
    EXPECT_EQ(render(t, make_event(R"({"kind":"incident","lock":{"id":"L8"},"door_id":3})", "", "s2")),
              "s2/incident-L8-3.jsonl");
}

TEST(PathTemplate, MissingOrEmptyFieldRendersUnknown) {
    PathTemplate t("{site_id}/{lock_id}.jsonl");
    EXPECT_EQ(render(t, make_event(R"({"other":1})")), "unknown/unknown.jsonl");
    EXPECT_EQ(render(t, make_event(R"({"lock_id":""})")), "unknown/unknown.jsonl");
    EXPECT_EQ(render(t, make_event(R"({"lock_id":null})")), "unknown/unknown.jsonl");
    EXPECT_EQ(render(t, make_event("not json")), "unknown/unknown.jsonl");
}

TEST(PathTemplate, FieldValuesAreSanitised) {
    PathTemplate t("out/{site_id}/{kind}.jsonl");
    EXPECT_EQ(render(t, make_event("{}", "a/b\\c", "../x")), "out/_._x/a_b_c.jsonl");
    EXPECT_EQ(render(t, make_event("{}", ".", "..")), "out/_./_.jsonl");
    EXPECT_EQ(render(t, make_event("{}", std::string("a\0b", 3), "/etc")), "out/_etc/a_b.jsonl");
    // Only the template's own text may hold separators and dots.
    PathTemplate dots("../shared/{kind}.jsonl");
    EXPECT_EQ(render(dots, make_event("{}", "../../etc/passwd")), "../shared/_._.._etc_passwd.jsonl");
}

TEST(PathTemplate, FieldsAndTimeTogether) {
    PathTemplate t("{kind}/%Y-%m-%d.jsonl");
    EXPECT_TRUE(t.has_fields());
    EXPECT_TRUE(t.has_time());
    EXPECT_EQ(render(t, make_event("{}", "entry")), "entry/2023-11-14.jsonl");
}

TEST(PathTemplate, RejectsMalformedTemplates) {
    for (const char* bad : {"", "out/", "out/{kind", "out/{}.jsonl", "out/{a{b}.jsonl", "out/{a..b}.jsonl"}) {
        EXPECT_THROW(PathTemplate{bad}, std::invalid_argument) << bad;
    }
}

TEST(SanitizePathValue, OnlyTouchesTheValue) {
    std::string s = "./keep/";
    std::size_t from = s.size();
    s += ".hidden/x\\y";
    sanitize_path_value(s, from);
    EXPECT_EQ(s, "./keep/_hidden_x_y");

    std::string inner = "a.b..c";
    sanitize_path_value(inner, 0);
    EXPECT_EQ(inner, "a.b..c");
}

}  // namespace
