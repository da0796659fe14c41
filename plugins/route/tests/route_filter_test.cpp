// The `route` filter: every operator, and/or/not, modes, `unmatched`, configuration errors, and a real
// hubflow process splitting a generator's stream into two files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "hubflow/testing/fake_context.h"
#include "hubflow/testing/node_config.h"
#include "process.h"
#include "route_filter.h"

namespace hubflow::route {
namespace {

Event event(std::string kind, std::string payload) {
    Event e;
    e.meta.kind = std::move(kind);
    e.meta.site_id = "S1";
    e.payload = std::move(payload);
    return e;
}

// Routes `events` with `routes_json` and returns, per output, the payloads it got.
std::map<std::string, std::vector<std::string>> route(const std::string& config_json, std::vector<Event> events) {
    hubflow::testing::FakeContext context("r");
    Value config = hubflow::testing::node_config(RouteFilter::describe(), config_json);
    RouteFilter filter;
    filter.configure(ConfigView(config), context);
    filter.process(std::make_shared<const EventBatch>(std::move(events)));
    std::map<std::string, std::vector<std::string>> got;
    for (const auto& [output, list] : context.emitted)
        for (const auto& e : list)
            got[output].push_back(e.payload);
    return got;
}

const std::vector<Event> sample = {
    event("entry", R"({"id":"1","event_category":"lock_opened","lock":{"name":"Door 7"},"n":5})"),
    event("incident", R"({"id":"2","event_category":"alarm_intrusion","n":12})"),
    event("entry", R"({"id":"3","event_category":"lock_closed","user_id":null})"),
    event("incident", R"({"id":"4","event_category":"alarm_tamper","lock":{"name":"Gate"}})"),
};

TEST(Route, EachOperator) {
    auto got = route(R"({"routes": {
        "entries": {"field": "kind", "equals": "entry"},
        "alarms": {"field": "event_category", "prefix": "alarm_"},
        "some": {"field": "id", "one_of": ["2", "3"]},
        "named": {"field": "lock.name", "exists": true},
        "doors": {"field": "payload.lock.name", "regex": "^Door [0-9]+$"},
        "five": {"field": "n", "equals": 5}}})",
                     sample);
    auto ids = [&](const std::string& out) {
        std::vector<std::string> r;
        for (const auto& p : got[out])
            r.push_back(p.substr(7, 1));
        return r;
    };
    EXPECT_EQ(ids("entries"), (std::vector<std::string>{"1", "3"}));
    EXPECT_EQ(ids("alarms"), (std::vector<std::string>{"2", "4"}));
    EXPECT_EQ(ids("some"), (std::vector<std::string>{"2", "3"}));
    EXPECT_EQ(ids("named"), (std::vector<std::string>{"1", "4"}));
    EXPECT_EQ(ids("doors"), (std::vector<std::string>{"1"}));
    EXPECT_EQ(ids("five"), (std::vector<std::string>{"1"}));
    EXPECT_TRUE(got["unmatched"].empty());
}

TEST(Route, AllAnyNotAndUnmatched) {
    auto got = route(R"({"routes": {
        "open_doors": {"all": [{"field": "kind", "equals": "entry"}, {"field": "event_category", "regex": "opened"}]},
        "not_entries": {"not": {"field": "kind", "equals": "entry"}},
        "null_user": {"any": [{"field": "user_id", "exists": false}, {"field": "id", "equals": "nope"}]}}})",
                     sample);
    EXPECT_EQ(got["open_doors"].size(), 1u);
    EXPECT_EQ(got["not_entries"].size(), 2u);
    // user_id null counts as absent: every event lacks a user id.
    EXPECT_EQ(got["null_user"].size(), 4u);
    EXPECT_TRUE(got["unmatched"].empty());

    auto rest = route(R"({"routes": {"alarms": {"field": "event_category", "prefix": "alarm"}}})", sample);
    EXPECT_EQ(rest["alarms"].size(), 2u);
    EXPECT_EQ(rest["unmatched"].size(), 2u);
}

TEST(Route, MetadataFieldsMissingFieldsAndSearchSemantics) {
    auto got = route(R"({"routes": {
        "site": {"field": "site_id", "equals": "S1"},
        "no_lock": {"not": {"field": "lock.name", "prefix": ""}},
        "mid": {"field": "event_category", "regex": "intru"},
        "whole": {"field": "event_category", "regex": "^intru"},
        "numbers": {"field": "n", "one_of": [12, "5"]},
        "kinds": {"field": "payload.kind", "exists": true}}})",
                     sample);
    EXPECT_EQ(got["site"].size(), 4u);     // metadata
    EXPECT_EQ(got["no_lock"].size(), 2u);  // a missing field matches no operator but `exists: false`
    EXPECT_EQ(got["mid"].size(), 1u);      // a regex is searched for anywhere in the text
    EXPECT_EQ(got["whole"].size(), 0u);
    EXPECT_EQ(got["numbers"].size(), 2u);  // numbers compare as JSON writes them
    EXPECT_EQ(got["kinds"].size(), 0u);    // `payload.` skips the metadata
}

