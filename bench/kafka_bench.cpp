// The `kafka` sink against a bare librdkafka producer loop, both producing the same messages into librdkafka's
// mock cluster with the same properties. bench/cases/kafka runs it side by side.
//
//   bench_kafka MODE COUNT [BATCH]
//     MODE  sink         KafkaSink::write() per batch of BATCH events, then flush()
//           bare         rd_kafka_producev() per message with RD_KAFKA_MSG_F_COPY, poll per batch, flush
//           bare-nocopy  the same without F_COPY: payloads stay in the caller's events until the end
// Prints one JSON object: events, delivered, wall_s, cpu_s. The events (KsEventFactory, seed 7, with the
// metadata a generator node stamps) are made before the clock starts; the mock cluster runs in this process,
// so cpu_s includes the brokers' threads, the same for every mode.

#include <librdkafka/rdkafka.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "hubflow/config.h"
#include "hubflow/json.h"
#include "hubflow/testing/fake_context.h"
#include "hubflow/testing/node_config.h"
#include "kafka_sink.h"
#include "ks_event_factory.h"
#include "mock_kafka.h"

namespace {

using hubflow::Event;
using hubflow::EventBatch;

constexpr const char* topic_name = "ks.bench";
constexpr int partitions = 6;

double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::vector<EventBatch> make_events(long long count, long long batch) {
    hubflow::generator::KsEventFactoryOptions options;
    options.seed = 7;
    hubflow::generator::KsEventFactory factory(options);
    std::vector<EventBatch> out;
    auto now = std::chrono::system_clock::now();
    for (long long i = 0; i < count; ++i) {
        if (i % batch == 0) out.emplace_back();
        Event& e = out.back().emplace_back();
        factory.next(e);
        e.meta.source = "gen";
        e.meta.received_at = now + std::chrono::microseconds(i);
    }
    return out;
}

// The properties the sink sets by default, so both sides produce the same way.
void set_sink_defaults(rd_kafka_conf_t* conf, const std::string& brokers) {
    char errstr[512];
    const char* pairs[][2] = {{"bootstrap.servers", brokers.c_str()},
                              {"message.timeout.ms", "0"},
                              {"compression.type", "none"},
                              {"enable.idempotence", "true"},
                              {"queue.buffering.max.messages", "100000"},
                              {"queue.buffering.max.kbytes", "65536"}};
    for (auto& [k, v] : pairs)
        if (rd_kafka_conf_set(conf, k, v, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
            std::fprintf(stderr, "%s\n", errstr);
            std::exit(1);
        }
}

long long bare_delivered = 0;

void count_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    if (!m->err) ++bare_delivered;
}

// What a plain librdkafka program sends for each event: key site_id, the six metadata headers, the event time.
rd_kafka_t* make_bare_producer(const std::string& brokers) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    set_sink_defaults(conf, brokers);
    rd_kafka_conf_set_dr_msg_cb(conf, count_delivery);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        std::fprintf(stderr, "%s\n", errstr);
        std::exit(1);
    }
    return rk;
}

long long run_bare(rd_kafka_t* rk, rd_kafka_topic_t* rkt, const std::vector<EventBatch>& batches, bool copy) {
    std::string received;
    std::int64_t received_second = -1;
    for (const EventBatch& batch : batches) {
        for (const Event& e : batch) {
            auto second = std::chrono::floor<std::chrono::seconds>(e.meta.received_at.time_since_epoch()).count();
            if (second != received_second) {
                received_second = second;
                received = hubflow::format_utc(e.meta.received_at);
            }
            auto ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(e.meta.received_at.time_since_epoch()).count();
            for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(copy ? RD_KAFKA_MSG_F_COPY : 0),
                    RD_KAFKA_V_VALUE(const_cast<char*>(e.payload.data()), e.payload.size()),
                    RD_KAFKA_V_KEY(e.meta.site_id.data(), e.meta.site_id.size()), RD_KAFKA_V_TIMESTAMP(ms),
                    RD_KAFKA_V_HEADER("kind", e.meta.kind.data(), static_cast<ssize_t>(e.meta.kind.size())),
                    RD_KAFKA_V_HEADER("site_id", e.meta.site_id.data(), static_cast<ssize_t>(e.meta.site_id.size())),
                    RD_KAFKA_V_HEADER("user_id", e.meta.user_id.data(), static_cast<ssize_t>(e.meta.user_id.size())),
                    RD_KAFKA_V_HEADER("id", e.meta.id.data(), static_cast<ssize_t>(e.meta.id.size())),
                    RD_KAFKA_V_HEADER("source", e.meta.source.data(), static_cast<ssize_t>(e.meta.source.size())),
                    RD_KAFKA_V_HEADER("received_at", received.data(), static_cast<ssize_t>(received.size())),
                    RD_KAFKA_V_END);
                if (!err) break;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                    std::fprintf(stderr, "produce: %s\n", rd_kafka_err2str(err));
                    std::exit(1);
                }
                rd_kafka_poll(rk, 100);
            }
        }
        rd_kafka_poll(rk, 0);
    }
    while (rd_kafka_outq_len(rk) > 0)
        rd_kafka_flush(rk, 1000);
    return bare_delivered;
}

long long run_sink(hubflow::kafka::KafkaSink& sink, hubflow::testing::FakeContext& context,
                   const std::vector<EventBatch>& batches) {
    for (const EventBatch& batch : batches)
        sink.write(batch);
    sink.flush();
    return static_cast<long long>(context.metric_registry.counters["delivered_events"].value());
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s sink|bare|bare-nocopy COUNT [BATCH]\n", argv[0]);
        return 64;
    }
    std::string mode = argv[1];
    const long long count = std::atoll(argv[2]);
    const long long batch = argc > 3 ? std::atoll(argv[3]) : 512;
    if (mode != "sink" && mode != "bare" && mode != "bare-nocopy") {
        std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
        return 64;
    }

    hubflow::kafka::test::MockCluster cluster(3);
    cluster.create_topic(topic_name, partitions);
    std::vector<EventBatch> batches = make_events(count, batch);

    // Both producers are created before the clock starts.
    hubflow::testing::FakeContext context("bus");
    hubflow::kafka::KafkaSink sink;
    rd_kafka_t* bare = nullptr;
    rd_kafka_topic_t* bare_topic = nullptr;
    if (mode != "sink") {
        bare = make_bare_producer(cluster.bootstraps());
        bare_topic = rd_kafka_topic_new(bare, topic_name, nullptr);
    } else {
        hubflow::Value config = hubflow::testing::node_config(
            hubflow::kafka::KafkaSink::describe(),
            R"({"brokers": ")" + cluster.bootstraps() + R"(", "topic": ")" + topic_name + R"("})");
        sink.configure(hubflow::ConfigView(config), context);
        sink.start();
    }

    auto wall_start = std::chrono::steady_clock::now();
    double cpu_start = cpu_seconds();
    long long delivered =
        mode == "sink" ? run_sink(sink, context, batches) : run_bare(bare, bare_topic, batches, mode == "bare");
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    double cpu = cpu_seconds() - cpu_start;
    if (mode == "sink") sink.stop();
    if (bare) {
        rd_kafka_topic_destroy(bare_topic);
        rd_kafka_destroy(bare);
    }

    std::printf("{\"mode\":\"%s\",\"events\":%lld,\"delivered\":%lld,\"wall_s\":%.6f,\"cpu_s\":%.6f}\n", mode.c_str(),
                count, delivered, wall, cpu);
    return delivered == count ? 0 : 2;
}
