// The `dedupe` filter against a plain reference model on random streams (duplicates, near-duplicates,
// eviction order, window expiry), persistence across a restart, and configuration errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "dedupe_filter.h"
#include "hubflow/testing/fake_context.h"
#include "hubflow/testing/node_config.h"

namespace hubflow::dedupe {
namespace {

using namespace std::chrono_literals;

// What dedupe should do, written the obvious way: a list in recency order, searched linearly.
struct Model {
    std::size_t capacity;
    std::chrono::milliseconds max_age;
    std::vector<std::pair<std::string, std::chrono::system_clock::time_point>> entries;  // front = most recent

    bool duplicate(const std::string& key, std::chrono::system_clock::time_point now) {
        auto it = std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return e.first == key; });
        if (it != entries.end()) {
            if (max_age.count() == 0 || now - it->second < max_age) {
                auto entry = *it;
                entries.erase(it);
                entries.insert(entries.begin(), entry);
                return true;
            }
            entries.erase(it);
        }
        if (entries.size() >= capacity) entries.pop_back();
        entries.insert(entries.begin(), {key, now});
        return false;
    }
};

Event make(const std::string& id, const std::string& extra = "x") {
    Event e;
    e.meta.kind = "entry";
    e.meta.site_id = "S";
    e.payload = R"({"id":")" + id + R"(","extra":")" + extra + R"("})";
    return e;
}

struct Harness {
    testing::FakeContext context;
    DedupeFilter filter;
    explicit Harness(const std::string& json, std::filesystem::path data_dir = {}) : context("d", std::move(data_dir)) {
        Value config = testing::node_config(DedupeFilter::describe(), json);
        filter.configure(ConfigView(config), context);
        filter.start();
    }
    std::vector<std::string> ids() const {
        std::vector<std::string> out;
        auto it = context.emitted.find("");
        if (it == context.emitted.end()) return out;
        for (const auto& e : it->second)
            out.push_back(e.payload.substr(7, e.payload.find('"', 7) - 7));
        return out;
    }
};

TEST(Dedupe, MatchesTheReferenceModelOnRandomStreams) {
    for (int seed = 1; seed <= 40; ++seed) {
        std::mt19937 rng(static_cast<unsigned>(seed));
        const std::size_t capacity = 1 + rng() % 40;
        const auto max_age = std::chrono::milliseconds(seed % 2 ? 0 : 50 + rng() % 500);
        Harness h(R"({"cache_size": )" + std::to_string(capacity) + R"(, "max_age_s": )" +
                  std::to_string(max_age.count() / 1000.0) + "}");
        Model model{capacity, max_age, {}};
        std::vector<std::string> expected;
        for (int batch = 0; batch < 60; ++batch) {
            EventBatch events;
            const int n = 1 + static_cast<int>(rng() % 20);
            for (int i = 0; i < n; ++i) {
                // A small pool of ids makes duplicates common; extra text makes near-duplicates (same id).
                const std::string id = "id" + std::to_string(rng() % 60);
                events.push_back(make(id, std::to_string(rng() % 3)));
                if (!model.duplicate(id + "\x1f", h.context.clock_control().now())) expected.push_back(id);
            }
            h.filter.process(std::make_shared<const EventBatch>(std::move(events)));
            h.context.clock_control().advance(std::chrono::milliseconds(rng() % 60));
        }
        ASSERT_EQ(h.ids(), expected) << "seed " << seed << ", capacity " << capacity << ", max_age " << max_age.count();
    }
}

TEST(Dedupe, EvictsTheLeastRecentlySeenKey) {
    Harness h(R"({"cache_size": 2})");
    auto send = [&](std::vector<std::string> ids) {
        EventBatch b;
        for (auto& id : ids)
            b.push_back(make(id));
        h.filter.process(std::make_shared<const EventBatch>(std::move(b)));
    };
    send({"a", "b"});
    send({"a"});  // a is now more recent than b
    send({"c"});  // evicts b, not a
    send({"a", "b"});
    EXPECT_EQ(h.ids(), (std::vector<std::string>{"a", "b", "c", "b"}));
}

