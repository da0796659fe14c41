#include "generator_source.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "hubflow/json.h"
#include "hubflow/testing/fake_context.h"
#include "hubflow/testing/node_config.h"

namespace hubflow::generator {
namespace {

using namespace std::chrono_literals;
using hubflow::testing::FakeContext;

// Remembers each batch's size and the (manual) monotonic time it was emitted at; can ask the source to stop
// after a number of batches.
class RecordingContext : public FakeContext {
public:
    using FakeContext::emit;
    RecordingContext() : FakeContext("gen") {}
    void emit(SharedBatch batch, std::string_view output = {}) override {
        batches.emplace_back(batch->size(), clock().monotonic());
        FakeContext::emit(std::move(batch), output);
        if (stop_after_batches && batches.size() >= stop_after_batches) stop_requested = true;
    }
    bool wait_for(std::chrono::nanoseconds d) override {
        ++waits;
        if (refuse_wait_after && waits > refuse_wait_after) return false;
        return FakeContext::wait_for(d);
    }
    const std::vector<Event>& events() { return emitted[""]; }

    std::vector<std::pair<std::size_t, std::chrono::steady_clock::time_point>> batches;
    std::size_t stop_after_batches = 0;
    std::size_t refuse_wait_after = 0;
    std::size_t waits = 0;
};

void configure(GeneratorSource& source, Value& config, Context& context, const std::string& json) {
    config = testing::node_config(GeneratorSource::describe(), json);
    source.configure(ConfigView(config), context);
}

std::vector<Event> run(const std::string& json, RecordingContext& context) {
    Value config;
    GeneratorSource source;
    configure(source, config, context, json);
    source.start();
    source.run();
    return context.events();
}

std::vector<Event> run(const std::string& json) {
    RecordingContext context;
    return run(json, context);
}

std::string config_error_key(const std::string& json) {
    FakeContext context("gen");
    Value config;
    GeneratorSource source;
    try {
        configure(source, config, context, json);
    } catch (const ConfigError& e) {
        return e.key();
    }
    return "(no error)";
}

TEST(GeneratorSource, DescribesItsKeys) {
    auto d = GeneratorSource::describe();
    EXPECT_EQ(d.type, "generator");
    EXPECT_EQ(d.kind, ComponentKind::source);
    std::vector<std::string> keys;
    for (const auto& f : d.fields) {
        keys.push_back(f.name);
        EXPECT_FALSE(f.doc.empty()) << f.name;
        EXPECT_FALSE(f.default_json.empty()) << f.name;
    }
    EXPECT_EQ(keys,
              (std::vector<std::string>{"count", "rate", "sites", "site_count", "users_per_site", "locks_per_site",
                                        "incident_ratio", "duplicate_ratio", "seed", "batch_size", "start_time"}));
}

TEST(GeneratorSource, HonoursCountExactly) {
    RecordingContext context;
    auto events = run(R"({"count": 1234, "batch_size": 100, "seed": 1})", context);
    EXPECT_EQ(events.size(), 1234u);
    ASSERT_EQ(context.batches.size(), 13u);
    EXPECT_EQ(context.batches.back().first, 34u);
    EXPECT_EQ(run(R"({"count": 1, "seed": 1})").size(), 1u);
}

TEST(GeneratorSource, SameSeedAndStartTimeRepeatByteForByte) {
    const std::string json = R"({"count": 3000, "seed": 77, "start_time": "2026-08-19T12:50:38Z",
                                 "duplicate_ratio": 0.05})";
    auto a = run(json);
    auto b = run(json);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i)
        ASSERT_EQ(a[i].payload, b[i].payload) << i;

    auto c = run(R"({"count": 3000, "seed": 78, "start_time": "2026-08-19T12:50:38Z", "duplicate_ratio": 0.05})");
    std::size_t same = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        same += a[i].payload == c[i].payload;
    EXPECT_EQ(same, 0u);
}

