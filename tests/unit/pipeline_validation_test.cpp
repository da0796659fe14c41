#include <gtest/gtest.h>

#include "config/pipeline.h"
#include "fake_components.h"

using namespace hubflow;
using namespace hubflow::core;
using namespace hubflow::testing_core;

namespace {

class PipelineValidation : public ::testing::Test {
protected:
    void SetUp() override {
        registry.add_builtin<TickerSource>();
        registry.add_builtin<SplitFilter>();
        registry.add_builtin<PassFilter>();
        registry.add_builtin<StoreSink>();
    }

    // Validates `text` and returns the diagnostics, one string each.
    std::vector<Diagnostic> check(const std::string& text) {
        Diagnostics diags("pipe.json");
        auto doc = parse_pipeline_text(
            text, [](const std::string&) { return std::nullopt; }, diags);
        if (doc) spec = validate_pipeline(*doc, registry, diags);
        return diags.items();
    }

    static const Diagnostic* find(const std::vector<Diagnostic>& d, const std::string& text) {
        for (const auto& x : d)
            if (x.to_string().find(text) != std::string::npos) return &x;
        return nullptr;
    }

    static std::string all(const std::vector<Diagnostic>& d) {
        std::string s;
        for (const auto& x : d)
            s += x.to_string() + "\n";
        return s;
    }

    ComponentRegistry registry;
    PipelineSpec spec;
};

}  // namespace

TEST_F(PipelineValidation, AcceptsAValidPipelineAndFillsDefaults) {
    auto d = check(R"({
      "sources": {"in": {"type": "ticker", "count": 5}},
      "filters": {"route": {"type": "split", "inputs": ["in"]}},
      "sinks": {"e": {"type": "store", "inputs": ["route.entries"], "path": "a.jsonl"},
                "i": {"type": "store", "inputs": ["route.incidents", "in"], "buffer": {"max_events": 7, "when_full": "drop_newest"}}}
    })");
    ASSERT_TRUE(d.empty()) << all(d);
    ASSERT_EQ(spec.nodes.size(), 4u);
    const NodeSpec* in = spec.find("in");
    EXPECT_EQ(in->config.find("count")->as_int(), 5);
    EXPECT_EQ(in->config.find("batch")->as_int(), 4);  // default filled
    const NodeSpec* i = spec.find("i");
    EXPECT_EQ(i->buffer_max_events, 7u);
    EXPECT_EQ(i->when_full, WhenFull::drop_newest);
    ASSERT_EQ(i->inputs.size(), 2u);
    EXPECT_EQ(i->inputs[0].node, "route");
    EXPECT_EQ(i->inputs[0].output, "incidents");
}

TEST_F(PipelineValidation, MalformedJsonGivesLineAndColumn) {
    auto d = check("{\n  \"sources\": {\n    \"in\": {\"type\": \"ticker\",}\n  }\n}");
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].position.line, 3);
    EXPECT_NE(d[0].to_string().find("pipe.json:3:"), std::string::npos);
    EXPECT_NE(d[0].message.find("malformed JSON"), std::string::npos);
}

TEST_F(PipelineValidation, UnknownTypeListsKnownTypes) {
    auto d = check(R"({"sources": {"in": {"type": "tickr"}}, "sinks": {"out": {"type": "store", "inputs": ["in"]}}})");
    const Diagnostic* x = find(d, "unknown component type 'tickr'");
    ASSERT_NE(x, nullptr) << all(d);
    EXPECT_EQ(x->node, "in");
    EXPECT_EQ(x->key, "type");
    EXPECT_NE(x->message.find("did you mean 'ticker'"), std::string::npos);
    EXPECT_NE(x->message.find("known types: pass, split, store, ticker"), std::string::npos);
}

