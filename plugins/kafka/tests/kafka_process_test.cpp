// The real hubflow program: generator -> kafka into a mock cluster that this test process runs, then the topic
// read back.

#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "mock_kafka.h"
#include "process.h"

namespace {

using hubflow::test::logged_counter;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using hubflow::kafka::test::consume_all;
using hubflow::kafka::test::MockCluster;

const std::string hubflow_bin = std::string(HUBFLOW_BINARY_DIR) + "/bin/hubflow";

class KafkaProcess : public hubflow::test::ScratchDirTest {};

TEST_F(KafkaProcess, GeneratorToKafkaDeliversEveryEventOnce) {
    MockCluster cluster(3);
    cluster.create_topic("ks.entry", 4);
    cluster.create_topic("ks.incident", 4);
    // The brokers come from the environment, as a deployment would pass them.
    std::string pipeline = write("pipeline.json", R"({
      "data_dir": ")" + (dir / "data").string() +
                                                      R"(",
      "sources": {"gen": {"type": "generator", "count": 20000, "seed": 7, "incident_ratio": 0.1}},
      "sinks": {"bus": {"type": "kafka", "inputs": ["gen"], "brokers": "${KAFKA_BROKERS}", "topic": "ks.{kind}",
                        "compression": "lz4"}}
    })");
    auto validated =
        hubflow::test::run_program(hubflow_bin, {"validate", pipeline}, {{"KAFKA_BROKERS", cluster.bootstraps()}});
    ASSERT_EQ(validated.code, 0) << validated.err;

    auto r = hubflow::test::run_program(hubflow_bin, {"run", pipeline}, {{"KAFKA_BROKERS", cluster.bootstraps()}});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(logged_counter(r.err, "bus", "delivered_events"), 20000u) << r.err;
    EXPECT_EQ(logged_counter(r.err, "bus", "undelivered_events"), 0u) << r.err;

    auto entries = consume_all(cluster.bootstraps(), "ks.entry", 4);
    auto incidents = consume_all(cluster.bootstraps(), "ks.incident", 4);
    EXPECT_EQ(entries.size() + incidents.size(), 20000u);
    EXPECT_GT(incidents.size(), 1000u);
    std::set<std::string> ids;
    for (const auto* topic : {&entries, &incidents})
        for (const auto& record : *topic) {
            ASSERT_TRUE(record.key.has_value());
            EXPECT_EQ(*record.key, record.headers.at("site_id"));
            EXPECT_EQ(record.headers.at("source"), "gen");
            ids.insert(record.headers.at("id"));
            EXPECT_EQ(record.headers.at("hubflow-id"), record.headers.at("id"));  // the stable id is the event's
        }
    EXPECT_EQ(ids.size(), 20000u) << "an event arrived twice";
}

// Acknowledgements end to end: `tail` checkpoints only lines whose events the brokers acknowledged. A run with
// every broker down delivers nothing and moves no checkpoint; the next run, brokers back, sends every line
// from the start; a third run finds nothing left to send.
TEST_F(KafkaProcess, TailCheckpointsOnlyWhatTheBrokersAcknowledged) {
    MockCluster cluster(3);
    cluster.create_topic("ks.entry", 2);
    const int count = 500;
    std::string lines;
    for (int i = 0; i < count; ++i)
        lines += R"({"id":"e)" + std::to_string(i) + R"(","kind":"entry","site_id":"s)" + std::to_string(i % 7) +
                 R"(","seq":)" + std::to_string(i) + "}\n";
    const std::string events = write("events.jsonl", lines);
    std::string pipeline = write("pipeline.json", R"({
      "data_dir": ")" + (dir / "data").string() +
                                                      R"(",
      "sources": {"in": {"type": "tail", "path": ")" + events +
                                                      R"(", "follow": false, "checkpoint": true,
                         "drain_wait_ms": 300}},
      "sinks": {"bus": {"type": "kafka", "inputs": ["in"], "brokers": "${KAFKA_BROKERS}", "topic": "ks.{kind}",
                        "flush_timeout_ms": 300}}
    })");
    const std::map<std::string, std::string> env = {{"KAFKA_BROKERS", cluster.bootstraps()}};

    for (int b = 1; b <= 3; ++b)
        cluster.set_down(b);
    {
        // A tail that reads to the end finishes once its lines are finished: here never, so it is stopped.
        hubflow::test::Process down(hubflow_bin, {"run", pipeline}, env);
        ASSERT_TRUE(down.wait_for_err("_ALL_BROKERS_DOWN", 20s)) << down.err();
        down.signal(SIGTERM);
        ASSERT_TRUE(down.wait(20s).has_value()) << down.err();
        EXPECT_EQ(logged_counter(down.err(), "bus", "delivered_events"), 0u) << down.err();
        EXPECT_EQ(logged_counter(down.err(), "bus", "undelivered_events"), static_cast<std::uint64_t>(count))
            << down.err();
    }

    for (int b = 1; b <= 3; ++b)
        cluster.set_up(b);
    auto up = hubflow::test::run_program(hubflow_bin, {"run", pipeline}, env);
    ASSERT_EQ(up.code, 0) << up.err;
    EXPECT_EQ(logged_counter(up.err, "bus", "delivered_events"), static_cast<std::uint64_t>(count)) << up.err;

    auto again = hubflow::test::run_program(hubflow_bin, {"run", pipeline}, env);
    ASSERT_EQ(again.code, 0) << again.err;
    EXPECT_EQ(logged_counter(again.err, "bus", "received_events"), 0u) << again.err;

    std::set<std::string> ids;
    for (const auto& record : consume_all(cluster.bootstraps(), "ks.entry", 2))
        ids.insert(record.headers.at("hubflow-id"));
    EXPECT_EQ(ids.size(), static_cast<std::size_t>(count));
}

TEST_F(KafkaProcess, ValidateNamesNodeAndKeyOfABadProperty) {
    std::string pipeline = write("pipeline.json", R"({
      "sources": {"gen": {"type": "generator", "count": 1}},
      "sinks": {"bus": {"type": "kafka", "inputs": ["gen"], "brokers": "127.0.0.1:1", "topic": "t",
                        "properties": {"linger.msec": 5}}}
    })");
    auto r = hubflow::test::run_program(hubflow_bin, {"validate", pipeline});
    EXPECT_EQ(r.code, 65) << r.err;
    EXPECT_NE(r.err.find("node 'bus', key 'properties.linger.msec'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("No such configuration property"), std::string::npos) << r.err;
}

}  // namespace