TEST(GeneratorSource, ChosenSeedAndStartAreLoggedAndRepeatTheRun) {
    RecordingContext first;
    auto a = run(R"({"count": 200})", first);
    std::string line;
    for (const auto& [level, text] : first.logger.lines)
        if (level == LogLevel::info && text.find("seed ") != std::string::npos) line = text;
    ASSERT_FALSE(line.empty());
    // "seed N, start_time T; ..."
    const auto seed = line.substr(5, line.find(',') - 5);
    const auto at = line.find("start_time ") + 11;
    const auto start = line.substr(at, line.find(';') - at);
    EXPECT_NE(seed, "0");
    EXPECT_EQ(start, format_utc(first.clock().now()));

    auto b = run(R"({"count": 200, "seed": )" + seed + R"(, "start_time": ")" + start + R"("})");
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i)
        ASSERT_EQ(a[i].payload, b[i].payload) << i;
}

TEST(GeneratorSource, FixedSeedAndStartLogNothing) {
    RecordingContext context;
    run(R"({"count": 5, "seed": 3, "start_time": "2026-01-01T00:00:00Z"})", context);
    EXPECT_FALSE(context.logger.contains("seed"));
}

TEST(GeneratorSource, SiteIdsComeFromSites) {
    auto events = run(R"({"count": 2000, "seed": 2, "sites": ["north", "south \"annex\"", "east"]})");
    std::set<std::string> seen;
    for (const auto& e : events) {
        seen.insert(e.meta.site_id);
        EXPECT_TRUE(e.meta.kind == "entry" || e.meta.kind == "incident");
        EXPECT_EQ(e.meta.id.size(), 36u);
        ASSERT_EQ(FieldPath("payload.id").get(e), e.meta.id);
    }
    EXPECT_EQ(seen, (std::set<std::string>{"north", "south \"annex\"", "east"}));
}

TEST(GeneratorSource, InventsSiteCountSites) {
    auto events = run(R"({"count": 3000, "seed": 2, "site_count": 5})");
    std::set<std::string> seen;
    for (const auto& e : events)
        seen.insert(e.meta.site_id);
    EXPECT_EQ(seen.size(), 5u);
    for (const auto& s : seen)
        EXPECT_EQ(s.size(), 36u);
}

TEST(GeneratorSource, CountsItsEventsInMetrics) {
    RecordingContext context;
    auto events = run(R"({"count": 20000, "seed": 5, "duplicate_ratio": 0.1, "incident_ratio": 0.1})", context);
    auto& counters = context.metric_registry.counters;
    const auto duplicates = counters["duplicates_emitted"].value();
    EXPECT_EQ(counters["entries_generated"].value() + counters["incidents_generated"].value() + duplicates, 20000u);
    std::set<std::string> ids;
    std::uint64_t repeats = 0;
    for (const auto& e : events)
        repeats += !ids.insert(e.meta.id).second;
    EXPECT_EQ(duplicates, repeats);
    EXPECT_NEAR(static_cast<double>(duplicates), 2000, 5 * std::sqrt(20000 * 0.1 * 0.9));
}

TEST(GeneratorSource, StoppingEndsRun) {
    RecordingContext context;
    context.stop_after_batches = 3;
    auto events = run(R"({"seed": 1, "batch_size": 50})", context);  // count 0: would go on forever
    EXPECT_EQ(events.size(), 150u);

    RecordingContext paced;
    paced.refuse_wait_after = 4;  // shutdown arrives while the source sleeps
    auto some = run(R"({"seed": 1, "rate": 10})", paced);
    EXPECT_EQ(some.size(), 5u);  // the first event is due at once, then four waits succeed

    RecordingContext stopped;
    stopped.stop_requested = true;
    EXPECT_TRUE(run(R"({"seed": 1})", stopped).empty());
}

