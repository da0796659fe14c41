#pragma once
// librdkafka's in-process mock cluster and a consumer that reads a topic back, for the kafka sink's tests and
// benchmark. The mock brokers listen on loopback, so another process (the real hubflow program) can produce
// into them too.

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace hubflow::kafka::test {

class MockCluster {
public:
    explicit MockCluster(int brokers = 3) {
        char errstr[512];
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof errstr);
        handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
        if (!handle_) throw std::runtime_error(errstr);
        cluster_ = rd_kafka_mock_cluster_new(handle_, brokers);
        if (!cluster_) throw std::runtime_error("cannot create the mock cluster");
    }
    ~MockCluster() {
        rd_kafka_mock_cluster_destroy(cluster_);
        rd_kafka_destroy(handle_);
    }
    MockCluster(const MockCluster&) = delete;
    MockCluster& operator=(const MockCluster&) = delete;

    std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
    rd_kafka_mock_cluster_t* get() const { return cluster_; }

    void create_topic(const std::string& name, int partitions, int replication = 1) {
        if (rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, replication))
            throw std::runtime_error("cannot create topic " + name);
    }
    // The mock picks each partition's leader at random; a test that takes a broker down names its leaders.
    void set_leader(const std::string& topic, int partition, int broker) {
        if (rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker))
            throw std::runtime_error("cannot set the leader of " + topic + "/" + std::to_string(partition));
    }
    void set_down(int broker) { rd_kafka_mock_broker_set_down(cluster_, broker); }
    void set_up(int broker) { rd_kafka_mock_broker_set_up(cluster_, broker); }

private:
    rd_kafka_t* handle_ = nullptr;
    rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

struct Record {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::optional<std::string> key;
    std::string payload;
    std::map<std::string, std::string> headers;
    std::vector<std::string> header_order;
    std::int64_t timestamp_ms = 0;
};

// Reads every message of `topic` (partitions 0..partitions-1) from the start up to the high watermarks at the
// time of the call; the watermarks say exactly how many messages the log holds, so duplicates show as extra
// records. Throws when the deadline passes first.
inline std::vector<Record> consume_all(const std::string& bootstraps, const std::string& topic, int partitions,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    auto set = [&](const char* k, const char* v) {
        if (rd_kafka_conf_set(conf, k, v, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) throw std::runtime_error(errstr);
    };
    set("bootstrap.servers", bootstraps.c_str());
    set("group.id", "hubflow-test-reader");
    set("enable.auto.commit", "false");
    set("enable.partition.eof", "false");
    set("log_level", "0");
    rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!consumer) throw std::runtime_error(errstr);
    rd_kafka_poll_set_consumer(consumer);

    auto deadline = std::chrono::steady_clock::now() + timeout;
    int ms = static_cast<int>(timeout.count());
    std::vector<std::int64_t> high(static_cast<std::size_t>(partitions), 0);
    std::int64_t expected = 0;
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) {
        std::int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(consumer, topic.c_str(), p, &lo, &hi, ms);
        if (err) {
            rd_kafka_topic_partition_list_destroy(list);
            rd_kafka_destroy(consumer);
            throw std::runtime_error("watermarks of " + topic + ": " + rd_kafka_err2str(err));
        }
        high[static_cast<std::size_t>(p)] = hi;
        expected += hi - lo;
        // The exact offset, not RD_KAFKA_OFFSET_BEGINNING: that one costs an offset lookup which, on a fresh
        // connection, is retried after half a second.
        if (hi > lo) rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = lo;
    }
    rd_kafka_assign(consumer, list);
    rd_kafka_topic_partition_list_destroy(list);

    std::vector<Record> out;
    while (static_cast<std::int64_t>(out.size()) < expected && std::chrono::steady_clock::now() < deadline) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
        if (!m) continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->offset >= high[static_cast<std::size_t>(m->partition)]) {
            rd_kafka_message_destroy(m);
            continue;
        }
        Record r;
        r.topic = rd_kafka_topic_name(m->rkt);
        r.partition = m->partition;
        r.offset = m->offset;
        if (m->key) r.key.emplace(static_cast<const char*>(m->key), m->key_len);
        r.payload.assign(static_cast<const char*>(m->payload), m->len);
        rd_kafka_timestamp_type_t type;
        r.timestamp_ms = rd_kafka_message_timestamp(m, &type);
        rd_kafka_headers_t* headers = nullptr;
        if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const char* name;
            const void* value;
            size_t size;
            for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == 0; ++i) {
                r.headers[name] = std::string(static_cast<const char*>(value), size);
                r.header_order.emplace_back(name);
            }
        }
        out.push_back(std::move(r));
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    if (static_cast<std::int64_t>(out.size()) < expected)
        throw std::runtime_error("read " + std::to_string(out.size()) + " of " + std::to_string(expected) +
                                 " messages of " + topic + " before the deadline");
    return out;
}

}  // namespace hubflow::kafka::test
