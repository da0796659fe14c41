// Reload through the real runtime while it runs: unchanged nodes keep running, replaced and removed ones
// drain, new ones start, and the nodes that stay see every event exactly once.

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <thread>

#include "config/pipeline.h"
#include "fake_components.h"
#include "runtime/runtime.h"

using namespace hubflow;
using namespace hubflow::core;
using namespace hubflow::testing_core;
using namespace std::chrono_literals;

namespace {

// Emits numbered events (id = the number) in small batches until the host stops it.
class SequenceSource final : public Source {
public:
    static ComponentDescription describe() {
        return {"sequence", ComponentKind::source, "numbered events until stopped", {}};
    }
    void configure(const ConfigView&, Context& ctx) override { ctx_ = &ctx; }
    void run() override {
        std::uint64_t n = 0;
        while (!ctx_->stopping()) {
            EventBatch batch(10);
            for (auto& e : batch) {
                e.meta.id = std::to_string(n);
                e.meta.kind = n % 2 ? "incident" : "entry";
                e.payload = "{\"seq\":" + std::to_string(n++) + "}";
            }
            ctx_->emit(std::move(batch));
            ctx_->wait_for(200us);
        }
    }

private:
    Context* ctx_ = nullptr;
};

class ReloadTest : public ::testing::Test {
protected:
    void SetUp() override {
        recorder = &rec;
        registry.add_builtin<SequenceSource>();
        registry.add_builtin<SplitFilter>();
        registry.add_builtin<PassFilter>();
        registry.add_builtin<StoreSink>();
        StoreSink::released = true;
    }
    void TearDown() override { recorder = nullptr; }

    PipelineSpec load(const std::string& text) { return valid_pipeline(text, registry); }
    // Every id the sinks got, counting repeats.
    std::multiset<std::uint64_t> ids(const std::vector<std::string>& sinks) {
        std::lock_guard lock(rec.mutex);
        std::multiset<std::uint64_t> out;
        for (const auto& s : sinks)
            for (const auto& e : rec.received[s])
                out.insert(std::stoull(e.meta.id));
        return out;
    }

    Recorder rec;
    ComponentRegistry registry;
    std::ostringstream log_text;
    LogSink log{log_text, LogLevel::debug};
};

std::string split_pipeline(const std::string& outputs, const std::string& extra_sink = "") {
    return R"({"sources": {"seq": {"type": "sequence"}},
        "filters": {"split": {"type": "split", "inputs": ["seq"], "outputs": )" +
           outputs + R"(}},
        "sinks": {"a": {"type": "store", "inputs": ["split.entries"]},
                  "b": {"type": "store", "inputs": ["split.incidents"]})" +
           extra_sink + "}}";
}

}  // namespace

TEST_F(ReloadTest, ReplacingAFilterUnderLoadLosesAndRepeatsNothingInTheNodesThatStay) {
    PipelineSpec first = load(split_pipeline(R"(["entries", "incidents"])"));
    Runtime rt(first, registry, log);
    ASSERT_TRUE(rt.build());
    std::thread running([&] { rt.run(); });
    ASSERT_TRUE(rec.wait_until([](auto& r) { return r["a"].size() > 200; }));

    std::vector<PipelineSpec> versions;  // a reload keeps copies, but the caller's spec may go: keep them anyway
    for (int i = 0; i < 6; ++i) {
        versions.push_back(
            load(split_pipeline(i % 2 ? R"(["entries", "incidents"])" : R"(["entries", "incidents", "spare"])")));
        ReloadReport r = rt.reload(versions.back());
        ASSERT_EQ(r.outcome, ReloadReport::Outcome::applied) << r.summary();
        EXPECT_EQ(r.changed, std::vector<std::string>{"split"}) << r.summary();
        EXPECT_EQ(r.kept, (std::vector<std::string>{"a", "b", "seq"})) << r.summary();
        const std::size_t seen = rec.count("a");
        ASSERT_TRUE(rec.wait_until([&](auto& rcv) { return rcv["a"].size() > seen + 100; }))
            << "events flow through the new filter";
    }
    rt.request_stop();
    running.join();

    const auto got = ids({"a", "b"});
    ASSERT_FALSE(got.empty());
    const std::uint64_t last = *got.rbegin();
    std::uint64_t missing = 0, repeated = 0;
    for (std::uint64_t n = 0; n <= last; ++n) {
        const auto c = got.count(n);
        missing += c == 0;
        repeated += c > 1 ? c - 1 : 0;
    }
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(repeated, 0u);
    EXPECT_EQ(rt.metrics("a")->account().discarded(), 0u);
}

TEST_F(ReloadTest, RemovedNodesDrainNewOnesStartAndABadFileChangesNothing) {
    PipelineSpec first = load(split_pipeline(R"(["entries", "incidents"])"));
    Runtime rt(first, registry, log);
    ASSERT_TRUE(rt.build());
    std::thread running([&] { rt.run(); });
    ASSERT_TRUE(rec.wait_until([](auto& r) { return r["b"].size() > 100; }));

    // b goes, c comes (reading the same output), a stays.
    PipelineSpec second = load(split_pipeline(R"(["entries", "incidents"])", R"(,
        "c": {"type": "store", "inputs": ["split.incidents"]})"));
    second.nodes.erase(
        std::remove_if(second.nodes.begin(), second.nodes.end(), [](const NodeSpec& n) { return n.name == "b"; }),
        second.nodes.end());
    ReloadReport r = rt.reload(second);
    ASSERT_EQ(r.outcome, ReloadReport::Outcome::applied) << r.summary();
    EXPECT_EQ(r.removed, std::vector<std::string>{"b"});
    EXPECT_EQ(r.added, std::vector<std::string>{"c"});
    EXPECT_EQ(rt.metrics("b"), nullptr) << "a removed node is gone from the graph";
    const std::size_t b_final = rec.count("b");
    ASSERT_TRUE(rec.wait_until([](auto& rcv) { return rcv["c"].size() > 100; }));
    EXPECT_EQ(rec.count("b"), b_final) << "nothing reaches a removed node";

    // A node that cannot be built: refused, and the running graph is untouched.
    PipelineSpec bad = second;
    for (auto& n : bad.nodes)
        if (n.name == "split") n.config.as_object().front().second.as_array().emplace_back(std::string("bad"));
    ReloadReport refused = rt.reload(bad);
    EXPECT_EQ(refused.outcome, ReloadReport::Outcome::invalid);
    EXPECT_NE(refused.summary().find("'bad' is not a valid output name"), std::string::npos) << refused.summary();
    const std::size_t c_now = rec.count("c");
    ASSERT_TRUE(rec.wait_until([&](auto& rcv) { return rcv["c"].size() > c_now + 50; }));

    rt.request_stop();
    running.join();
    // Every incident went to b or to c exactly once; a got every entry.
    const auto incidents = ids({"b", "c"});
    const auto entries = ids({"a"});
    const std::uint64_t last = std::max(*incidents.rbegin(), *entries.rbegin());
    std::uint64_t missing = 0, repeated = 0;
    for (std::uint64_t n = 0; n + 1 < last; ++n) {
        const auto c = (n % 2 ? incidents : entries).count(n);
        missing += c == 0;
        repeated += c > 1 ? c - 1 : 0;
    }
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(repeated, 0u);
}