TEST_F(PipelineValidation, UnknownKeyIsNamedWithPositionAndSuggestion) {
    auto d = check(
        "{\"sources\": {\"in\": {\"type\": \"ticker\",\n \"cuont\": 3}},\n"
        " \"sinks\": {\"out\": {\"type\": \"store\", \"inputs\": [\"in\"], \"opts\": {\"depth\": 1, \"dpeth\": 2}}}}");
    const Diagnostic* x = find(d, "key 'cuont'");
    ASSERT_NE(x, nullptr) << all(d);
    EXPECT_EQ(x->node, "in");
    EXPECT_EQ(x->position.line, 2);
    EXPECT_NE(x->message.find("did you mean 'count'"), std::string::npos);
    const Diagnostic* nested = find(d, "key 'opts.dpeth'");
    ASSERT_NE(nested, nullptr) << all(d);
    EXPECT_EQ(nested->node, "out");
}

TEST_F(PipelineValidation, WrongValueTypeIsNamed) {
    auto d = check(R"({"sources": {"in": {"type": "ticker", "count": "ten", "forever": 1}},
                       "sinks": {"out": {"type": "store", "inputs": ["in"], "level": 2.5}}})");
    const Diagnostic* count = find(d, "key 'count': expected an integer, found a string");
    ASSERT_NE(count, nullptr) << all(d);
    EXPECT_EQ(count->node, "in");
    EXPECT_NE(find(d, "key 'forever': expected true or false"), nullptr) << all(d);
    EXPECT_NE(find(d, "key 'level': expected an integer, found a fraction"), nullptr) << all(d);
}

TEST_F(PipelineValidation, MissingRequiredKeyIsNamed) {
    auto d = check(R"({"sources": {"in": {}}, "sinks": {"out": {"type": "store", "inputs": ["in"], "opts": {}}}})");
    EXPECT_NE(find(d, "node 'in', key 'type': missing required key"), nullptr) << all(d);
    EXPECT_NE(find(d, "node 'out', key 'opts.depth': missing required key"), nullptr) << all(d);
}

TEST_F(PipelineValidation, InputNamingNoNode) {
    auto d =
        check(R"({"sources": {"in": {"type": "ticker"}}, "sinks": {"out": {"type": "store", "inputs": ["inn"]}}})");
    const Diagnostic* x = find(d, "input 'inn' names no node");
    ASSERT_NE(x, nullptr) << all(d);
    EXPECT_EQ(x->node, "out");
    EXPECT_NE(x->message.find("did you mean 'in'"), std::string::npos);
}

TEST_F(PipelineValidation, UnknownRoutedOutput) {
    auto d = check(R"({"sources": {"in": {"type": "ticker"}},
                       "filters": {"r": {"type": "split", "inputs": ["in"]}},
                       "sinks": {"out": {"type": "store", "inputs": ["r.alarms", "in.x"]}}})");
    EXPECT_NE(find(d, "node 'r' has no output 'alarms'; its outputs: entries, incidents"), nullptr) << all(d);
    EXPECT_NE(find(d, "node 'in' has no named outputs"), nullptr) << all(d);
}

TEST_F(PipelineValidation, CycleIsNamed) {
    auto d = check(R"({"sources": {"in": {"type": "ticker"}},
                       "filters": {"a": {"type": "pass", "inputs": ["in", "b"]}, "b": {"type": "pass", "inputs": ["a"]}},
                       "sinks": {"out": {"type": "store", "inputs": ["b"]}}})");
    EXPECT_NE(find(d, "the graph has a cycle: a -> b -> a"), nullptr) << all(d);
}

TEST_F(PipelineValidation, SinkWithoutInput) {
    auto d = check(R"({"sources": {"in": {"type": "ticker"}},
                       "sinks": {"a": {"type": "store"}, "b": {"type": "store", "inputs": []}}})");
    EXPECT_NE(find(d, "node 'a', key 'inputs': missing required key: a sink needs at least one input"), nullptr)
        << all(d);
    EXPECT_NE(find(d, "node 'b', key 'inputs': a sink needs at least one input"), nullptr) << all(d);
}

