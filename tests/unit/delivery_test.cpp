// Delivery acknowledgements through the real runtime: which batches end finished or lost, and when, across
// fan-out, filters that build new batches, sinks of both SDK generations, failures and drops.

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "config/pipeline.h"
#include "fake_components.h"
#include "hubflow/version.h"
#include "plugins/plugin_loader.h"
#include "runtime/runtime.h"

using namespace hubflow;
using namespace hubflow::core;
using namespace hubflow::testing_core;
using namespace std::chrono_literals;

namespace {

// What the tracked sources heard, by batch number.
struct Outcomes {
    std::mutex mutex;
    std::condition_variable changed;
    std::map<std::uint64_t, BatchOutcome> ended;
    std::uint64_t repeats = 0;  // a batch reported twice: always a bug

    void add(std::uint64_t n, BatchOutcome o) {
        {
            std::lock_guard lock(mutex);
            if (!ended.emplace(n, o).second) ++repeats;
        }
        changed.notify_all();
    }
    std::size_t count(BatchOutcome o) {
        std::lock_guard lock(mutex);
        std::size_t c = 0;
        for (auto& [n, v] : ended)
            c += v == o;
        return c;
    }
    std::size_t size() {
        std::lock_guard lock(mutex);
        return ended.size();
    }
    bool wait_size(std::size_t n, std::chrono::milliseconds timeout = 10s) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, timeout, [&] { return ended.size() >= n; });
    }
};
Outcomes* outcomes = nullptr;