TEST(GeneratorSource, LowRatesEmitSmallBatchesWhenDue) {
    RecordingContext context;
    const auto t0 = context.clock().monotonic();
    auto events = run(R"({"count": 25, "rate": 10, "seed": 1, "start_time": "2026-08-19T12:50:38Z"})", context);
    ASSERT_EQ(events.size(), 25u);
    ASSERT_EQ(context.batches.size(), 25u);
    for (std::size_t i = 0; i < context.batches.size(); ++i) {
        EXPECT_EQ(context.batches[i].first, 1u);
        const auto due = t0 + std::chrono::milliseconds(100 * i);
        EXPECT_GE(context.batches[i].second, due) << i;
        EXPECT_LT(context.batches[i].second, due + 1ms) << i;
    }
    // Event i is stamped start + i/rate.
    EXPECT_EQ(FieldPath("utc_date_time").get(events[9]), "2026-08-19T12:50:38Z");
    EXPECT_EQ(FieldPath("utc_date_time").get(events[10]), "2026-08-19T12:50:39Z");
    EXPECT_EQ(FieldPath("utc_date_time").get(events[24]), "2026-08-19T12:50:40Z");
}

TEST(GeneratorSource, BatchSizeFollowsTheRate) {
    auto batch_for = [](const std::string& json) {
        FakeContext context("gen");
        Value config;
        GeneratorSource source;
        configure(source, config, context, json);
        return source.effective_batch_size();
    };
    EXPECT_EQ(batch_for(R"({})"), 512);
    EXPECT_EQ(batch_for(R"({"rate": 0.5})"), 1);
    EXPECT_EQ(batch_for(R"({"rate": 10})"), 1);
    EXPECT_EQ(batch_for(R"({"rate": 5000})"), 50);
    EXPECT_EQ(batch_for(R"({"rate": 1000000})"), 512);
    EXPECT_EQ(batch_for(R"({"rate": 1000000, "batch_size": 2000})"), 2000);
}

TEST(GeneratorSource, HighRatePacingKeepsTheAverage) {
    RecordingContext context;
    const auto t0 = context.clock().monotonic();
    auto events = run(R"({"count": 100000, "rate": 50000, "seed": 1})", context);
    ASSERT_EQ(events.size(), 100000u);
    // The last event is due at (n - 1) / rate.
    const auto elapsed = context.batches.back().second - t0;
    EXPECT_NEAR(std::chrono::duration<double>(elapsed).count(), 99999.0 / 50000, 1e-3);
}

TEST(GeneratorSource, ConfigErrorsNameTheKey) {
    EXPECT_EQ(config_error_key(R"({"incident_ratio": 1.5})"), "incident_ratio");
    EXPECT_EQ(config_error_key(R"({"duplicate_ratio": -0.1})"), "duplicate_ratio");
    EXPECT_EQ(config_error_key(R"({"rate": -1})"), "rate");
    EXPECT_EQ(config_error_key(R"({"count": -1})"), "count");
    EXPECT_EQ(config_error_key(R"({"start_time": "yesterday"})"), "start_time");
    EXPECT_EQ(config_error_key(R"({"start_time": "2026-02-30T00:00:00Z"})"), "start_time");
    EXPECT_EQ(config_error_key(R"({"sites": ["a", "a"]})"), "sites");
    EXPECT_EQ(config_error_key(R"({"sites": [""]})"), "sites");
    EXPECT_EQ(config_error_key(R"({"site_count": 0})"), "site_count");
    EXPECT_EQ(config_error_key(R"({"batch_size": 0})"), "batch_size");
    EXPECT_EQ(config_error_key(R"({"seed": -4})"), "seed");
    EXPECT_EQ(config_error_key(R"({"site_count": 1000, "users_per_site": 100000})"), "users_per_site");
    EXPECT_EQ(config_error_key(R"({"seed": 12, "rate": 2.5, "start_time": "2026-08-19T12:50:38+02:00"})"),
              "(no error)");
}

TEST(GeneratorSource, ConfigErrorMessagesAreReadable) {
    FakeContext context("gen");
    Value config;
    GeneratorSource source;
    try {
        configure(source, config, context, R"({"incident_ratio": 1.2})");
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_EQ(e.detail(), "must be between 0 and 1, found 1.2");
    }
}

}  // namespace
}  // namespace hubflow::generator
