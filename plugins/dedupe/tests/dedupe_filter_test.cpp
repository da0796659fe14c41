// The `dedupe` filter against a plain reference model on random streams (duplicates, near-duplicates,
// eviction order, window expiry), persistence across a restart, and configuration errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <list>
#include <optional>
#include <random>
#include <unordered_map>

#include <unistd.h>

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
    // A restart with persistence keeps everything but the keys whose window has passed.
    void restart(std::chrono::system_clock::time_point now) {
        if (max_age.count() == 0) return;
        std::erase_if(entries, [&](const auto& e) { return now - e.second >= max_age; });
    }
};

std::filesystem::path fresh_dir(const std::string& name) {
    auto dir = std::filesystem::temp_directory_path() / ("hubflow-dedupe-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

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
    // `wall`: the clock's time at start, so that a restarted node continues the previous one's time.
    explicit Harness(const std::string& json, std::filesystem::path data_dir = {},
                     std::optional<std::chrono::system_clock::time_point> wall = {})
        : context("d", std::move(data_dir)) {
        if (wall) context.clock_control().set_wall(*wall);
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
    // Every third stream persists and restarts the node at random points: the model carries on regardless.
    const auto dir = fresh_dir("model");
    for (int seed = 1; seed <= 60; ++seed) {
        std::mt19937 rng(static_cast<unsigned>(seed));
        const std::size_t capacity = 1 + rng() % 40;
        const auto max_age = std::chrono::milliseconds(seed % 2 ? 0 : 50 + rng() % 500);
        const bool persist = seed % 3 == 0;
        const std::string config = R"({"cache_size": )" + std::to_string(capacity) + R"(, "max_age_s": )" +
                                   std::to_string(max_age.count() / 1000.0) + R"(, "persist": )" +
                                   (persist ? "true" : "false") + "}";
        std::filesystem::remove(dir / "seen-keys.bin");
        auto h = std::make_unique<Harness>(config, dir);
        Model model{capacity, max_age, {}};
        std::vector<std::string> expected, got;
        int restarts = 0;
        for (int batch = 0; batch < 80; ++batch) {
            if (persist && rng() % 8 == 0) {
                const auto now = h->context.clock_control().now();
                h->filter.stop();
                auto ids = h->ids();
                got.insert(got.end(), ids.begin(), ids.end());
                h = std::make_unique<Harness>(config, dir, now);
                model.restart(now);
                ++restarts;
            }
            EventBatch events;
            const int n = 1 + static_cast<int>(rng() % 20);
            for (int i = 0; i < n; ++i) {
                // A small pool of ids makes duplicates common; extra text makes near-duplicates (same id).
                const std::string id = "id" + std::to_string(rng() % 60);
                events.push_back(make(id, std::to_string(rng() % 3)));
                if (!model.duplicate(id + "\x1f", h->context.clock_control().now())) expected.push_back(id);
            }
            h->filter.process(std::make_shared<const EventBatch>(std::move(events)));
            h->context.clock_control().advance(std::chrono::milliseconds(rng() % 60));
        }
        auto ids = h->ids();
        got.insert(got.end(), ids.begin(), ids.end());
        ASSERT_EQ(got, expected) << "seed " << seed << ", capacity " << capacity << ", max_age " << max_age.count()
                                 << ", restarts " << restarts;
        if (persist) {
            EXPECT_GT(restarts, 0) << "seed " << seed;
        }
    }
    std::filesystem::remove_all(dir);
}

// The cache itself, with enough keys and evictions to exercise the index's deletions, against the obvious
// list-and-map implementation; the recency order must agree at the end, not just the answers.
TEST(SeenCacheTest, AgreesWithAListAndAMapUnderHeavyEviction) {
    for (std::size_t capacity : {1u, 7u, 1000u, 4096u}) {
        std::mt19937_64 rng(capacity);
        SeenCache cache(capacity, {});
        std::list<std::uint64_t> order;  // front = most recent
        std::unordered_map<std::uint64_t, std::list<std::uint64_t>::iterator> where;
        const std::chrono::system_clock::time_point now{};
        for (int i = 0; i < 200'000; ++i) {
            // Keys from a pool three times the capacity; some share their low bits to lengthen probe runs.
            std::uint64_t key = rng() % (3 * capacity + 1);
            if (i % 5 == 0) key <<= 40;
            const bool expected = where.count(key) != 0;
            if (expected) {
                order.splice(order.begin(), order, where[key]);
            } else {
                if (order.size() == capacity) {
                    where.erase(order.back());
                    order.pop_back();
                }
                order.push_front(key);
                where[key] = order.begin();
            }
            ASSERT_EQ(cache.seen(key, now), expected) << "capacity " << capacity << ", step " << i;
        }
        EXPECT_EQ(cache.size(), order.size());
        EXPECT_EQ(cache.keys_oldest_first(), std::vector<std::uint64_t>(order.rbegin(), order.rend()));
        EXPECT_LE(cache.memory_bytes(), capacity * 24 + 16 * 4 + 4 * 4 * capacity) << capacity;
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
    const auto dir = fresh_dir("restart");
    {
        Harness first(R"({"persist": true})", dir);
        first.filter.process(std::make_shared<const EventBatch>(EventBatch{make("a"), make("b")}));
        first.filter.stop();
    }
    {
        Harness second(R"({"persist": true})", dir);
        EXPECT_TRUE(second.context.logger.contains("loaded 2 keys"));
        second.filter.process(std::make_shared<const EventBatch>(EventBatch{make("a"), make("c"), make("b")}));
        EXPECT_EQ(second.ids(), (std::vector<std::string>{"c"}));
        second.filter.stop();
    }
    // A smaller cache after the restart keeps the most recently seen keys.
    {
        Harness third(R"({"persist": true, "cache_size": 2})", dir);
        third.filter.process(std::make_shared<const EventBatch>(EventBatch{make("b"), make("c"), make("a")}));
        EXPECT_EQ(third.ids(), (std::vector<std::string>{"a"}));  // b and c were the two most recent
    }
    std::filesystem::remove_all(dir);
}

TEST(Dedupe, SavesPeriodicallyWhileRunningAndOnlyWhenChanged) {
    const auto dir = fresh_dir("periodic");
    Harness h(R"({"persist": true, "persist_interval_s": 5})", dir);
    h.filter.process(std::make_shared<const EventBatch>(EventBatch{make("a")}));
    EXPECT_FALSE(std::filesystem::exists(dir / "seen-keys.bin"));
    h.context.clock_control().advance(std::chrono::seconds(5));
    h.filter.process(std::make_shared<const EventBatch>(EventBatch{make("b")}));
    ASSERT_TRUE(std::filesystem::exists(dir / "seen-keys.bin"));
    // A node killed now (no stop) would come back knowing a and b.
    Harness after_crash(R"({"persist": true})", dir);
    after_crash.filter.process(std::make_shared<const EventBatch>(EventBatch{make("a"), make("b"), make("c")}));
    EXPECT_EQ(after_crash.ids(), (std::vector<std::string>{"c"}));
    // flush() writes what changed since the last save; stop() after it has nothing to write.
    std::filesystem::remove(dir / "seen-keys.bin");
    h.filter.flush();
    EXPECT_FALSE(std::filesystem::exists(dir / "seen-keys.bin")) << "nothing changed since the periodic save";
    h.filter.process(std::make_shared<const EventBatch>(EventBatch{make("c")}));
    h.filter.flush();
    EXPECT_TRUE(std::filesystem::exists(dir / "seen-keys.bin")) << "c was seen after the last save";
    std::filesystem::remove(dir / "seen-keys.bin");
    h.filter.stop();
    EXPECT_FALSE(std::filesystem::exists(dir / "seen-keys.bin")) << "nothing changed since the flush";
    std::filesystem::remove_all(dir);
}

TEST(Dedupe, KeysWhoseWindowPassedWhileStoppedAreForgotten) {
    const auto dir = fresh_dir("expiry");
    std::chrono::system_clock::time_point stopped_at;
    {
        Harness first(R"({"persist": true, "max_age_s": 60})", dir);
        first.filter.process(std::make_shared<const EventBatch>(EventBatch{make("old")}));
        first.context.clock_control().advance(std::chrono::seconds(30));
        first.filter.process(std::make_shared<const EventBatch>(EventBatch{make("new")}));
        stopped_at = first.context.clock_control().now();
        first.filter.stop();
    }
    Harness second(R"({"persist": true, "max_age_s": 60})", dir, stopped_at + std::chrono::seconds(45));
    second.filter.process(std::make_shared<const EventBatch>(EventBatch{make("old"), make("new")}));
    EXPECT_EQ(second.ids(), (std::vector<std::string>{"old"}));  // 75 s after its first sighting; new at 45 s
    std::filesystem::remove_all(dir);
}

// Each way a cache file can be damaged: the node warns, sets the file aside, starts empty and keeps working.
TEST(Dedupe, ADamagedCacheFileIsSetAsideAndTheNodeStartsEmpty) {
    const auto dir = fresh_dir("damaged");
    const auto file = dir / "seen-keys.bin";
    std::string good;
    {
        Harness h(R"({"persist": true})", dir);
        h.filter.process(std::make_shared<const EventBatch>(EventBatch{make("a"), make("b"), make("c")}));
        h.filter.stop();
        std::ifstream in(file, std::ios::binary);
        good.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    ASSERT_EQ(good.size(), 16u + 3 * 16 + 8);
    auto flipped = good;
    flipped[20] ^= 0x04;  // one bit of the first key
    auto huge_count = good;
    huge_count[15] = '\x7f';
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"HFDEDUP1garbage", "bad header"},
        {good.substr(0, good.size() - 5), "truncated"},
        {flipped, "checksum"},
        {huge_count, "entries announced"},
        {"", "bad header"},
    };
    for (const auto& [contents, problem] : cases) {
        std::filesystem::remove(dir / "seen-keys.bin.damaged");
        std::ofstream(file, std::ios::binary | std::ios::trunc) << contents;
        Harness h(R"({"persist": true})", dir);
        EXPECT_TRUE(h.context.logger.contains("ignoring the saved cache")) << problem;
        EXPECT_TRUE(h.context.logger.contains(problem)) << problem;
        EXPECT_TRUE(std::filesystem::exists(dir / "seen-keys.bin.damaged")) << problem;
        h.filter.process(std::make_shared<const EventBatch>(EventBatch{make("a"), make("a")}));
        EXPECT_EQ(h.ids(), (std::vector<std::string>{"a"})) << problem;
        h.filter.stop();
        // The next save is a good file again.
        Harness next(R"({"persist": true})", dir);
        EXPECT_FALSE(next.context.logger.contains("ignoring")) << problem;
        EXPECT_TRUE(next.context.logger.contains("loaded 1 keys")) << problem;
    }
    std::filesystem::remove_all(dir);
}

TEST(Dedupe, PartialBatchKeepsOrderAndMetadata) {
    Harness h("{}");
    EventBatch b{make("a"), make("b"), make("a"), make("c")};
    b[3].meta.user_id = "U7";
    h.filter.process(std::make_shared<const EventBatch>(std::move(b)));
    EXPECT_EQ(h.ids(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(h.context.emitted[""][2].meta.user_id, "U7");
    EXPECT_EQ(h.context.metric_registry.gauges.at("cached_keys").value(), 3);
    EXPECT_GT(h.context.metric_registry.gauges.at("cache_bytes").value(), 0);
}

TEST(Dedupe, MetadataFieldsMakeTheKey) {
    // site_id is metadata here; the same id at two sites is two events.
    Harness h(R"({"fields": ["site_id", "id"]})");
    auto at = [](std::string site, std::string id) {
        Event e = make(id);
        e.meta.site_id = std::move(site);
        return e;
    };
    h.filter.process(std::make_shared<const EventBatch>(EventBatch{at("S1", "a"), at("S2", "a"), at("S1", "a")}));
    EXPECT_EQ(h.ids(), (std::vector<std::string>{"a", "a"}));
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