class TrackedSource final : public Source, private DeliveryListener {
public:
    static ComponentDescription describe() {
        return {"tracked",
                ComponentKind::source,
                "emits `batches` batches of `batch` events and records how each ended",
                {{.name = "batches", .type = FieldType::integer, .default_json = "10", .doc = "batches"},
                 {.name = "batch", .type = FieldType::integer, .default_json = "3", .doc = "events per batch"},
                 {.name = "output", .type = FieldType::string, .default_json = R"("")", .doc = "unused"}}};
    }
    void configure(const ConfigView& c, Context& ctx) override {
        ctx_ = &ctx;
        batches_ = c.integer_in("batches", 0, 1'000'000);
        batch_ = c.integer_in("batch", 1, 10'000);
        tracking = ctx.track_deliveries(*this);
    }
    void run() override {
        for (std::int64_t b = 0; b < batches_; ++b) {
            EventBatch batch;
            for (std::int64_t i = 0; i < batch_; ++i) {
                Event e;
                e.payload = "{\"b\":" + std::to_string(b) + ",\"i\":" + std::to_string(i) + "}";
                e.meta.kind = i % 2 ? "incident" : "entry";
                e.meta.id = std::to_string(b) + "." + std::to_string(i);
                batch.push_back(std::move(e));
            }
            ctx_->emit(std::move(batch));
            ctx_->emit(EventBatch{});  // empty: no number, no report
        }
    }
    static inline bool tracking = false;

private:
    void batch_ended(std::uint64_t number, BatchOutcome outcome) override { outcomes->add(number, outcome); }
    Context* ctx_ = nullptr;
    std::int64_t batches_ = 0, batch_ = 1;
};

// An SDK 1.2 sink. mode "now" settles in deliver(); "hold" keeps the acks for the test to settle;
// "refuse" refuses everything; "lose" says lost; "split" settles each event on its own from another thread.
class AckSink final : public AcknowledgingSink {
public:
    static ComponentDescription describe() {
        return {"acking",
                ComponentKind::sink,
                "settles as told",
                {{.name = "mode", .type = FieldType::string, .default_json = R"("now")", .doc = "how to settle"}}};
    }
    void configure(const ConfigView& c, Context&) override { mode_ = c.string("mode"); }
    void deliver(const EventBatch& batch, BatchAck ack) override {
        if (mode_ == "now") {
            ack.delivered(batch.size());
        } else if (mode_ == "refuse") {
            ack.refused(batch.size());
        } else if (mode_ == "lose") {
            ack.lost(batch.size());
        } else if (mode_ == "split") {
            std::size_t n = batch.size();
            std::thread([ack, n] {
                for (std::size_t i = 0; i < n; ++i)
                    ack.delivered(1);
            }).join();
        } else {
            std::lock_guard lock(held_mutex);
            held.emplace_back(ack, batch.size());
        }
    }
    static void lose_held() {
        std::lock_guard lock(held_mutex);
        for (auto& [ack, n] : held)
            ack.lost(n);
        held.clear();
    }
    static void settle_held() {
        std::lock_guard lock(held_mutex);
        for (auto& [ack, n] : held)
            ack.delivered(n);
        held.clear();
    }
    static inline std::mutex held_mutex;
    static inline std::vector<std::pair<BatchAck, std::size_t>> held;

private:
    std::string mode_;
};

// Drops every event on purpose.
class DropFilter final : public Filter {
public:
    static ComponentDescription describe() { return {"drop_all", ComponentKind::filter, "drops everything", {}}; }
    void configure(const ConfigView&, Context&) override {}
    void process(const SharedBatch&) override {}
};

// Keeps the entries and sends that one new batch to both outputs: the incidents are dropped on purpose.
class KeepEntriesFilter final : public Filter {
public:
    static ComponentDescription describe() {
        return {"keep_entries", ComponentKind::filter, "entries to outputs a and b", {}};
    }
    void configure(const ConfigView&, Context& ctx) override { ctx_ = &ctx; }
    std::vector<std::string> outputs() const override { return {"a", "b"}; }
    void process(const SharedBatch& batch) override {
        auto entries = std::make_shared<EventBatch>();
        for (const auto& e : *batch)
            if (e.meta.kind == "entry") entries->push_back(e);
        SharedBatch shared = std::move(entries);
        ctx_->emit(shared, "a");
        ctx_->emit(shared, "b");
    }

private:
    Context* ctx_ = nullptr;
};

// Emits two copies of each batch on the default output.
class TwiceFilter final : public Filter {
public:
    static ComponentDescription describe() { return {"twice", ComponentKind::filter, "every event twice", {}}; }
    void configure(const ConfigView&, Context& ctx) override { ctx_ = &ctx; }
    void process(const SharedBatch& batch) override {
        ctx_->emit(EventBatch(*batch));
        ctx_->emit(EventBatch(*batch));
    }

private:
    Context* ctx_ = nullptr;
};

class DeliveryTest : public ::testing::Test {
protected:
    void SetUp() override {
        recorder = &rec;
        outcomes = &ends;
        registry.add_builtin<TrackedSource>();
        registry.add_builtin<AckSink>();
        registry.add_builtin<DropFilter>();
        registry.add_builtin<SplitFilter>();
        registry.add_builtin<PassFilter>();
        registry.add_builtin<StoreSink>();
        registry.add_builtin<KeepEntriesFilter>();
        registry.add_builtin<TwiceFilter>();
        StoreSink::released = true;
        AckSink::held.clear();
    }
    void TearDown() override {
        recorder = nullptr;
        outcomes = nullptr;
        EXPECT_EQ(ends.repeats, 0u) << "a batch was reported twice";
    }
    PipelineSpec load(const std::string& text) { return valid_pipeline(text, registry); }
    Recorder rec;
    Outcomes ends;
    ComponentRegistry registry;
    std::ostringstream log_text;
    LogSink log{log_text, LogLevel::debug};
};

std::int64_t metric(const Runtime& rt, const std::string& node, const std::string& name) {
    for (const auto& s : rt.metrics(node)->snapshot())
        if (s.name == name) return s.value;
    return -1;
}

}  // namespace

