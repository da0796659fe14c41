#pragma once
// The `kafka` sink: produces each event's payload as one Kafka message through librdkafka.
//
// Delivery: an event counts as delivered only when librdkafka's delivery report says the brokers acknowledged
// it (`delivered_events`), and that report is what settles it on the batch's BatchAck (SDK 1.2): each message's
// opaque is its sequence number, and `pending_` maps sequence numbers back to the BatchAck of the batch they
// came in. deliver() returns once every event of the batch has been handed to librdkafka, which
// owns a copy of it from then on (RD_KAFKA_MSG_F_COPY: the host frees a batch when deliver() returns, and a copy
// into librdkafka's own message allocation costs less than keeping events alive in a side structure; see
// the kafka case in bench/results/REPORT.md). librdkafka's queue is bounded by `max_in_flight_events` and
// `max_in_flight_bytes`; while it is full write() blocks in rd_kafka_poll(), which sleeps until a delivery report frees
// room. That is the backpressure upstream: it never spins, and it checks every 100 ms whether the host is stopping.
//
// Nothing accepted is dropped silently. By default librdkafka never times a message out
// (message.timeout.ms = 0): while the brokers are down events wait in the queue, unsettled, and upstream is
// held back. Messages that come back with a transient error (timed out when a timeout is set, purged by a
// producer restart) are produced again, in their original order, and counted in `retried_events`; they are
// settled only by the report of the copy that gets through. Permanent errors are counted in `failed_events` and
// logged with librdkafka's reason; an event Kafka can never take (too large, an invalid record) is settled as
// refused, any other (authorisation, an unknown topic, ...) as lost, so that its source keeps its checkpoint
// before it and a restart, once the cause is fixed, sends it again.
//
// Every message carries a header (`id_header`, "hubflow-id" by default) with an id that is the same whenever
// the same event is produced again, by this sink after a retry or by the next run after a crash: the event's
// own `id` metadata when it has one, else the first 128 bits of SHA-256 of its payload in lowercase hex.
//
// A fatal producer error (rd_kafka_fatal_error, e.g. the idempotent producer losing its sequence) makes the
// producer unusable: the sink purges it, takes every unacknowledged message back from the delivery reports,
// creates a new producer and produces them again (`producer_restarts`).
//
// Shutdown: flush() waits up to `flush_timeout_ms` for the outstanding delivery reports; what is still not
// acknowledged then is purged, counted in `undelivered_events` and logged with its count. Once the host is
// stopping, a deliver() blocked by a full queue gives up at the same deadline, so the sink never outlasts the
// host's grace period because a broker is down. Events abandoned at shutdown are left unsettled: they were not
// delivered, and their sources send them again after a restart.
//
// Threading: every member function is called from the node's own thread, and librdkafka's callbacks (delivery
// reports, errors) are served from rd_kafka_poll()/rd_kafka_flush() on that same thread, so the sink holds no
// locks. Only librdkafka's log callback runs on librdkafka's threads; it touches nothing but the thread-safe
// logger.

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "hubflow/component.h"
#include "hubflow/delivery.h"
#include "hubflow/json.h"
#include "hubflow/schema.h"

namespace hubflow {
class PathTemplate;
}

namespace hubflow::kafka {

class KafkaSink final : public AcknowledgingSink {
public:
    KafkaSink();
    ~KafkaSink() override;
    KafkaSink(const KafkaSink&) = delete;
    KafkaSink& operator=(const KafkaSink&) = delete;

    static ComponentDescription describe();

    // Checks every librdkafka property against librdkafka itself (each one, then the whole set together), so a
    // mistake is a ConfigError naming the key with librdkafka's own words. Opens no connection.
    void configure(const ConfigView& config, Context& context) override;
    // Creates the producer. Connections are made in the background; an unreachable broker is not an error here,
    // events simply wait for it.
    void start() override;
    void deliver(const EventBatch& batch, BatchAck ack) override;
    // Serves delivery reports and re-sends what came back, between batches.
    void tick() override;
    std::chrono::milliseconds tick_interval() const override { return std::chrono::milliseconds(100); }
    void flush() override;
    void stop() override;

    // The producer handle, for tests that raise a fatal error with rd_kafka_test_fatal_error(). Null before
    // start() and after stop().
    rd_kafka_t* producer_for_testing() const { return producer_; }

    // The id header's value for `event` (see above), appended to `out`.
    static void stable_id(const Event& event, std::string& out);

private:
    // A message taken back from a delivery report to be produced again.
    struct Resend {
        std::uint64_t seq = 0;  // order of the first produce, so re-sends keep each partition's order
        std::string topic;
        std::optional<std::string> key;
        std::string payload;
        std::int64_t timestamp_ms = 0;
        rd_kafka_headers_t* headers = nullptr;  // owned
    };

