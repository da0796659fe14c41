#include "kafka_sink.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hubflow/config.h"
#include "hubflow/testing/fake_context.h"
#include "hubflow/testing/node_config.h"
#include "mock_kafka.h"

namespace {

using hubflow::ConfigError;
using hubflow::ConfigView;
using hubflow::Event;
using hubflow::EventBatch;
using hubflow::Value;
using hubflow::kafka::KafkaSink;
using hubflow::kafka::test::consume_all;
using hubflow::kafka::test::MockCluster;
using hubflow::kafka::test::Record;
using hubflow::testing::AckRecorder;
using hubflow::testing::FakeContext;
using namespace std::chrono_literals;

constexpr auto base_time = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));

// Event number `seq` of site `site`: the payload carries both, so order and duplicates can be checked on what
// comes back.
Event make_event(int site, int seq, std::string kind = "entry") {
    Event e;
    std::string site_id = "site-" + std::to_string(site);
    e.payload = R"({"site":")" + site_id + R"(","seq":)" + std::to_string(seq) + R"(,"lock":{"id":"L)" +
                std::to_string(seq % 7) + R"("}})";
    e.meta.kind = std::move(kind);
    e.meta.site_id = site_id;
    e.meta.user_id = "user-" + std::to_string(seq % 5);
    e.meta.id = site_id + "/" + std::to_string(seq);
    e.meta.source = "gen";
    e.meta.received_at = base_time + std::chrono::milliseconds(seq);
    return e;
}

int seq_of(const std::string& payload) {
    auto at = payload.find("\"seq\":");
    return std::stoi(payload.substr(at + 6));
}

// `count` events over `sites` sites, round robin, in batches of `batch_size`.
std::vector<EventBatch> make_batches(int count, int sites, int batch_size, int first_seq = 0) {
    std::vector<EventBatch> out;
    for (int i = 0; i < count; ++i) {
        if (i % batch_size == 0) out.emplace_back();
        out.back().push_back(make_event(i % sites, first_seq + i));
    }
    return out;
}

// A mock cluster of 3 brokers for one test. Destroying one takes a second (its thread looks for work once a
// second), which would be most of this suite's time, so they are kept for the process's exit to free.
MockCluster& fresh_cluster() {
    static auto* kept = new std::vector<std::unique_ptr<MockCluster>>();
    kept->push_back(std::make_unique<MockCluster>(3));
    return *kept->back();
}