TEST_F(DeliveryTest, APlainSinkFinishesABatchWhenWriteReturns) {
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "tracked", "batches": 50}},
        "sinks": {"out": {"type": "store", "inputs": ["in"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    EXPECT_TRUE(rt.run().ok());
    ASSERT_TRUE(TrackedSource::tracking);
    ASSERT_TRUE(ends.wait_size(50));
    EXPECT_EQ(ends.count(BatchOutcome::finished), 50u);
    EXPECT_EQ(ends.ended.begin()->first, 1u);
    EXPECT_EQ(ends.ended.rbegin()->first, 50u);  // empty emits took no number
}

TEST_F(DeliveryTest, FanOutEndsOnlyWhenEverySinkHasSettled) {
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "tracked", "batches": 20}},
        "sinks": {"plain": {"type": "store", "inputs": ["in"]},
                  "later": {"type": "acking", "mode": "hold", "inputs": ["in"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    EXPECT_TRUE(rt.run().ok());
    ASSERT_EQ(rec.count("plain"), 60u);
    EXPECT_EQ(ends.size(), 0u) << "a batch ended while a sink still held it";
    AckSink::settle_held();
    ASSERT_TRUE(ends.wait_size(20));
    EXPECT_EQ(ends.count(BatchOutcome::finished), 20u);
}

TEST_F(DeliveryTest, FiltersThatBuildNewBatchesOrDropCarryTheJourneyOn) {
    // split makes two new batches per input (entries, incidents), each read by another sink; pass forwards
    // the same batch; drop_all finishes on purpose.
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "tracked", "batches": 30, "batch": 5}},
        "filters": {"split": {"type": "split", "inputs": ["in"]},
                    "pass": {"type": "pass", "inputs": ["split.incidents"]},
                    "drop": {"type": "drop_all", "inputs": ["in"]}},
        "sinks": {"entries": {"type": "acking", "mode": "hold", "inputs": ["split.entries"]},
                  "incidents": {"type": "acking", "mode": "split", "inputs": ["pass"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    EXPECT_TRUE(rt.run().ok());
    EXPECT_EQ(ends.size(), 0u) << "the entries sink holds a copy of every batch";
    AckSink::settle_held();
    ASSERT_TRUE(ends.wait_size(30));
    EXPECT_EQ(ends.count(BatchOutcome::finished), 30u);
}

TEST_F(DeliveryTest, RefusedForGoodIsFinishedAndLostIsLost) {
    PipelineSpec spec = load(R"({"sources": {"a": {"type": "tracked", "batches": 5}, "b": {"type": "tracked",
        "batches": 5}}, "sinks": {"refuse": {"type": "acking", "mode": "refuse", "inputs": ["a"]},
                                  "lose": {"type": "acking", "mode": "lose", "inputs": ["b"]}}})");
    // Both sources share the outcome map, so count by outcome: a's five finished, b's five lost.
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    EXPECT_TRUE(rt.run().ok());
    ASSERT_TRUE(ends.wait_size(5));
    // Numbers collide across the two sources; repeats counts the collisions instead.
    std::lock_guard lock(ends.mutex);
    EXPECT_EQ(ends.ended.size() + ends.repeats, 10u);
    ends.repeats = 0;
    EXPECT_EQ(metric(rt, "b", "lost_batches"), 5);
    EXPECT_EQ(metric(rt, "a", "lost_batches"), 0);
}

TEST_F(DeliveryTest, AWriteThatThrowsLosesItsBatchOnly) {
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "tracked", "batches": 10, "batch": 2}},
        "sinks": {"out": {"type": "store", "throw_on": "\"b\":3,", "inputs": ["in"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    rt.run();
    ASSERT_TRUE(ends.wait_size(10));
    EXPECT_EQ(ends.ended.at(4), BatchOutcome::lost);  // batch b=3 is number 4
    EXPECT_EQ(ends.count(BatchOutcome::lost), 1u);
    EXPECT_EQ(ends.count(BatchOutcome::finished), 9u);
}

TEST_F(DeliveryTest, AFailedSinkLosesWhatItHeldAndEverythingAfter) {
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "tracked", "batches": 10, "batch": 2}},
        "sinks": {"out": {"type": "store", "fail_on": "\"b\":6,", "inputs": ["in"]},
                  "other": {"type": "store", "inputs": ["in"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    rt.run();
    ASSERT_TRUE(ends.wait_size(10));
    EXPECT_EQ(ends.count(BatchOutcome::finished), 6u);
    EXPECT_EQ(ends.count(BatchOutcome::lost), 4u);
    EXPECT_EQ(rec.count("other"), 20u) << "the healthy sink still gets everything";
}

TEST_F(DeliveryTest, AnOutputNobodyReadsFinishesAtOnce) {
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "tracked", "batches": 4}},
        "filters": {"split": {"type": "split", "inputs": ["in"]}},
        "sinks": {"entries": {"type": "store", "inputs": ["split.entries"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    EXPECT_TRUE(rt.run().ok());
    ASSERT_TRUE(ends.wait_size(4));
    EXPECT_EQ(ends.count(BatchOutcome::finished), 4u);
}

TEST_F(DeliveryTest, UnsettledBatchesAtShutdownAreNeverReportedFinished) {
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "tracked", "batches": 3}},
        "sinks": {"out": {"type": "acking", "mode": "hold", "inputs": ["in"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    EXPECT_TRUE(rt.run().ok());  // every node has flushed and stopped
    EXPECT_EQ(ends.size(), 0u);
    AckSink::settle_held();  // a late delivery report still counts while the runtime exists
    ASSERT_TRUE(ends.wait_size(3));
}

// ---- Disk buffers in the runtime: a point of responsibility.

class DiskBufferNodeTest : public DeliveryTest {
protected:
    void SetUp() override {
        DeliveryTest::SetUp();
        dir =
            std::filesystem::temp_directory_path() / ("hubflow-disk-node-" + std::to_string(::getpid()) + "-" +
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir);
    }
    void TearDown() override {
        DeliveryTest::TearDown();
        std::filesystem::remove_all(dir);
    }
    std::string pipeline(int batches, const std::string& sink, const std::string& extra = "") {
        return R"({"data_dir": ")" + dir.string() + R"(", "sources": {"in": {"type": "tracked", "batches": )" +
               std::to_string(batches) + R"(}}, "sinks": {"out": {"type": ")" + sink +
               R"(", "inputs": ["in"], "buffer": {"type": "disk", "max_bytes": 1048576}}, )" + extra +
               R"("spare": {"type": "store", "inputs": ["in"]}}})";
    }
    std::filesystem::path dir;
};

TEST_F(DiskBufferNodeTest, UpstreamFinishesOnceSyncedAndWhatWasNotDeliveredComesBackAfterARestart) {
    {
        PipelineSpec spec = load(pipeline(20, "acking\", \"mode\": \"hold"));
        Runtime rt(spec, registry, log);
        ASSERT_TRUE(rt.build());
        EXPECT_TRUE(rt.run().ok());
        // The sink holds every event, yet the source's batches are finished: the buffer answers for them.
        ASSERT_TRUE(ends.wait_size(20));
        EXPECT_EQ(ends.count(BatchOutcome::finished), 20u);
        ASSERT_FALSE(AckSink::held.empty());
        AckSink::lose_held();  // the sink gives up: the buffer keeps them for the next start
        EXPECT_TRUE(log_text.str().find("stay in the buffer") != std::string::npos) << log_text.str();
    }
    rec.received.clear();
    {
        PipelineSpec spec = load(pipeline(0, "store"));
        Runtime rt(spec, registry, log);
        ASSERT_TRUE(rt.build());
        EXPECT_TRUE(rt.run().ok());
        ASSERT_EQ(rec.count("out"), 60u) << "the backlog of the first run";
        EXPECT_EQ(rec.received["out"].front().meta.id, "0.0");
        EXPECT_EQ(rec.received["out"].back().meta.id, "19.2");
        EXPECT_EQ(rec.received["out"].front().meta.source, "in") << "metadata survives the disk";
    }
    rec.received.clear();
    ends.ended.clear();  // batch numbers start again in a new run
    {
        PipelineSpec spec = load(pipeline(1, "store"));
        Runtime rt(spec, registry, log);
        ASSERT_TRUE(rt.build());
        EXPECT_TRUE(rt.run().ok());
        EXPECT_EQ(rec.count("out"), 3u) << "delivered events are released, never handed out again";
    }
}

TEST_F(DiskBufferNodeTest, DropNewestDropsWhatDoesNotFitOnDiskAndCountsIt) {
    // The sink holds everything, so nothing is released and the small buffer fills; then batches are dropped
    // (finished for the source, by the node's own policy), counted, and the run never blocks.
    const std::string text = R"({"data_dir": ")" + dir.string() +
                             R"(", "sources": {"in": {"type": "tracked", "batches": 10000}},
        "sinks": {"out": {"type": "acking", "mode": "hold", "inputs": ["in"],
                          "buffer": {"type": "disk", "max_bytes": 1048576, "when_full": "drop_newest"}}}})";
    PipelineSpec spec = load(text);
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    EXPECT_TRUE(rt.run().ok());
    ASSERT_TRUE(ends.wait_size(10000));
    EXPECT_EQ(ends.count(BatchOutcome::finished), 10000u);
    std::size_t held = 0;
    {
        std::lock_guard lock(AckSink::held_mutex);
        for (const auto& h : AckSink::held)
            held += h.second;
    }
    const auto* m = rt.metrics("out");
    ASSERT_NE(m, nullptr);
    EXPECT_GT(held, 0u);
    EXPECT_GT(m->input_discarded_full.value(), 0u) << "a 1 MiB buffer cannot hold 30,000 events";
    EXPECT_EQ(held + m->input_discarded_full.value(), 30000u) << "every event was either kept or dropped and counted";
    AckSink::lose_held();
}