TEST(Dedupe, WindowCountsFromTheFirstSighting) {
    Harness h(R"({"max_age_s": 10})");
    auto send = [&](const std::string& id) {
        h.filter.process(std::make_shared<const EventBatch>(EventBatch{make(id)}));
    };
    send("a");
    h.context.clock_control().advance(6s);
    send("a");  // dropped, and does not extend the window
    h.context.clock_control().advance(5s);
    send("a");  // 11 s after the first: passes, a new window
    EXPECT_EQ(h.ids(), (std::vector<std::string>{"a", "a"}));
    EXPECT_EQ(h.context.metric_registry.counters.at("duplicates_dropped").value(), 1u);
}

TEST(Dedupe, IgnoreFieldsKeysOnEverythingElseInAnyOrder) {
    Harness h(R"({"ignore_fields": ["received", "meta.seq"]})");
    auto e = [](std::string payload) {
        Event ev;
        ev.meta.kind = "entry";
        ev.payload = std::move(payload);
        return ev;
    };
    h.filter.process(std::make_shared<const EventBatch>(EventBatch{
        e(R"({"id":"1","door":"A","received":"t1","meta":{"seq":1,"src":"x"}})"),
        e(R"({"meta":{"src":"x","seq":2},"received":"t2","door":"A","id":"1"})"),  // same but ignored fields
        e(R"({"id":"1","door":"B","received":"t3"})"),                             // differs: kept
    }));
    ASSERT_EQ(h.context.emitted[""].size(), 2u);
    EXPECT_NE(h.context.emitted[""][1].payload.find(R"("door":"B")"), std::string::npos);
}

TEST(Dedupe, EventsWithoutAnyKeyFieldPassAndAreCounted) {
    Harness h(R"({"fields": ["lock_id"]})");
    h.filter.process(std::make_shared<const EventBatch>(EventBatch{make("1"), make("1")}));
    EXPECT_EQ(h.context.emitted[""].size(), 2u);
    EXPECT_EQ(h.context.metric_registry.counters.at("keyless_passed").value(), 2u);
}

TEST(Dedupe, PersistedCacheLetsNoDuplicateThroughAfterARestart) {
    auto dir = std::filesystem::temp_directory_path() / ("hubflow-dedupe-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    {
        Harness first(R"({"persist": true})", dir);
        first.filter.process(std::make_shared<const EventBatch>(EventBatch{make("a"), make("b")}));
        first.filter.stop();
    }
    {
        Harness second(R"({"persist": true})", dir);
        second.filter.process(std::make_shared<const EventBatch>(EventBatch{make("a"), make("c"), make("b")}));
        EXPECT_EQ(second.ids(), (std::vector<std::string>{"c"}));
        second.filter.stop();
    }
    // A damaged file is reported and ignored: the node starts empty instead of failing.
    {
        std::ofstream(dir / "seen-keys.bin", std::ios::binary | std::ios::trunc) << "HFDEDUP1garbage";
        Harness third(R"({"persist": true})", dir);
        third.filter.process(std::make_shared<const EventBatch>(EventBatch{make("a")}));
        EXPECT_EQ(third.ids(), (std::vector<std::string>{"a"}));
        EXPECT_TRUE(third.context.logger.contains("ignoring the saved cache"));
    }
    std::filesystem::remove_all(dir);
}

std::string error_key(const std::string& json) {
    testing::FakeContext context("d");
    DedupeFilter filter;
    try {
        Value config = testing::node_config(DedupeFilter::describe(), json);
        filter.configure(ConfigView(config), context);
    } catch (const ConfigError& e) {
        return e.key();
    }
    return "";
}

TEST(Dedupe, ConfigErrorsNameTheKey) {
    EXPECT_EQ(error_key("{}"), "");
    EXPECT_EQ(error_key(R"({"fields": []})"), "fields");
    EXPECT_EQ(error_key(R"({"fields": ["a..b"]})"), "fields");
    EXPECT_EQ(error_key(R"({"fields": ["site_id"], "ignore_fields": ["x"]})"), "ignore_fields");
    EXPECT_EQ(error_key(R"({"ignore_fields": ["a..b"]})"), "ignore_fields");
    EXPECT_EQ(error_key(R"({"cache_size": 0})"), "cache_size");
    EXPECT_EQ(error_key(R"({"max_age_s": -1})"), "max_age_s");
}

}  // namespace
}  // namespace hubflow::dedupe
