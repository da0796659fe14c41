#include "runtime/runtime.h"

#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "config/pipeline.h"
#include "fake_components.h"

using namespace hubflow;
using namespace hubflow::core;
using namespace hubflow::testing_core;
using namespace std::chrono_literals;

namespace {

class RuntimeTest : public ::testing::Test {
protected:
    void SetUp() override {
        recorder = &rec;
        registry.add_builtin<TickerSource>();
        registry.add_builtin<SplitFilter>();
        registry.add_builtin<PassFilter>();
        registry.add_builtin<StoreSink>();
        StoreSink::released = true;
        StoreSink::flushed = 0;
    }
    void TearDown() override { recorder = nullptr; }

    PipelineSpec load(const std::string& text) { return valid_pipeline(text, registry); }

    Recorder rec;
    ComponentRegistry registry;
    std::ostringstream log_text;
    LogSink log{log_text, LogLevel::debug};
};

std::vector<std::string> payload_numbers(const std::vector<Event>& events) {
    std::vector<std::string> out;
    for (const auto& e : events)
        out.push_back(e.meta.id);
    return out;
}

}  // namespace

TEST_F(RuntimeTest, FanOutDeliversEveryEventToEverySinkInOrder) {
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "ticker", "count": 1000, "batch": 7}},
        "sinks": {"a": {"type": "store", "inputs": ["in"]}, "b": {"type": "store", "inputs": ["in"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    RunResult r = rt.run();
    EXPECT_TRUE(r.ok());
    ASSERT_EQ(rec.count("a"), 1000u);
    ASSERT_EQ(rec.count("b"), 1000u);
    EXPECT_EQ(payload_numbers(rec.received["a"]), payload_numbers(rec.received["b"]));
    EXPECT_EQ(rec.received["a"][999].meta.id, "t999");
    EXPECT_EQ(rec.received["a"][0].meta.source, "in");
    EXPECT_NE(rec.received["a"][0].meta.received_at.time_since_epoch().count(), 0);
    EXPECT_EQ(rt.metrics("in")->emitted.value(), 1000u);
    EXPECT_EQ(rt.metrics("a")->account().received, 1000u);
    EXPECT_EQ(StoreSink::flushed.load(), 2);
}

TEST_F(RuntimeTest, FanInAndRoutedOutputs) {
    PipelineSpec spec = load(R"({"sources": {"x": {"type": "ticker", "count": 100, "label": "x"},
                                             "y": {"type": "ticker", "count": 50, "label": "y"}},
        "filters": {"r": {"type": "split", "inputs": ["x", "y"]}},
        "sinks": {"entries": {"type": "store", "inputs": ["r.entries"]},
                  "incidents": {"type": "store", "inputs": ["r.incidents"]},
                  "all": {"type": "store", "inputs": ["x", "y"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    EXPECT_TRUE(rt.run().ok());
    EXPECT_EQ(rec.count("all"), 150u);
    EXPECT_EQ(rec.count("entries"), 75u);
    EXPECT_EQ(rec.count("incidents"), 75u);
    for (const auto& e : rec.received["entries"])
        EXPECT_EQ(e.meta.kind, "entry");
    for (const auto& e : rec.received["incidents"])
        EXPECT_EQ(e.meta.kind, "incident");
}

TEST_F(RuntimeTest, ThrowingSinkIsNamedAndTheRestKeepsRunning) {
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "ticker", "count": 100, "batch": 10}},
        "sinks": {"bad": {"type": "store", "inputs": ["in"], "throw_on": "\"n\":55,"},
                  "good": {"type": "store", "inputs": ["in"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    RunResult r = rt.run();
    EXPECT_EQ(rec.count("good"), 100u);
    EXPECT_EQ(rec.count("bad"), 90u);  // the batch holding n=55 was dropped, the others delivered
    EXPECT_EQ(rt.metrics("bad")->errors.value(), 1u);
    EXPECT_EQ(rt.metrics("bad")->account().node_failed, 10u);
    EXPECT_NE(log_text.str().find("[bad] write() threw"), std::string::npos) << log_text.str();
    EXPECT_TRUE(r.failed_nodes.empty());
}

TEST_F(RuntimeTest, NodeReportingFailureStopsAloneAndItsInputIsCountedAsDropped) {
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "ticker", "count": 1000, "batch": 10}},
        "sinks": {"bad": {"type": "store", "inputs": ["in"], "fail_on": "\"n\":100,", "buffer": {"max_events": 20}},
                  "good": {"type": "store", "inputs": ["in"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    RunResult r = rt.run();
    EXPECT_EQ(rec.count("good"), 1000u);
    EXPECT_EQ(rec.count("bad"), 100u);
    const NodeMetrics* bad = rt.metrics("bad");
    // Every event that reached the failed node is either delivered or counted as dropped.
    EXPECT_EQ(rec.count("bad") + bad->account().node_failed, 1000u);
    EXPECT_EQ(bad->account().received, 1000u);
    EXPECT_EQ(bad->account().finished, rec.count("bad"));
    EXPECT_EQ(bad->account().in_flight, 0);
    ASSERT_EQ(r.failed_nodes, std::vector<std::string>{"bad"});
    EXPECT_NE(log_text.str().find("[bad] failed: store told to fail"), std::string::npos) << log_text.str();
}

TEST_F(RuntimeTest, SinkThatCannotStartDoesNotStopTheOthers) {
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "ticker", "count": 30}},
        "sinks": {"broken": {"type": "store", "inputs": ["in"], "fail_start": true},
                  "good": {"type": "store", "inputs": ["in"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    RunResult r = rt.run();
    EXPECT_EQ(rec.count("good"), 30u);
    EXPECT_EQ(rec.count("broken"), 0u);
    EXPECT_EQ(rt.metrics("broken")->account().node_failed, 30u);
    EXPECT_EQ(rt.metrics("broken")->account().received, 30u);  // at the door: received and discarded at once
    EXPECT_EQ(r.failed_nodes, std::vector<std::string>{"broken"});
    EXPECT_NE(log_text.str().find("[broken] cannot start: store told not to start"), std::string::npos);
}

TEST_F(RuntimeTest, BackpressureHoldsTheSourceInsteadOfDropping) {
    StoreSink::released = false;
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "ticker", "count": 500, "batch": 10}},
        "sinks": {"slow": {"type": "store", "inputs": ["in"], "block": true, "buffer": {"max_events": 50}}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    std::thread runner([&] { rt.run(); });
    auto deadline = std::chrono::steady_clock::now() + 5s;
    // One batch stuck in write(), five in the queue, and the seventh counted but held in push().
    while (rt.metrics("in")->emitted.value() < 70 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
    EXPECT_EQ(rt.metrics("in")->emitted.value(), 70u);
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(rt.metrics("in")->emitted.value(), 70u);  // still held back
    {
        std::lock_guard lock(StoreSink::gate_mutex);
        StoreSink::released = true;
    }
    StoreSink::gate.notify_all();
    runner.join();
    EXPECT_EQ(rec.count("slow"), 500u);
    EXPECT_EQ(rt.metrics("slow")->account().discarded(), 0u);
}

TEST_F(RuntimeTest, DropNewestCountsDropsWhileTheSinkIsStuck) {
    StoreSink::released = false;
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "ticker", "count": 500, "batch": 10}},
        "sinks": {"slow": {"type": "store", "inputs": ["in"], "block": true,
                           "buffer": {"max_events": 50, "when_full": "drop_newest"}}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    std::thread runner([&] { rt.run(); });
    // The source is never held back: it finishes while the sink is stuck.
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (rt.metrics("in")->emitted.value() < 500 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
    EXPECT_EQ(rt.metrics("in")->emitted.value(), 500u);
    {
        std::lock_guard lock(StoreSink::gate_mutex);
        StoreSink::released = true;
    }
    StoreSink::gate.notify_all();
    runner.join();
    const NodeMetrics* slow = rt.metrics("slow");
    const NodeMetrics::Account a = slow->account();
    EXPECT_GT(a.queue_full, 0u);
    EXPECT_EQ(a.node_failed, 0u);
    EXPECT_EQ(rec.count("slow") + a.queue_full, 500u);
    // Refused at the door counts as received: every event the source sent is accounted for.
    EXPECT_EQ(a.received, 500u);
    EXPECT_EQ(a.finished, rec.count("slow"));
    EXPECT_EQ(a.in_flight, 0);
    EXPECT_NE(log_text.str().find("[slow] dropped"), std::string::npos) << log_text.str();
}

TEST_F(RuntimeTest, StopDrainsQueuesAndFlushesSinks) {
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "ticker", "count": 20, "forever": true}},
        "filters": {"p": {"type": "pass", "inputs": ["in"]}},
        "sinks": {"out": {"type": "store", "inputs": ["p"]}}})");
    Runtime rt(spec, registry, log);
    ASSERT_TRUE(rt.build());
    RunResult result;
    std::thread runner([&] { result = rt.run(); });
    ASSERT_TRUE(rec.wait_until([](auto& r) { return r["out"].size() == 20; }));
    rt.request_stop();
    runner.join();
    EXPECT_TRUE(result.ok());
    EXPECT_EQ(StoreSink::flushed.load(), 1);
    EXPECT_EQ(rec.count("out"), 20u);
}

TEST_F(RuntimeTest, GracePeriodRunsOutOnANodeThatNeverFinishes) {
    StoreSink::released = false;
    PipelineSpec spec = load(R"({"sources": {"in": {"type": "ticker", "count": 5}},
        "sinks": {"stuck": {"type": "store", "inputs": ["in"], "block": true}}, "grace_period_s": 0.2})");
    auto rt = std::make_unique<Runtime>(spec, registry, log);
    ASSERT_TRUE(rt->build());
    RunResult r;
    std::thread runner([&] { r = rt->run(); });
    // Once the sink is inside write(), it will not come out until released.
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (rt->metrics("stuck")->taken.value() == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
    rt->request_stop();
    runner.join();
    EXPECT_EQ(r.unfinished, std::vector<std::string>{"stuck"});
    // Release the stuck sink so the detached thread can end before the fixture goes away.
    {
        std::lock_guard lock(StoreSink::gate_mutex);
        StoreSink::released = true;
    }
    StoreSink::gate.notify_all();
    EXPECT_TRUE(rt->wait_until_finished(10s));
    EXPECT_EQ(rec.count("stuck"), 5u);
}