    // What a message is made of, whichever way it is produced.
    struct Message {
        const std::string* topic = nullptr;  // null: the constant topic
        const std::string* payload = nullptr;
        const std::string* key = nullptr;  // null: no key
        std::int64_t timestamp_ms = 0;
        rd_kafka_headers_t* headers = nullptr;  // copied by librdkafka (not owned by the message)
        const std::vector<std::pair<const char*, std::string_view>>* header_values = nullptr;
        std::uint64_t seq = 0;
    };

    enum class Produced { yes, failed, gave_up };

    // The events of one tracked batch, by sequence number: [first_seq, first_seq + count).
    struct Pending {
        std::uint64_t first_seq = 0;
        std::size_t count = 0;
        std::size_t unsettled = 0;
        std::size_t handed = 0;  // produced, delivery report not yet served
        BatchAck ack;
    };
    enum class Settle { delivered, refused, lost };

    rd_kafka_conf_t* make_conf(bool with_brokers, std::string& error) const;
    void create_producer();
    void destroy_producer();
    rd_kafka_topic_t* topic_handle(const std::string& name);

    // Produces events [i, end) of `batch`; `i` says how far it got when it throws.
    void produce_batch(const EventBatch& batch, std::uint64_t first_seq, std::size_t& i);
    Produced produce(const Message& message);
    // Blocks in rd_kafka_poll() until a delivery report may have freed room; false once the deadline for
    // giving up (shutdown) has passed.
    bool wait_for_room();
    std::optional<std::chrono::steady_clock::time_point> give_up_deadline();
    void serve(int timeout_ms);
    void restart_if_fatal();
    void resend_returned();
    // Purges what is left, counts it as undelivered and says so.
    void abandon_outstanding(const char* when);

    Pending* find_pending(std::uint64_t seq);
    // Settles the event with sequence number `seq` on its batch's BatchAck (nothing for an untracked batch).
    void settle(std::uint64_t seq, Settle how);
    // After a permanent error: refused when Kafka can never take the event, lost otherwise.
    void settle_failed(std::uint64_t seq, rd_kafka_resp_err_t err);
    // Events whose delivery reports a failed producer never served are lost (those it handed back are re-sent).
    void lose_unreturned();

    void on_delivery(const rd_kafka_message_t& message);
    void on_error(int code, const char* reason);
    static void delivery_callback(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);
    static void error_callback(rd_kafka_t* rk, int code, const char* reason, void* opaque);
    static void log_callback(const rd_kafka_t* rk, int level, const char* facility, const char* message);

    void render_headers(const Event& event);
    void update_gauge();

    // Settings.
    std::string brokers_;
    std::unique_ptr<PathTemplate> topic_;
    bool topic_constant_ = false;
    std::optional<FieldPath> key_;
    std::vector<int> headers_;  // metadata header indexes (see kafka_sink.cpp) in the order they are sent
    std::string id_header_;     // "" = no stable id header
    std::string compression_ = "none";
    bool idempotent_ = true;
    std::int64_t max_in_flight_events_ = 0;
    std::int64_t max_in_flight_bytes_ = 0;
    std::chrono::milliseconds flush_timeout_{5000};
    std::vector<std::pair<std::string, std::string>> properties_;

    Context* context_ = nullptr;
    Counter* delivered_ = nullptr;
    Counter* failed_ = nullptr;
    Counter* retried_ = nullptr;
    Counter* undelivered_ = nullptr;
    Counter* producer_errors_ = nullptr;
    Counter* restarts_ = nullptr;
    Gauge* in_flight_gauge_ = nullptr;

    rd_kafka_t* producer_ = nullptr;
    std::unordered_map<std::string, rd_kafka_topic_t*> topics_;
    rd_kafka_topic_t* constant_topic_ = nullptr;

    std::uint64_t next_seq_ = 0;
    std::deque<Pending> pending_;  // tracked batches with events not yet settled, by first_seq
    std::int64_t in_flight_ = 0;   // produced, delivery report not yet served
    std::vector<Resend> resend_;
    bool fatal_ = false;
    bool abandoning_ = false;   // purging at shutdown: reports with errors are undelivered, not re-sent
    std::uint64_t purged_ = 0;  // error reports while abandoning
    bool resending_ = false;
    std::uint64_t abandoned_ = 0;
    std::optional<std::chrono::steady_clock::time_point> shutdown_deadline_;
    std::optional<std::chrono::steady_clock::time_point> flush_deadline_;
    std::string last_error_;

    // Error log rate limiting: the same librdkafka error repeats on every reconnect attempt.
    int last_logged_error_ = 0;
    std::chrono::steady_clock::time_point last_error_log_{};
    std::uint64_t failed_logged_ = 0;

    // Per-event scratch, reused across events.
    std::string topic_name_;
    std::string key_value_;
    std::vector<std::pair<const char*, std::string_view>> header_values_;
    std::int64_t received_second_ = -1;
    std::string received_text_;
    std::string id_value_;
};

}  // namespace hubflow::kafka