double thread_cpu_seconds(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

class KafkaSinkTest : public ::testing::Test {
protected:
    void configure(const std::string& json) {
        config_ = hubflow::testing::node_config(KafkaSink::describe(), json);
        sink.configure(ConfigView(config_), context);
    }
    // A configuration for this cluster, with `extra` keys appended.
    std::string with_brokers(const std::string& extra) {
        return R"({"brokers": ")" + cluster.bootstraps() + R"(")" + (extra.empty() ? "" : ", " + extra) + "}";
    }
    std::uint64_t counter(const std::string& name) { return context.metric_registry.counters[name].value(); }
    std::int64_t gauge(const std::string& name) { return context.metric_registry.gauges[name].value(); }

    // Every message read back exactly once: no event missing, none twice, and each key's events in the
    // order they were written.
    void expect_exactly_once_in_order(const std::vector<Record>& records, int count) {
        std::set<std::string> ids;
        std::map<std::string, int> last_seq;
        for (const Record& r : records) {
            ASSERT_TRUE(r.key.has_value());
            int seq = seq_of(r.payload);
            EXPECT_TRUE(ids.insert(r.headers.at("id")).second) << "duplicate " << r.headers.at("id");
            auto [it, first] = last_seq.emplace(*r.key, seq);
            if (!first) {
                EXPECT_GT(seq, it->second) << "key " << *r.key << " out of order";
                it->second = seq;
            }
        }
        EXPECT_EQ(records.size(), static_cast<std::size_t>(count));
        EXPECT_EQ(ids.size(), static_cast<std::size_t>(count));
    }

    // Every event read back at least once, and each key's events in the order they were written where they
    // first appear. For the broker-outage case: librdkafka's mock cluster does not always deduplicate the
    // idempotent producer's own retry of a request that was in flight when its broker went down (a whole
    // batch shows up twice while the sink's retried_events and producer_restarts stay 0), so there the test
    // checks that the sink itself produced nothing twice, and counts the copies the mock added.
    std::size_t expect_all_in_order_counting_copies(const std::vector<Record>& records, int count) {
        std::set<std::string> ids;
        std::map<std::string, int> last_seq;
        std::size_t copies = 0;
        for (const Record& r : records) {
            if (!r.key.has_value()) {
                ADD_FAILURE() << "a record without a key";
                continue;
            }
            if (!ids.insert(r.headers.at("id")).second) {
                ++copies;
                continue;
            }
            int seq = seq_of(r.payload);
            auto [it, first] = last_seq.emplace(*r.key, seq);
            if (!first) {
                EXPECT_GT(seq, it->second) << "key " << *r.key << " out of order";
                it->second = seq;
            }
        }
        EXPECT_EQ(ids.size(), static_cast<std::size_t>(count));
        EXPECT_EQ(records.size(), static_cast<std::size_t>(count) + copies);
        return copies;
    }

    MockCluster& cluster = fresh_cluster();
    FakeContext context{"bus"};
    KafkaSink sink;

private:
    Value config_;
};

TEST_F(KafkaSinkTest, DeliversEveryEventWithKeyHeadersAndPerKeyOrder) {
    cluster.create_topic("ks.entries", 6);
    configure(with_brokers(R"("topic": "ks.entries")"));
    sink.start();
    const int count = 5000;
    AckRecorder acks;
    for (const EventBatch& batch : make_batches(count, 20, 500))
        sink.deliver(batch, acks.ack());
    sink.flush();
    // Settled on the delivery reports, each event once.
    EXPECT_EQ(acks.delivered(), static_cast<std::size_t>(count));
    EXPECT_EQ(acks.settled(), static_cast<std::size_t>(count));
    EXPECT_EQ(counter("delivered_events"), static_cast<std::uint64_t>(count));
    EXPECT_EQ(counter("undelivered_events"), 0u);
    EXPECT_EQ(counter("failed_events"), 0u);
    EXPECT_EQ(gauge("in_flight_events"), 0);
    sink.stop();

    std::vector<Record> records = consume_all(cluster.bootstraps(), "ks.entries", 6);
    expect_exactly_once_in_order(records, count);
    std::map<std::string, std::set<std::int32_t>> partitions_of_key;
    for (const Record& r : records) {
        int seq = seq_of(r.payload);
        Event expected = make_event(seq % 20, seq);
        EXPECT_EQ(*r.key, expected.meta.site_id);
        partitions_of_key[*r.key].insert(r.partition);
        EXPECT_EQ(r.header_order, (std::vector<std::string>{"kind", "site_id", "user_id", "id", "source", "received_at",
                                                            "hubflow-id"}));
        EXPECT_EQ(r.headers.at("hubflow-id"), expected.meta.id);  // the event's own id
        EXPECT_EQ(r.headers.at("kind"), "entry");
        EXPECT_EQ(r.headers.at("site_id"), expected.meta.site_id);
        EXPECT_EQ(r.headers.at("user_id"), expected.meta.user_id);
        EXPECT_EQ(r.headers.at("id"), expected.meta.id);
        EXPECT_EQ(r.headers.at("source"), "gen");
        EXPECT_EQ(r.headers.at("received_at"), hubflow::format_utc(expected.meta.received_at));
        EXPECT_EQ(r.timestamp_ms,
                  std::chrono::duration_cast<std::chrono::milliseconds>(expected.meta.received_at.time_since_epoch())
                      .count());
    }
    // One key, one partition: that is what keeps a site's events in order.
    for (const auto& [key, partitions] : partitions_of_key)
        EXPECT_EQ(partitions.size(), 1u) << key;
}

TEST_F(KafkaSinkTest, KeyFromPayloadFieldAndSelectedHeaders) {
    cluster.create_topic("locks", 3);
    configure(with_brokers(R"("topic": "locks", "key": "lock.id", "headers": ["id", "kind"], "compression": "lz4")"));
    sink.start();
    EventBatch batch = make_batches(30, 3, 30)[0];
    batch[0].meta.received_at = {};  // no timestamp and no received_at header for this one
    sink.write(batch);
    sink.flush();
    sink.stop();
    std::vector<Record> records = consume_all(cluster.bootstraps(), "locks", 3);
    ASSERT_EQ(records.size(), 30u);
    for (const Record& r : records) {
        EXPECT_EQ(*r.key, "L" + std::to_string(seq_of(r.payload) % 7));
        EXPECT_EQ(r.header_order, (std::vector<std::string>{"id", "kind", "hubflow-id"}));
    }
}

TEST_F(KafkaSinkTest, TopicTemplateRoutesByFieldAndKeepsNamesLegal) {
    for (const char* topic : {"ks.entry", "ks.incident", "ks.door_open", "ks.unknown"})
        cluster.create_topic(topic, 2);
    configure(with_brokers(R"("topic": "ks.{kind}", "key": "")"));
    sink.start();
    EventBatch batch;
    for (int i = 0; i < 10; ++i)
        batch.push_back(make_event(1, i, i % 2 ? "incident" : "entry"));
    batch.push_back(make_event(1, 10, "door/open"));  // '/' is not legal in a topic name
    batch.push_back(make_event(1, 11, ""));           // no kind: the payload has none either
    sink.write(batch);
    sink.flush();
    sink.stop();
    EXPECT_EQ(consume_all(cluster.bootstraps(), "ks.entry", 2).size(), 5u);
    EXPECT_EQ(consume_all(cluster.bootstraps(), "ks.incident", 2).size(), 5u);
    auto odd = consume_all(cluster.bootstraps(), "ks.door_open", 2);
    ASSERT_EQ(odd.size(), 1u);
    EXPECT_FALSE(odd[0].key.has_value());  // "key": "" sends none
    EXPECT_EQ(consume_all(cluster.bootstraps(), "ks.unknown", 2).size(), 1u);
}

// An event librdkafka refuses for good is counted and logged; the others are delivered.
TEST_F(KafkaSinkTest, PermanentRefusalIsCountedAndTheRestDelivered) {
    cluster.create_topic("ks.entries", 2);
    configure(with_brokers(R"("topic": "ks.entries", "properties": {"message.max.bytes": 2000})"));
    sink.start();
    EventBatch batch = make_batches(20, 2, 20)[0];
    batch[5].payload = R"({"seq":5,"pad":")" + std::string(5000, 'x') + R"("})";
    AckRecorder acks;
    sink.deliver(batch, acks.ack());
    sink.flush();
    sink.stop();
    // Too large for Kafka however often it is sent: refused for good, so its batch can finish.
    EXPECT_EQ(acks.refused(), 1u);
    EXPECT_EQ(acks.delivered(), 19u);
    EXPECT_EQ(acks.lost(), 0u);
    EXPECT_EQ(counter("failed_events"), 1u);
    EXPECT_EQ(counter("delivered_events"), 19u);
    EXPECT_TRUE(context.logger.contains("counted in failed_events"));
    EXPECT_EQ(consume_all(cluster.bootstraps(), "ks.entries", 2).size(), 19u);
}

// A partition leader goes away mid-stream: write() blocks once the in-flight bound is reached (without
// burning CPU), and when the broker is back every event arrives exactly once, in order per key.
TEST_F(KafkaSinkTest, BrokerDownAndUpLosesNothingAndReordersNothing) {
    cluster.create_topic("ks.entries", 6);
    for (int partition = 0; partition < 6; ++partition)  // brokers 1..3 lead two partitions each
        cluster.set_leader("ks.entries", partition, 1 + partition % 3);
    const int limit = 1000;
    // A short reconnect backoff only makes the test quicker once the broker is back.
    configure(with_brokers(
        R"("topic": "ks.entries", "max_in_flight_events": 1000, "properties": {"reconnect.backoff.max.ms": 100})"));
    sink.start();
    const int count = 12000;
    // Enough keys that every partition, and so every broker, gets some.
    auto batches = make_batches(count, 240, 250);

    clockid_t writer_clock;
    pthread_getcpuclockid(pthread_self(), &writer_clock);
    std::atomic<bool> blocked_seen{false};
    double blocked_cpu = -1, blocked_wall = 0;
    std::thread helper;

    for (std::size_t i = 0; i < batches.size(); ++i) {
        if (i == batches.size() / 4) {
            cluster.set_down(2);
            helper = std::thread([&] {
                // Wait for the queue to fill, then watch the blocked writer for a while before the broker returns.
                auto deadline = std::chrono::steady_clock::now() + 20s;
                while (context.metric_registry.gauges["in_flight_events"].value() < limit - 1 &&
                       std::chrono::steady_clock::now() < deadline)
                    std::this_thread::sleep_for(5ms);
                blocked_seen = context.metric_registry.gauges["in_flight_events"].value() >= limit - 1;
                double cpu0 = thread_cpu_seconds(writer_clock);
                auto wall0 = std::chrono::steady_clock::now();
                std::this_thread::sleep_for(400ms);  // the observation window, not a synchronisation
                blocked_cpu = thread_cpu_seconds(writer_clock) - cpu0;
                blocked_wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
                cluster.set_up(2);
            });
        }
        sink.write(batches[i]);
    }
    helper.join();
    sink.flush();
    EXPECT_TRUE(blocked_seen.load());
    EXPECT_LT(blocked_cpu, blocked_wall * 0.1) << "write() spun while the queue was full";
    EXPECT_EQ(counter("delivered_events"), static_cast<std::uint64_t>(count));
    EXPECT_EQ(counter("undelivered_events"), 0u);
    EXPECT_EQ(counter("failed_events"), 0u);
    EXPECT_EQ(counter("retried_events"), 0u) << "the sink produced events again";
    EXPECT_EQ(counter("producer_restarts"), 0u);
    sink.stop();
    const std::size_t copies =
        expect_all_in_order_counting_copies(consume_all(cluster.bootstraps(), "ks.entries", 6), count);
    RecordProperty("copies_added_by_the_mock_broker", static_cast<int>(copies));
}

// Produce requests fail with retriable errors and lost connections; the idempotent producer's retries must
// neither lose nor duplicate.
TEST_F(KafkaSinkTest, RetriableProduceErrorsLoseNothingAndDuplicateNothing) {
    cluster.create_topic("ks.entries", 4);
    configure(with_brokers(R"("topic": "ks.entries")"));
    sink.start();
    auto batches = make_batches(4000, 8, 200);
    for (std::size_t i = 0; i < batches.size(); ++i) {
        if (i % 5 == 1)
            rd_kafka_mock_push_request_errors(cluster.get(), 0 /* Produce */, 4,
                                              RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR__TRANSPORT,
                                              RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                              RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
        sink.write(batches[i]);
    }
    sink.flush();
    EXPECT_EQ(counter("delivered_events"), 4000u);
    sink.stop();
    expect_exactly_once_in_order(consume_all(cluster.bootstraps(), "ks.entries", 4), 4000);
}

// A fatal error makes the producer unusable: the sink recreates it and produces again what was not acknowledged.
TEST_F(KafkaSinkTest, FatalErrorRecreatesTheProducerAndResendsUnacknowledged) {
    cluster.create_topic("ks.entries", 4);
    // A long linger keeps the second part in librdkafka's queue until the fatal error purges it.
    configure(with_brokers(R"("topic": "ks.entries", "properties": {"linger.ms": 60000})"));
    sink.start();
    auto batches = make_batches(3000, 6, 500);
    AckRecorder acks;
    sink.deliver(batches[0], acks.ack());
    sink.deliver(batches[1], acks.ack());
    sink.flush();  // the first 1000 acknowledged
    ASSERT_EQ(counter("delivered_events"), 1000u);
    ASSERT_EQ(acks.delivered(), 1000u);
    sink.deliver(batches[2], acks.ack());
    sink.deliver(batches[3], acks.ack());
    ASSERT_EQ(rd_kafka_test_fatal_error(sink.producer_for_testing(), RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                        "raised by the test"),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    sink.deliver(batches[4], acks.ack());
    sink.deliver(batches[5], acks.ack());
    sink.flush();
    // The purged copies settle nothing; the re-sent ones settle their events once.
    EXPECT_EQ(acks.delivered(), 3000u);
    EXPECT_EQ(acks.settled(), 3000u);
    EXPECT_EQ(counter("producer_restarts"), 1u);
    EXPECT_EQ(counter("retried_events"), 1000u);
    EXPECT_EQ(counter("delivered_events"), 3000u);
    EXPECT_EQ(counter("undelivered_events"), 0u);
    EXPECT_TRUE(context.logger.contains("fatal producer error"));
    sink.stop();
    expect_exactly_once_in_order(consume_all(cluster.bootstraps(), "ks.entries", 4), 3000);
}

// All brokers gone at shutdown: flush gives up after flush_timeout_ms and says exactly how many events were
// not delivered.
TEST_F(KafkaSinkTest, ShutdownWithBrokersDownCountsWhatWasNotDelivered) {
    cluster.create_topic("ks.entries", 3);
    configure(with_brokers(R"("topic": "ks.entries", "flush_timeout_ms": 300)"));
    sink.start();
    AckRecorder acks;
    sink.deliver(make_batches(100, 4, 100)[0], acks.ack());
    sink.flush();
    ASSERT_EQ(counter("delivered_events"), 100u);
    for (int b = 1; b <= 3; ++b)
        cluster.set_down(b);
    sink.deliver(make_batches(250, 4, 250, 100)[0], acks.ack());
    auto t0 = std::chrono::steady_clock::now();
    sink.flush();
    auto took = std::chrono::steady_clock::now() - t0;
    sink.stop();
    EXPECT_GE(took, 250ms);
    EXPECT_LT(took, 3s);
    EXPECT_EQ(counter("delivered_events"), 100u);
    EXPECT_EQ(counter("undelivered_events"), 250u);
    EXPECT_TRUE(context.logger.contains("250 events were not delivered")) << "log says how many";
    // Abandoned at shutdown: not delivered, so left unsettled for the source to send again after a restart.
    EXPECT_EQ(acks.delivered(), 100u);
    EXPECT_EQ(acks.settled(), 100u);
}

// Once the host is stopping, a write() held back by a full queue gives up at the flush deadline instead of
// outlasting the grace period, and counts every event it could not hand over.
TEST_F(KafkaSinkTest, BlockedWriteGivesUpWhenStoppingAndCountsEveryEvent) {
    cluster.create_topic("ks.entries", 3);
    configure(with_brokers(R"("topic": "ks.entries", "flush_timeout_ms": 300, "max_in_flight_events": 100)"));
    sink.start();
    for (int b = 1; b <= 3; ++b)
        cluster.set_down(b);
    context.stop_requested = true;
    auto t0 = std::chrono::steady_clock::now();
    AckRecorder acks;
    sink.deliver(make_batches(1000, 4, 1000)[0], acks.ack());
    sink.flush();
    auto took = std::chrono::steady_clock::now() - t0;
    sink.stop();
    EXPECT_EQ(acks.settled(), 0u);
    EXPECT_LT(took, 3s);
    EXPECT_EQ(counter("delivered_events") + counter("undelivered_events"), 1000u);
    EXPECT_EQ(counter("undelivered_events"), 1000u);
}

// While every broker is away nothing is settled, however long the sink keeps trying; once they are back each
// event is settled as delivered, once.
TEST_F(KafkaSinkTest, NothingIsSettledWhileTheBrokersAreDownAndEverythingOnceTheyAreBack) {
    cluster.create_topic("ks.entries", 3);
    configure(with_brokers(R"("topic": "ks.entries", "properties": {"reconnect.backoff.max.ms": 100})"));
    sink.start();
    for (int b = 1; b <= 3; ++b)
        cluster.set_down(b);
    AckRecorder acks;
    for (const EventBatch& batch : make_batches(300, 6, 100))
        sink.deliver(batch, acks.ack());
    // The producer has tried and failed: librdkafka reported the brokers as down.
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (counter("producer_errors") < 2 && std::chrono::steady_clock::now() < deadline)
        sink.tick();
    ASSERT_GE(counter("producer_errors"), 2u);
    EXPECT_EQ(acks.settled(), 0u);
    EXPECT_EQ(gauge("in_flight_events"), 300);

    for (int b = 1; b <= 3; ++b)
        cluster.set_up(b);
    sink.flush();
    EXPECT_EQ(acks.delivered(), 300u);
    EXPECT_EQ(acks.settled(), 300u);
    EXPECT_EQ(counter("undelivered_events"), 0u);
    sink.stop();
    EXPECT_EQ(consume_all(cluster.bootstraps(), "ks.entries", 3).size(), 300u);
}

// A permanent error about the cluster rather than the event (here: not authorised for the topic) loses the
// event: its source keeps its checkpoint before it, and a restart after the fix sends it again.
TEST_F(KafkaSinkTest, AnAuthorisationFailureIsLostNotRefused) {
    cluster.create_topic("ks.entries", 1);
    configure(with_brokers(R"("topic": "ks.entries", "idempotent": false, "properties": {"retries": 0})"));
    sink.start();
    AckRecorder first;
    sink.deliver(make_batches(10, 1, 10)[0], first.ack());
    sink.flush();
    ASSERT_EQ(first.delivered(), 10u);
    rd_kafka_mock_push_request_errors(cluster.get(), 0 /* Produce */, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    AckRecorder acks;
    sink.deliver(make_batches(1, 1, 1, 10)[0], acks.ack());
    sink.flush();
    sink.stop();
    EXPECT_EQ(acks.lost(), 1u);
    EXPECT_EQ(acks.settled(), 1u);
    EXPECT_EQ(counter("failed_events"), 1u);
}

// The id header is the same however often an event is sent: two sink instances (two runs of the host, say)
// delivering the same events give every copy the same id, the event's own id or a hash of its payload.
TEST_F(KafkaSinkTest, TheIdHeaderIsTheSameWhenTheSameEventsAreSentAgain) {
    cluster.create_topic("ks.entries", 2);
    EventBatch batch = make_batches(20, 2, 20)[0];
    Event door_7, door_8;
    door_7.payload = R"({"door":"D-7","state":"open"})";  // no id metadata
    door_8.payload = R"({"door":"D-8","state":"open"})";
    batch.push_back(door_7);
    batch.push_back(door_8);
    for (int run = 0; run < 2; ++run) {
        FakeContext run_context("bus");
        KafkaSink run_sink;
        Value config = hubflow::testing::node_config(KafkaSink::describe(), with_brokers(R"("topic": "ks.entries")"));
        run_sink.configure(ConfigView(config), run_context);
        run_sink.start();
        AckRecorder acks;
        run_sink.deliver(batch, acks.ack());
        run_sink.flush();
        run_sink.stop();
        ASSERT_EQ(acks.delivered(), batch.size());
    }
    std::map<std::string, std::vector<std::string>> ids_by_payload;
    for (const Record& r : consume_all(cluster.bootstraps(), "ks.entries", 2))
        ids_by_payload[r.payload].push_back(r.headers.at("hubflow-id"));
    ASSERT_EQ(ids_by_payload.size(), batch.size());
    for (const auto& [payload, ids] : ids_by_payload) {
        ASSERT_EQ(ids.size(), 2u) << payload;
        EXPECT_EQ(ids[0], ids[1]) << payload;
    }
    // SHA-256 of the payload (sha256sum), its first 128 bits.
    EXPECT_EQ(ids_by_payload[door_7.payload][0], "8a4aac2c9775344b2c837119205f99f5");
    EXPECT_EQ(ids_by_payload[door_8.payload][0], "4b47a52b9ecc1cc9faf31f9e72360b13");
    EXPECT_EQ(ids_by_payload[batch[3].payload][0], batch[3].meta.id);

    std::string out;
    KafkaSink::stable_id(door_7, out);
    EXPECT_EQ(out, "8a4aac2c9775344b2c837119205f99f5");
}

// A sink that throws has delivered nothing it did not report: the events are lost, so the batch still ends.
TEST_F(KafkaSinkTest, ABatchRefusedByThrowingIsLost) {
    configure(with_brokers(R"("topic": "ks.entries")"));
    AckRecorder acks;
    EXPECT_THROW(sink.deliver(make_batches(5, 1, 5)[0], acks.ack()), std::runtime_error);  // not started
    EXPECT_EQ(acks.lost(), 5u);
    EXPECT_EQ(acks.settled(), 5u);
}

TEST_F(KafkaSinkTest, IdleTicksServeDeliveryReports) {
    cluster.create_topic("ks.entries", 2);
    configure(with_brokers(R"("topic": "ks.entries")"));
    sink.start();
    sink.write(make_batches(10, 2, 10)[0]);
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (counter("delivered_events") < 10 && std::chrono::steady_clock::now() < deadline)
        sink.tick();  // the host calls tick() on idle nodes every tick_interval()
    EXPECT_EQ(counter("delivered_events"), 10u);
    sink.stop();
}

class KafkaConfigTest : public ::testing::Test {
protected:
    // The key the ConfigError names, or "" when configure() accepted the settings.
    std::string error_key(const std::string& json, std::string* detail = nullptr) {
        hubflow::testing::FakeContext context("bus");
        KafkaSink sink;
        Value config = hubflow::testing::node_config(KafkaSink::describe(), json);
        try {
            sink.configure(ConfigView(config), context);
        } catch (const ConfigError& e) {
            if (detail) *detail = e.detail();
            return e.key();
        }
        return "";
    }
};

TEST_F(KafkaConfigTest, AcceptsAFullConfiguration) {
    EXPECT_EQ(error_key(R"({"brokers": "127.0.0.1:9092", "topic": "ks.{kind}.%Y", "key": "payload.lock.id",
                            "headers": false, "compression": "zstd", "idempotent": false,
                            "properties": {"acks": "1", "linger.ms": 20, "socket.keepalive.enable": true}})"),
              "");
}

TEST_F(KafkaConfigTest, MissingBrokers) {
    EXPECT_EQ(error_key(R"({"topic": "t"})"), "brokers");
    EXPECT_EQ(error_key(R"({"brokers": " , ", "topic": "t"})"), "brokers");
}

TEST_F(KafkaConfigTest, UnknownPropertyIsNamedWithLibrdkafkasWords) {
    std::string detail;
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "t", "properties": {"lingr.ms": "5"}})", &detail),
              "properties.lingr.ms");
    EXPECT_NE(detail.find("No such configuration property"), std::string::npos) << detail;
}