TEST_F(PipelineValidation, TwoNodesClaimingOneFileOrAddress) {
    auto d = check(R"({"sources": {"in": {"type": "ticker"}},
                       "sinks": {"a": {"type": "store", "inputs": ["in"], "path": "out/x.jsonl", "listen": "0.0.0.0:9000"},
                                 "b": {"type": "store", "inputs": ["in"], "path": "out/../out/x.jsonl", "listen": "127.0.0.1:9000"},
                                 "c": {"type": "store", "inputs": ["in"], "path": "out/y.jsonl", "listen": "127.0.0.1:9001"}}})");
    const Diagnostic* file = find(d, "file 'out/../out/x.jsonl' is already claimed by node 'a'");
    ASSERT_NE(file, nullptr) << all(d);
    EXPECT_EQ(file->node, "b");
    EXPECT_NE(find(d, "listen address '127.0.0.1:9000' is already claimed by node 'a'"), nullptr) << all(d);
    EXPECT_EQ(d.size(), 2u) << all(d);
}

TEST_F(PipelineValidation, ComponentConfigErrorsNameTheKey) {
    auto d = check(R"({"sources": {"in": {"type": "ticker", "count": -1}},
                       "filters": {"r": {"type": "split", "inputs": ["in"], "outputs": ["bad"]}},
                       "sinks": {"out": {"type": "store", "inputs": ["r"]}}})");
    EXPECT_NE(find(d, "node 'in', key 'count': must be between 0 and 10000000, found -1"), nullptr) << all(d);
    EXPECT_NE(find(d, "node 'r', key 'outputs': 'bad' is not a valid output name"), nullptr) << all(d);
}

TEST_F(PipelineValidation, StructuralMistakes) {
    auto d = check(R"({"sources": {"in": {"type": "store", "inputs": ["x"]}, "bad.name": {"type": "ticker"}},
                       "sinks": {"in": {"type": "ticker"}}, "sink": {}, "grace_period_s": "soon"})");
    EXPECT_NE(find(d, "node 'in', key 'inputs': a source has no inputs"), nullptr) << all(d);
    EXPECT_NE(find(d, "'store' is a sink, but this node is in sources"), nullptr) << all(d);
    EXPECT_NE(find(d, "node names may use only"), nullptr) << all(d);
    EXPECT_NE(find(d, "another node already has this name"), nullptr) << all(d);
    EXPECT_NE(find(d, "key 'sink': unknown top-level key (did you mean 'sinks'?)"), nullptr) << all(d);
    EXPECT_NE(find(d, "key 'grace_period_s'"), nullptr) << all(d);
}

TEST_F(PipelineValidation, ReportsEveryProblemAtOnce) {
    auto d = check(R"({"sources": {"in": {"type": "ticker", "count": "x", "extra": 1}},
                       "sinks": {"a": {"type": "nope", "inputs": ["in"]}, "b": {"type": "store", "inputs": ["ghost"]}}})");
    EXPECT_GE(d.size(), 4u) << all(d);
}

TEST(PipelineGraph, DotListsNodesAndEdges) {
    PipelineSpec spec;
    spec.nodes.push_back({.name = "in", .kind = ComponentKind::source, .type = "ticker"});
    spec.nodes.push_back({.name = "r", .kind = ComponentKind::filter, .type = "split", .inputs = {{"in", "", {}}}});
    spec.nodes.push_back(
        {.name = "out", .kind = ComponentKind::sink, .type = "store", .inputs = {{"r", "entries", {}}}});
    std::string dot = to_dot(spec);
    EXPECT_NE(dot.find("digraph pipeline"), std::string::npos);
    EXPECT_NE(dot.find("\"in\" -> \"r\";"), std::string::npos) << dot;
    EXPECT_NE(dot.find("\"r\" -> \"out\" [label=\"entries\"];"), std::string::npos) << dot;
    EXPECT_TRUE(find_cycle(spec).empty());
}