TEST_F(DiskBufferNodeTest, ABufferThatCannotBeOpenedFailsItsNodeOnlyAndNamesThePath) {
    std::filesystem::create_directories(dir / "out");
    std::ofstream(dir / "out" / "buffer") << "a file where the buffer's directory should be";
    PipelineSpec spec = load(pipeline(5, "store"));
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    RunResult r = rt.run();
    EXPECT_EQ(r.failed_nodes, std::vector<std::string>{"out"});
    EXPECT_EQ(rec.count("spare"), 15u) << "the other sink keeps running";
    EXPECT_NE(log_text.str().find((dir / "out" / "buffer").string()), std::string::npos) << log_text.str();
    ASSERT_TRUE(ends.wait_size(5));
    EXPECT_EQ(ends.count(BatchOutcome::lost), 5u) << "nothing reached the failed node's buffer";
}

TEST_F(DiskBufferNodeTest, ConfigErrorsNameTheKey) {
    for (const auto& [buffer, key] : std::vector<std::pair<std::string, std::string>>{
             {R"({"type": "tape"})", "buffer.type"},
             {R"({"max_bytes": 1048576})", "buffer"},
             {R"({"type": "disk", "max_bytes": 1000})", "buffer.max_bytes"},
             {R"({"type": "disk", "fsync": "sometimes"})", "buffer.fsync"},
             {R"({"type": "disk", "fsync_interval_ms": 10})", "buffer.fsync_interval_ms"}}) {
        Diagnostics diags("test.json");
        auto doc = parse_pipeline_text(R"({"sources": {"in": {"type": "tracked"}}, "sinks": {"out": {"type":
            "store", "inputs": ["in"], "buffer": )" +
                                           buffer + "}}}",
                                       [](const std::string&) { return std::nullopt; }, diags);
        ASSERT_TRUE(doc.has_value());
        validate_pipeline(*doc, registry, diags);
        EXPECT_NE(diags.to_string().find("node 'out', key '" + key + "'"), std::string::npos)
            << buffer << " -> " << diags.to_string();
    }
}