TEST(Route, MixedBatchKeepsOrderAndMetadataOnEveryOutput) {
    hubflow::testing::FakeContext context("r");
    Value config = hubflow::testing::node_config(
        RouteFilter::describe(), R"({"routes": {"e": {"field": "kind", "equals": "entry"}, "any": {"field": "id",
                                     "exists": true}}})");
    RouteFilter filter;
    filter.configure(ConfigView(config), context);
    filter.process(std::make_shared<const EventBatch>(sample));
    ASSERT_EQ(context.emitted["e"].size(), 2u);
    EXPECT_EQ(context.emitted["e"][1].payload, sample[2].payload);
    EXPECT_EQ(context.emitted["e"][1].meta.site_id, "S1");
    EXPECT_EQ(context.emitted["any"].size(), 4u);
    EXPECT_EQ(context.metric_registry.counters.at("matched_e").value(), 2u);
    EXPECT_EQ(context.metric_registry.counters.at("matched_any").value(), 4u);
    EXPECT_EQ(context.metric_registry.counters.at("matched_unmatched").value(), 0u);
}

TEST(Route, ModeFirstStopsAtTheFirstMatchInOrderWritten) {
    const char* routes =
        R"("routes": {"b": {"field": "kind", "equals": "entry"}, "a": {"field": "id", "one_of": ["1", "2"]}})";
    auto all = route(std::string("{") + routes + "}", sample);
    EXPECT_EQ(all["b"].size(), 2u);
    EXPECT_EQ(all["a"].size(), 2u);
    auto first = route(std::string("{") + routes + R"(, "mode": "first"})", sample);
    EXPECT_EQ(first["b"].size(), 2u);
    EXPECT_EQ(first["a"].size(), 1u);  // event 1 went to b only
    EXPECT_EQ(first["unmatched"].size(), 1u);
}

TEST(Route, OutputsAreTheRoutesPlusUnmatched) {
    hubflow::testing::FakeContext context("r");
    Value config = hubflow::testing::node_config(
        RouteFilter::describe(),
        R"({"routes": {"x": {"field": "id", "exists": true}, "y": {"field": "id", "exists": false}}})");
    RouteFilter filter;
    filter.configure(ConfigView(config), context);
    EXPECT_EQ(filter.outputs(), (std::vector<std::string>{"x", "y", "unmatched"}));
}

std::string error_key(const std::string& json) {
    try {
        route(json, {});
    } catch (const ConfigError& e) {
        return e.key();
    }
    return "";
}

TEST(Route, ConfigErrorsNameTheKey) {
    EXPECT_EQ(error_key(R"({"routes": []})"), "routes");
    EXPECT_EQ(error_key(R"({"routes": {}})"), "routes");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"field": "id", "matches": "x"}}})"), "routes.a.matches");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"field": "id"}}})"), "routes.a");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"field": "id", "equals": "x", "prefix": "y"}}})"), "routes.a");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"equals": "x"}}})"), "routes.a.field");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"field": "id", "regex": "(unclosed"}}})"), "routes.a.regex");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"field": "id", "one_of": []}}})"), "routes.a.one_of");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"field": "id", "one_of": ["x", {}]}}})"), "routes.a.one_of[1]");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"field": "id", "exists": "yes"}}})"), "routes.a.exists");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"any": [{"field": "id", "exists": true}, {"not": 3}]}}})"),
              "routes.a.any[1].not");
    EXPECT_EQ(error_key(R"({"routes": {"unmatched": {"field": "id", "exists": true}}})"), "routes.unmatched");
    EXPECT_EQ(error_key(R"({"routes": {"a.b": {"field": "id", "exists": true}}})"), "routes.a.b");
    EXPECT_EQ(error_key(R"({"routes": {"a b": {"field": "id", "exists": true}}})"), "routes.a b");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"field": "id", "equals": null}}})"), "routes.a.equals");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"field": "id", "prefix": 3}}})"), "routes.a.prefix");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"field": "id", "regex": 3}}})"), "routes.a.regex");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"all": {"field": "id", "exists": true}}}})"), "routes.a.all");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"not": {"field": "id", "exists": true}, "field": "id"}}})"),
              "routes.a.field");
    EXPECT_EQ(error_key(R"({"routes": {"a": "kind == entry"}})"), "routes.a");
    EXPECT_EQ(
        error_key(R"({"routes": {"a": {"field": "id", "exists": true}, "b-2_c": {"field": "id", "exists": true}}})"),
        "");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"field": "id", "exists": true}}, "mode": "some"})"), "mode");
    EXPECT_EQ(error_key(R"({"routes": {"a": {"field": "x..y", "exists": true}}})"), "routes.a.field");
}

