// The real hubflow program: generator -> webhook into a receiver that this test process runs, which fails the
// first requests so that retries happen through the host too.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "process.h"
#include "receiver.h"

namespace {

using hubflow::test::logged_counter;
namespace fs = std::filesystem;
using hubflow::webhook::test::Received;
using hubflow::webhook::test::Receiver;
using hubflow::webhook::test::Reply;

const std::string hubflow_bin = std::string(HUBFLOW_BINARY_DIR) + "/bin/hubflow";

class WebhookProcess : public hubflow::test::ScratchDirTest {};

TEST_F(WebhookProcess, GeneratorToWebhookDeliversEveryEvent) {
    Receiver receiver;
    receiver.respond([](const Received&, int n) { return n < 2 ? Reply{503, "warming up"} : Reply{200}; });
    // The URL and the token come from the environment, as a deployment would pass them.
    std::string pipeline = write("pipeline.json", R"({
      "sources": {"gen": {"type": "generator", "count": 2000, "seed": 7}},
      "sinks": {"hook": {"type": "webhook", "inputs": ["gen"], "url": "${HOOK_URL}",
                         "auth": {"bearer": "${HOOK_TOKEN}"}, "encoding": "ndjson",
                         "batch": {"max_events": 100}, "retry": {"initial_ms": 10, "max_ms": 50},
                         "dead_letter": ")" + (dir / "dead.jsonl").string() +
                                                      R"("}}
    })");
    const std::map<std::string, std::string> env = {{"HOOK_URL", receiver.url("/in")}, {"HOOK_TOKEN", "t0k3n"}};
    auto validated = hubflow::test::run_program(hubflow_bin, {"validate", pipeline}, env);
    ASSERT_EQ(validated.code, 0) << validated.err;

    auto r = hubflow::test::run_program(hubflow_bin, {"run", pipeline}, env);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(logged_counter(r.err, "hook", "delivered_events"), 2000u) << r.err;
    EXPECT_EQ(logged_counter(r.err, "hook", "retries"), 2u) << r.err;
    EXPECT_EQ(logged_counter(r.err, "hook", "undelivered_events"), 0u) << r.err;
    EXPECT_EQ(r.err.find("t0k3n"), std::string::npos) << "the token was logged";

    std::size_t lines = 0;
    for (const auto& req : receiver.requests()) {
        EXPECT_EQ(req.header("authorization"), "Bearer t0k3n");
        if (req.header("content-type") != "application/x-ndjson") continue;
        lines += static_cast<std::size_t>(std::count(req.body.begin(), req.body.end(), '\n'));
    }
    // 2 failed requests of 100 events came again, so 200 lines were received twice.
    EXPECT_EQ(lines, 2200u);
}

// Two runs of the host sending the same events (the generator with one seed) give the same webhook-ids, as a
// run that re-reads what a crashed one had not finished would: a receiver can drop the repeats.
TEST_F(WebhookProcess, TheSameEventsCarryTheSameWebhookIdsInTheNextRun) {
    std::vector<std::set<std::string>> ids(2);
    for (int run = 0; run < 2; ++run) {
        Receiver receiver;
        std::string pipeline = write("pipeline.json", R"({
          "sources": {"gen": {"type": "generator", "count": 300, "seed": 11}},
          "sinks": {"hook": {"type": "webhook", "inputs": ["gen"], "url": ")" +
                                                          receiver.url() +
                                                          R"("}}
        })");
        auto r = hubflow::test::run_program(hubflow_bin, {"run", pipeline});
        ASSERT_EQ(r.code, 0) << r.err;
        ASSERT_EQ(logged_counter(r.err, "hook", "delivered_events"), 300u) << r.err;
        for (const auto& req : receiver.requests())
            ids[static_cast<std::size_t>(run)].insert(req.header("webhook-id"));
    }
    EXPECT_EQ(ids[0].size(), 300u);
    EXPECT_EQ(ids[0], ids[1]);
}

// Acknowledgements end to end: `tail` checkpoints only lines whose events the receiver answered with a 2xx. A
// run against a receiver that answers 503 delivers nothing and moves no checkpoint; the next run sends every
// line from the start, the ones tried before with the same webhook-ids; a third run finds nothing left.
TEST_F(WebhookProcess, TailCheckpointsOnlyWhatTheReceiverAccepted) {
    const int count = 300;
    std::string lines;
    for (int i = 0; i < count; ++i)
        lines += R"({"id":"e)" + std::to_string(i) + R"(","kind":"entry","seq":)" + std::to_string(i) + "}\n";
    const std::string events = write("events.jsonl", lines);
    Receiver receiver;
    std::atomic<bool> up{false};
    receiver.respond([&](const Received&, int) { return up ? Reply{200} : Reply{503, "down"}; });
    std::string pipeline = write("pipeline.json", R"({
      "data_dir": ")" + (dir / "data").string() +
                                                      R"(",
      "sources": {"in": {"type": "tail", "path": ")" + events +
                                                      R"(", "follow": false, "checkpoint": true,
                         "drain_wait_ms": 300}},
      "sinks": {"hook": {"type": "webhook", "inputs": ["in"], "url": ")" +
                                                      receiver.url() +
                                                      R"(", "max_in_flight": 2,
                         "retry": {"initial_ms": 10, "max_ms": 50}, "flush_timeout_ms": 300}}
    })");
    {
        // A tail that reads to the end finishes once its lines are finished: here never, so it is stopped.
        hubflow::test::Process down(hubflow_bin, {"run", pipeline});
        ASSERT_TRUE(receiver.wait_for_requests(10, std::chrono::seconds(20)));
        down.signal(SIGTERM);
        ASSERT_TRUE(down.wait(std::chrono::seconds(20)).has_value()) << down.err();
        EXPECT_EQ(logged_counter(down.err(), "hook", "delivered_events"), 0u) << down.err();
    }
    std::set<std::string> tried;
    for (const auto& r : receiver.requests())
        tried.insert(r.header("webhook-id"));
    const std::size_t before = receiver.count();

    up = true;
    auto r = hubflow::test::run_program(hubflow_bin, {"run", pipeline});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(logged_counter(r.err, "hook", "delivered_events"), static_cast<std::uint64_t>(count)) << r.err;
    std::set<std::string> delivered;
    auto requests = receiver.requests();
    for (std::size_t i = before; i < requests.size(); ++i)
        delivered.insert(requests[i].header("webhook-id"));
    EXPECT_EQ(delivered.size(), static_cast<std::size_t>(count));
    for (const auto& id : tried)
        EXPECT_TRUE(delivered.count(id)) << id << " came back with another webhook-id";

    auto again = hubflow::test::run_program(hubflow_bin, {"run", pipeline});
    ASSERT_EQ(again.code, 0) << again.err;
    EXPECT_EQ(logged_counter(again.err, "hook", "received_events"), 0u) << again.err;
}

TEST_F(WebhookProcess, ValidateNamesNodeAndKey) {
    std::string pipeline = write("pipeline.json", R"({
      "sources": {"gen": {"type": "generator", "count": 1}},
      "sinks": {"hook": {"type": "webhook", "inputs": ["gen"], "url": "http://127.0.0.1:1/x",
                         "batch": {"max_events": 10}, "encoding": "json"}}
    })");
    auto r = hubflow::test::run_program(hubflow_bin, {"validate", pipeline});
    EXPECT_EQ(r.code, 65) << r.err;
    EXPECT_NE(r.err.find("node 'hook', key 'encoding'"), std::string::npos) << r.err;
}

}  // namespace