// ---- A plugin built for SDK 1.1 (tests/plugins/sdk_1_1) keeps loading and gets the 1.1 promise: delivered
// when write() returns, also behind a disk buffer.

TEST_F(DiskBufferNodeTest, APluginBuiltForSdk11LoadsAndDeliversWhenWriteReturns) {
    const std::filesystem::path legacy_dir = HUBFLOW_TEST_LEGACY_DIR;
    auto marker = read_abi_marker(legacy_dir / "legacy_sdk_1_1.so");
    ASSERT_TRUE(marker.has_value());
    EXPECT_EQ(marker->major, 1);
    EXPECT_EQ(marker->minor, 1);
    PluginLoader loader(registry);
    loader.load_directory(legacy_dir);
    ASSERT_TRUE(loader.refusals().empty()) << loader.refusals().front().reason;
    ASSERT_NE(registry.find("legacy_lines"), nullptr);

    std::filesystem::create_directories(dir);
    const auto lines = dir / "lines.txt";
    for (const std::string buffer : {"", R"(, "buffer": {"type": "disk", "max_bytes": 1048576})"}) {
        std::filesystem::remove(lines);
        ends.ended.clear();
        PipelineSpec spec = load(R"({"data_dir": ")" + dir.string() +
                                 R"(", "sources": {"in": {"type": "tracked", "batches": 10}},
            "sinks": {"old": {"type": "legacy_lines", "path": ")" +
                                 lines.string() + R"(", "inputs": ["in"])" + buffer + "}}}");
        Runtime rt(spec, registry, log);
        ASSERT_TRUE(rt.build());
        EXPECT_TRUE(rt.run().ok());
        ASSERT_TRUE(ends.wait_size(10)) << buffer;
        EXPECT_EQ(ends.count(BatchOutcome::finished), 10u) << buffer;
        std::ifstream in(lines);
        std::size_t n = 0;
        for (std::string line; std::getline(in, line);)
            ++n;
        EXPECT_EQ(n, 30u) << buffer;
    }
}