TEST(RouteProcess, GeneratorSplitByKindIntoTwoFiles) {
    namespace fs = std::filesystem;
    fs::path dir = fs::temp_directory_path() / ("hubflow-route-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "p.json") << R"({
      "sources": {"g": {"type": "generator", "count": 5000, "rate": 0, "incident_ratio": 0.3, "seed": 4}},
      "filters": {"split": {"type": "route", "inputs": ["g"],
                            "routes": {"incidents": {"field": "kind", "equals": "incident"}}}},
      "sinks": {"inc": {"type": "file", "inputs": ["split.incidents"], "path": ")"
                                  << (dir / "incidents.jsonl").string() << R"("},
                "rest": {"type": "file", "inputs": ["split.unmatched"], "path": ")"
                                  << (dir / "rest.jsonl").string() << R"("}}})";
    auto r = hubflow::test::run_program(std::string(HUBFLOW_BINARY_DIR) + "/bin/hubflow",
                                        {"run", (dir / "p.json").string()});
    ASSERT_EQ(r.code, 0) << r.err;
    auto count = [](const fs::path& p, const std::string& must_contain, const std::string& must_not) {
        std::ifstream in(p);
        std::string line;
        std::size_t n = 0;
        while (std::getline(in, line)) {
            EXPECT_NE(line.find(must_contain), std::string::npos) << line;
            if (!must_not.empty()) {
                EXPECT_EQ(line.find(must_not), std::string::npos) << line;
            }
            ++n;
        }
        return n;
    };
    // Incidents carry an alarm category; entries a lock category.
    const std::size_t incidents = count(dir / "incidents.jsonl", "\"id\"", "");
    const std::size_t rest = count(dir / "rest.jsonl", "\"id\"", "");
    EXPECT_EQ(incidents + rest, 5000u);
    EXPECT_GT(incidents, 1000u);
    EXPECT_LT(incidents, 2000u);
    EXPECT_NE(r.err.find("matched_incidents=" + std::to_string(incidents)), std::string::npos) << r.err;
    fs::remove_all(dir);
}

// `hubflow validate` names the file, the node, the key and its position for a bad condition and for an input
// that reads an output the route node does not have.
TEST(RouteProcess, ValidateNamesNodeKeyAndPosition) {
    namespace fs = std::filesystem;
    fs::path dir = fs::temp_directory_path() / ("hubflow-route-validate-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto validate = [&](const std::string& regex, const std::string& input) {
        std::ofstream(dir / "p.json", std::ios::trunc) << R"({
  "sources": {"g": {"type": "generator", "count": 10}},
  "filters": {"split": {"type": "route", "inputs": ["g"],
                        "routes": {"inc": {"field": "kind", "regex": ")"
                                                       << regex << R"("}}}},
  "sinks": {"a": {"type": "file", "inputs": [")" << input
                                                       << R"("], "path": ")" << (dir / "a.jsonl").string() << R"("}}
})";
        return hubflow::test::run_program(std::string(HUBFLOW_BINARY_DIR) + "/bin/hubflow",
                                          {"validate", (dir / "p.json").string()});
    };
    auto bad_regex = validate("(unclosed", "split.inc");
    EXPECT_NE(bad_regex.code, 0);
    EXPECT_NE(bad_regex.err.find("p.json:4:"), std::string::npos) << bad_regex.err;
    EXPECT_NE(bad_regex.err.find("node 'split', key 'routes.inc.regex': invalid regular expression"), std::string::npos)
        << bad_regex.err;
    auto unknown_output = validate("^inc", "split.incidents");
    EXPECT_NE(unknown_output.code, 0);
    EXPECT_NE(unknown_output.err.find("p.json:5:"), std::string::npos) << unknown_output.err;
    EXPECT_NE(unknown_output.err.find("node 'a', key 'inputs': input 'split.incidents': node 'split' has no output "
                                      "'incidents'; its outputs: inc, unmatched"),
              std::string::npos)
        << unknown_output.err;
    auto good = validate("^inc", "split.unmatched");
    EXPECT_EQ(good.code, 0) << good.err;
    fs::remove_all(dir);
}

}  // namespace
}  // namespace hubflow::route
