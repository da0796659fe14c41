#include "config/env_expand.h"

#include <gtest/gtest.h>

#include <map>

#include "hubflow/json_parse.h"

using namespace hubflow;
using namespace hubflow::core;

namespace {

Environment fake_env(std::map<std::string, std::string> vars) {
    return [vars](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}

}  // namespace

TEST(EnvExpand, ReplacesVariablesAndDefaultsInStrings) {
    Value doc = parse_json(
        R"({"sinks":{"out":{"path":"${DIR}/x-${MISSING:-dflt}.jsonl","n":"$$5","e":"${EMPTY:-fallback}"}}})");
    Diagnostics diags("p.json");
    expand_environment(doc, fake_env({{"DIR", "/tmp/out"}, {"EMPTY", ""}}), diags);
    ASSERT_TRUE(diags.empty()) << diags.to_string();
    const Value& out = *doc.find("sinks")->find("out");
    EXPECT_EQ(out.find("path")->as_string(), "/tmp/out/x-dflt.jsonl");
    EXPECT_EQ(out.find("n")->as_string(), "$5");
    EXPECT_EQ(out.find("e")->as_string(), "fallback");
}

TEST(EnvExpand, ValuesCannotAddStructure) {
    Value doc = parse_json(R"({"sources":{"a":{"token":"${T}"}}})");
    Diagnostics diags("p.json");
    expand_environment(doc, fake_env({{"T", R"(x", "extra": {"y": 1})"}}), diags);
    const Value& a = *doc.find("sources")->find("a");
    EXPECT_EQ(a.as_object().size(), 1u);
    EXPECT_EQ(a.find("token")->as_string(), R"(x", "extra": {"y": 1})");
}

TEST(EnvExpand, MissingVariableNamesNodeKeyAndVariable) {
    Value doc = parse_json("{\"sinks\": {\n \"out\": {\"path\": \"${NOPE}\"}}}");
    Diagnostics diags("p.json");
    expand_environment(doc, fake_env({}), diags);
    ASSERT_EQ(diags.items().size(), 1u);
    const auto& d = diags.items()[0];
    EXPECT_EQ(d.node, "out");
    EXPECT_EQ(d.key, "path");
    EXPECT_EQ(d.position.line, 2);
    EXPECT_NE(d.message.find("NOPE"), std::string::npos);
}

TEST(EnvExpand, NumbersAndKeysAreLeftAlone) {
    Value doc = parse_json(R"({"${K}": 1, "v": ["${A}"]})");
    Diagnostics diags("p.json");
    expand_environment(doc, fake_env({{"A", "a"}, {"K", "k"}}), diags);
    EXPECT_NE(doc.find("${K}"), nullptr);
    EXPECT_EQ(doc.find("v")->as_array()[0].as_string(), "a");
}

TEST(EnvExpand, UnterminatedReferenceIsReported) {
    Value doc = parse_json(R"({"v": "${A"})");
    Diagnostics diags("p.json");
    expand_environment(doc, fake_env({{"A", "a"}}), diags);
    ASSERT_EQ(diags.items().size(), 1u);
    EXPECT_NE(diags.items()[0].message.find("unterminated"), std::string::npos);
}