TEST_F(DiskBufferNodeTest, APluginBuiltForSdk12LoadsAndItsAcknowledgementsCount) {
    const std::filesystem::path legacy_dir = HUBFLOW_TEST_LEGACY_DIR;
    auto marker = read_abi_marker(legacy_dir / "legacy_sdk_1_2.so");
    ASSERT_TRUE(marker.has_value());
    EXPECT_EQ(marker->major, 1);
    EXPECT_EQ(marker->minor, 2);
    EXPECT_LT(marker->minor, HUBFLOW_SDK_VERSION_MINOR) << "built for the previous minor";
    PluginLoader loader(registry);
    loader.load_directory(legacy_dir);
    ASSERT_TRUE(loader.refusals().empty()) << loader.refusals().front().reason;
    ASSERT_NE(registry.find("legacy_acking"), nullptr);

    std::filesystem::create_directories(dir);
    const auto lines = dir / "lines.txt";
    for (const std::string buffer : {"", R"(, "buffer": {"type": "disk", "max_bytes": 1048576})"}) {
        std::filesystem::remove(lines);
        ends.ended.clear();
        PipelineSpec spec = load(R"({"data_dir": ")" + dir.string() +
                                 R"(", "sources": {"in": {"type": "tracked", "batches": 10}},
            "sinks": {"old": {"type": "legacy_acking", "path": ")" +
                                 lines.string() + R"(", "inputs": ["in"])" + buffer + "}}}");
        Runtime rt(spec, registry, log);
        ASSERT_TRUE(rt.build());
        EXPECT_TRUE(rt.run().ok());
        ASSERT_TRUE(ends.wait_size(10)) << buffer;
        // Refused for good is finished, so every batch is, behind either buffer.
        EXPECT_EQ(ends.count(BatchOutcome::finished), 10u) << buffer;
        const auto* m = rt.metrics("old");
        ASSERT_NE(m, nullptr);
        const auto account = m->account();
        EXPECT_EQ(account.finished, 20u) << buffer << ": the sink's delivered acknowledgements";
        EXPECT_EQ(account.refused, 10u) << buffer << ": the sink's refused acknowledgements";
        EXPECT_EQ(account.in_flight, 0) << buffer;
        std::ifstream in(lines);
        std::size_t n = 0;
        for (std::string line; std::getline(in, line);)
            ++n;
        EXPECT_EQ(n, 30u) << buffer;
    }
}