TEST_F(KafkaConfigTest, BadPropertyValueIsNamed) {
    std::string detail;
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "t", "properties": {"acks": "sometimes"}})", &detail),
              "properties.acks");
    EXPECT_FALSE(detail.empty());
}

TEST_F(KafkaConfigTest, PropertiesTheSinkOwnsPointToItsKey) {
    std::string detail;
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "t", "properties": {"bootstrap.servers": "x:1"}})", &detail),
              "properties.bootstrap.servers");
    EXPECT_NE(detail.find("brokers"), std::string::npos);
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "t", "properties": {"enable.idempotence": "false"}})"),
              "properties.enable.idempotence");
}

TEST_F(KafkaConfigTest, CombinationLibrdkafkaRefuses) {
    std::string detail;
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "t", "properties": {"acks": "1"}})", &detail), "properties");
    EXPECT_NE(detail.find("acks"), std::string::npos) << detail;
}

TEST_F(KafkaConfigTest, BadCompression) {
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "t", "compression": "brotli"})"), "compression");
}

TEST_F(KafkaConfigTest, BadTopicKeyAndHeaders) {
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "ks entries"})"), "topic");
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "ks.{kind"})"), "topic");
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "ks.%H:%M"})"), "topic");
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "t", "key": "lock..id"})"), "key");
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "t", "headers": ["kind", "door"]})"), "headers");
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "t", "headers": "yes"})"), "headers");
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "t", "max_in_flight_events": 0})"), "max_in_flight_events");
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "t", "id_header": "site_id"})"), "id_header");
    EXPECT_EQ(error_key(R"({"brokers": "b:1", "topic": "t", "headers": ["kind"], "id_header": "site_id"})"), "");
}

}  // namespace