// The account of every filter and sink: received = finished + discarded + in flight, with each way an event can
// end counted under its reason. The tracked source's batches hold 3 events: two entries and one incident.
TEST_F(DeliveryTest, EveryNodeAccountsForEachEventItReceivedOnce) {
    const auto dir = std::filesystem::temp_directory_path() / ("hubflow-account-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    PipelineSpec spec =
        load(R"({"data_dir": ")" + dir.string() + R"(", "sources": {"in": {"type": "tracked", "batches": 20}},
        "filters": {"split": {"type": "split", "inputs": ["in"]},
                    "keep": {"type": "keep_entries", "inputs": ["in"]},
                    "none": {"type": "drop_all", "inputs": ["in"]},
                    "twice": {"type": "twice", "inputs": ["in"]}},
        "sinks": {"ok": {"type": "acking", "mode": "now", "inputs": ["keep.a"]},
                  "no": {"type": "acking", "mode": "refuse", "inputs": ["keep.b"]},
                  "gone": {"type": "acking", "mode": "lose", "inputs": ["split.incidents"]},
                  "later": {"type": "acking", "mode": "hold", "inputs": ["split.entries"]},
                  "plain": {"type": "store", "inputs": ["twice"]},
                  "stored": {"type": "store", "inputs": ["in"],
                             "buffer": {"type": "disk", "max_bytes": 1048576}}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    rt.run();
    struct Expected {
        std::uint64_t received, finished, filtered, node_failed, refused;
        std::int64_t in_flight;
    };
    const std::map<std::string, Expected> expected = {
        {"split", {60, 60, 0, 0, 0, 0}},    // two new batches per input, none dropped
        {"keep", {60, 40, 20, 0, 0, 0}},    // one batch to two outputs counts once: the incidents were filtered
        {"none", {60, 0, 60, 0, 0, 0}},     // dropped everything on purpose
        {"twice", {60, 60, 0, 0, 0, 0}},    // emitting more than it took finishes what it took, no more
        {"ok", {40, 40, 0, 0, 0, 0}},       // delivered
        {"no", {40, 0, 0, 0, 40, 0}},       // refused for good
        {"gone", {20, 0, 0, 20, 0, 0}},     // lost
        {"later", {40, 0, 0, 0, 0, 40}},    // held, not settled: in flight after the graph finished
        {"plain", {120, 120, 0, 0, 0, 0}},  // a plain sink delivered when write() returned
        {"stored", {60, 60, 0, 0, 0, 0}},   // behind a disk buffer: received when taken from it
    };
    auto check = [&](const std::map<std::string, Expected>& want) {
        for (const auto& [node, e] : want) {
            const NodeMetrics::Account a = rt.metrics(node)->account();
            EXPECT_EQ(a.received, e.received) << node;
            EXPECT_EQ(a.finished, e.finished) << node;
            EXPECT_EQ(a.filtered, e.filtered) << node;
            EXPECT_EQ(a.node_failed, e.node_failed) << node;
            EXPECT_EQ(a.refused, e.refused) << node;
            EXPECT_EQ(a.queue_full, 0u) << node;
            EXPECT_EQ(a.in_flight, e.in_flight) << node;
            EXPECT_EQ(a.received, a.finished + a.discarded() + static_cast<std::uint64_t>(a.in_flight)) << node;
        }
    };
    check(expected);
    AckSink::settle_held();
    check({{"later", {40, 40, 0, 0, 0, 0}}});
    // What a sink took without error: here all of it was delivered by now.
    for (const auto& n : rt.status().nodes)
        if (n.name == "ok" || n.name == "plain") {
            EXPECT_EQ(n.sent.at(""), n.account.finished) << n.name;
        }
    std::filesystem::remove_all(dir);
}
