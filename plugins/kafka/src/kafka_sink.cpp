#include "kafka_sink.h"

#include <Poco/DigestEngine.h>
#include <Poco/SHA2Engine.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "hubflow/path_template.h"

namespace hubflow::kafka {

namespace {

using steady = std::chrono::steady_clock;

constexpr std::int64_t default_max_in_flight_events = 100'000;
constexpr std::int64_t default_max_in_flight_bytes = 64 * 1024 * 1024;
constexpr std::int64_t default_flush_timeout_ms = 5000;
// librdkafka's own ceilings for queue.buffering.max.messages and queue.buffering.max.kbytes.
constexpr std::int64_t max_max_in_flight_events = 2'147'483'647;
constexpr std::int64_t max_max_in_flight_bytes = 2'147'483'647LL * 1024;

// How long one blocking wait lasts before the sink looks at the host again.
constexpr int poll_slice_ms = 100;
// After a purge, librdkafka hands back the purged messages at once; this only bounds a broken case.
constexpr auto purge_wait = std::chrono::seconds(2);
constexpr auto error_log_interval = std::chrono::seconds(30);

// Kafka's limit on topic names; longer rendered names are cut.
constexpr std::size_t max_topic_length = 249;

// Metadata that can travel as headers, by index; the header name is the metadata name.
constexpr std::array<const char*, 6> metadata_headers = {"kind", "site_id", "user_id", "id", "source", "received_at"};
constexpr const char* default_id_header = "hubflow-id";

// Properties the sink sets from its own keys: setting them twice would leave one of them silently unused.
struct Owned {
    const char* property;
    const char* key;
};
constexpr std::array<Owned, 7> owned_properties = {{{"bootstrap.servers", "brokers"},
                                                    {"metadata.broker.list", "brokers"},
                                                    {"compression.type", "compression"},
                                                    {"compression.codec", "compression"},
                                                    {"enable.idempotence", "idempotent"},
                                                    {"queue.buffering.max.messages", "max_in_flight_events"},
                                                    {"queue.buffering.max.kbytes", "max_in_flight_bytes"}}};

bool legal_topic_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

// Event data is untrusted: whatever a placeholder rendered, the name that reaches librdkafka is a legal topic.
void make_legal_topic(std::string& name) {
    for (char& c : name)
        if (!legal_topic_char(c)) c = '_';
    if (name.size() > max_topic_length) name.resize(max_topic_length);
}

// Errors after which the same message can be produced again without breaking a promise: nothing says the
// brokers refused it, only that this producer could not get it acknowledged.
bool worth_resending(rd_kafka_resp_err_t err) {
    switch (err) {
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
        case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
        case RD_KAFKA_RESP_ERR__FATAL:
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
        case RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
        case RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID:
            return true;
        default:
            return false;
    }
}

// Errors that say Kafka can never take this message, however often it is sent: the event is refused for good
// (finished, counted). Any other permanent error is about the cluster or the settings (authorisation, an unknown
// topic, ...), which an operator can fix, so the event is lost and its source sends it again after a restart.
bool never_acceptable(rd_kafka_resp_err_t err) {
    switch (err) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_INVALID_MSG:
        case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        case RD_KAFKA_RESP_ERR__BAD_MSG:
            return true;
        default:
            return false;
    }
}

std::string value_text(const Value& v) {
    switch (v.type()) {
        case Value::Type::string:
            return v.as_string();
        case Value::Type::boolean:
            return v.as_bool() ? "true" : "false";
        case Value::Type::number:
            if (v.is_integer()) return std::to_string(v.as_int());
            {
                std::string s = std::to_string(v.as_double());
                s.erase(s.find_last_not_of('0') + 1);
                if (!s.empty() && s.back() == '.') s.pop_back();
                return s;
            }
        default:
            return {};
    }
}

std::int64_t millis_of(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

int millis_until(steady::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    return static_cast<int>(std::clamp<std::int64_t>(left, 0, poll_slice_ms));
}

}  // namespace

KafkaSink::KafkaSink() = default;

KafkaSink::~KafkaSink() {
    destroy_producer();
}

ComponentDescription KafkaSink::describe() {
    return {"kafka",
            ComponentKind::sink,
            "Kafka producer (librdkafka): topic template, key from a field, metadata headers, idempotent by default",
            {{.name = "brokers",
              .type = FieldType::string,
              .required = true,
              .doc = "bootstrap brokers, host:port[,host:port...]"},
             {.name = "topic",
              .type = FieldType::string,
              .required = true,
              .doc = "topic; {field} placeholders (e.g. ks.{kind}) and strftime % fields (UTC, from received_at)"},
             {.name = "key",
              .type = FieldType::string,
              .default_json = "\"site_id\"",
              .doc = "field whose value is the message key (same key, same partition, kept in order); \"\" = none"},
             {.name = "headers",
              .type = FieldType::any,
              .default_json = "true",
              .doc = "metadata as message headers: true (kind, site_id, user_id, id, source, received_at), false, "
                     "or a list of those names"},
             {.name = "id_header",
              .type = FieldType::string,
              .default_json = "\"hubflow-id\"",
              .doc = "header with an id that stays the same when an event is sent again (its id metadata, else "
                     "a SHA-256 of its payload), for receivers to drop repeats; \"\" = none"},
             {.name = "compression",
              .type = FieldType::string,
              .default_json = "\"none\"",
              .doc = "none, gzip, snappy, lz4 or zstd"},
             {.name = "idempotent",
              .type = FieldType::boolean,
              .default_json = "true",
              .doc = "idempotent producer: broker retries never duplicate or reorder a partition's messages"},
             {.name = "max_in_flight_events",
              .type = FieldType::integer,
              .default_json = std::to_string(default_max_in_flight_events),
              .doc = "events handed to librdkafka and not yet acknowledged; beyond it write blocks (backpressure)"},
             {.name = "max_in_flight_bytes",
              .type = FieldType::integer,
              .default_json = std::to_string(default_max_in_flight_bytes),
              .doc = "the same bound in bytes (librdkafka counts it in KiB)"},
             {.name = "flush_timeout_ms",
              .type = FieldType::integer,
              .default_json = std::to_string(default_flush_timeout_ms),
              .doc = "at shutdown: how long to wait for acknowledgements before counting the rest undelivered"},
             {.name = "properties",
              .type = FieldType::map,
              .default_json = "{}",
              .doc = "librdkafka properties passed through (acks, linger.ms, security.protocol, ...)"}}};
}

void KafkaSink::configure(const ConfigView& config, Context& context) {
    context_ = &context;

    brokers_ = config.string("brokers");
    if (brokers_.find_first_not_of(" ,") == std::string::npos)
        throw config.error("brokers", "must name at least one broker as host:port");

    std::string topic = config.string("topic");
    for (std::size_t i = 0, depth = 0; i < topic.size(); ++i) {
        char c = topic[i];
        if (c == '{') ++depth;
        if (c == '}' && depth > 0) --depth;
        if (depth == 0 && c != '}' && c != '%' && !legal_topic_char(c))
            throw config.error("topic", std::string("has '") + c +
                                            "', which a Kafka topic name cannot hold (letters, digits, '.', '_', '-')");
    }
    try {
        topic_ = std::make_unique<PathTemplate>(topic);
    } catch (const std::invalid_argument& e) {
        throw config.error("topic", e.what());
    }
    topic_constant_ = !topic_->has_fields() && !topic_->has_time();
    {
        // strftime runs may render to anything; look at what they give.
        std::string sample;
        topic_->render(Event{}, 0, sample);
        for (char c : sample)
            if (!legal_topic_char(c))
                throw config.error("topic", "renders as '" + sample + "', which is not a legal Kafka topic name");
        if (sample.size() > max_topic_length)
            throw config.error("topic", "is longer than Kafka's limit of 249 characters");
        if (topic_constant_ && (sample == "." || sample == ".."))
            throw config.error("topic", "'" + sample + "' is not a legal Kafka topic name");
    }

    std::string key = config.string_or("key", "site_id");
    key_.reset();
    if (!key.empty()) {
        try {
            key_.emplace(key);
        } catch (const std::invalid_argument& e) {
            throw config.error("key", e.what());
        }
    }

    headers_.clear();
    const Value* headers = config.find("headers");
    if (!headers || headers->is_null() || (headers->is_bool() && headers->as_bool())) {
        for (int i = 0; i < static_cast<int>(metadata_headers.size()); ++i)
            headers_.push_back(i);
    } else if (headers->is_array()) {
        for (const std::string& name : config.strings("headers")) {
            auto it = std::find_if(metadata_headers.begin(), metadata_headers.end(),
                                   [&](const char* m) { return name == m; });
            if (it == metadata_headers.end())
                throw config.error("headers", "'" + name +
                                                  "' is not metadata; use kind, site_id, user_id, id, source or "
                                                  "received_at");
            int index = static_cast<int>(it - metadata_headers.begin());
            if (std::find(headers_.begin(), headers_.end(), index) == headers_.end()) headers_.push_back(index);
        }
    } else if (!headers->is_bool()) {
        throw config.error("headers", "expected true, false or a list of metadata names");
    }
    id_header_ = config.string_or("id_header", default_id_header);
    for (int index : headers_)
        if (id_header_ == metadata_headers[static_cast<std::size_t>(index)])
            throw config.error("id_header", "'" + id_header_ +
                                                "' is also a metadata header; choose another name or leave it out "
                                                "of `headers`");

    compression_ = config.has("compression") ? config.one_of("compression", {"none", "gzip", "snappy", "lz4", "zstd"})
                                             : std::string("none");
    idempotent_ = config.boolean_or("idempotent", true);
    max_in_flight_events_ = config.has("max_in_flight_events")
                                ? config.integer_in("max_in_flight_events", 1, max_max_in_flight_events)
                                : default_max_in_flight_events;
    max_in_flight_bytes_ = config.has("max_in_flight_bytes")
                               ? config.integer_in("max_in_flight_bytes", 1024, max_max_in_flight_bytes)
                               : default_max_in_flight_bytes;
    flush_timeout_ =
        std::chrono::milliseconds(config.has("flush_timeout_ms") ? config.integer_in("flush_timeout_ms", 0, 3'600'000)
                                                                 : default_flush_timeout_ms);

    properties_.clear();
    if (config.has("properties")) {
        const Value& map = config.value("properties");
        if (!map.is_object()) throw config.error("properties", "expected an object of librdkafka properties");
        for (const auto& [name, value] : map.as_object()) {
            std::string key_path = "properties." + name;
            if (!value.is_string() && !value.is_number() && !value.is_bool())
                throw ConfigError(config.path_of(key_path), "expected a string, number or boolean", value.position);
            for (const Owned& owned : owned_properties)
                if (name == owned.property)
                    throw ConfigError(config.path_of(key_path),
                                      std::string("is set by the sink's own key '") + owned.key + "'; use that",
                                      value.position);
            // One property at a time, so the error names the key that librdkafka refuses.
            rd_kafka_conf_t* probe = rd_kafka_conf_new();
            char error[512] = "";
            std::string text = value_text(value);
            rd_kafka_conf_res_t res = rd_kafka_conf_set(probe, name.c_str(), text.c_str(), error, sizeof error);
            rd_kafka_conf_destroy(probe);
            if (res != RD_KAFKA_CONF_OK) throw ConfigError(config.path_of(key_path), error, value.position);
            properties_.emplace_back(name, std::move(text));
        }
    }

    // The whole set, checked by librdkafka the way it checks it at start (e.g. idempotence with acks=1). Without
    // brokers this opens no connection.
    std::string error;
    rd_kafka_conf_t* conf = make_conf(false, error);
    if (!conf) throw config.error(error.substr(0, error.find(':')), error.substr(error.find(':') + 2));
    char errstr[512] = "";
    rd_kafka_t* probe = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!probe) {
        rd_kafka_conf_destroy(conf);
        throw config.error(properties_.empty() ? "idempotent" : "properties",
                           std::string("librdkafka refuses this combination: ") + errstr);
    }
    rd_kafka_destroy(probe);

    auto& metrics = context.metrics();
    delivered_ = &metrics.counter("delivered_events", "events the brokers acknowledged (delivery reports)");
    failed_ = &metrics.counter("failed_events", "events refused for good (permanent delivery errors)");
    retried_ = &metrics.counter("retried_events", "events produced again after a transient failure");
    undelivered_ = &metrics.counter("undelivered_events", "events not acknowledged when the sink stopped");
    producer_errors_ = &metrics.counter("producer_errors", "errors librdkafka reported (broker down, ...)");
    restarts_ = &metrics.counter("producer_restarts", "producers recreated after a fatal error");
    in_flight_gauge_ = &metrics.gauge("in_flight_events", "events handed to librdkafka, not yet acknowledged");
}

// Returns null with "<key>: <reason>" in `error` when a setting is refused.
rd_kafka_conf_t* KafkaSink::make_conf(bool with_brokers, std::string& error) const {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char errstr[512] = "";
    auto set = [&](const std::string& key, const char* name, const std::string& value) {
        if (rd_kafka_conf_set(conf, name, value.c_str(), errstr, sizeof errstr) == RD_KAFKA_CONF_OK) return true;
        error = key + ": " + errstr;
        return false;
    };
    // Defaults the sink chooses; `properties` may override them. A message never times out inside librdkafka:
    // while brokers are away, events wait and upstream is held back instead of being dropped.
    bool ok =
        set("properties", "message.timeout.ms", "0") &&
        (!with_brokers || set("brokers", "bootstrap.servers", brokers_)) &&
        set("compression", "compression.type", compression_) &&
        set("idempotent", "enable.idempotence", idempotent_ ? "true" : "false") &&
        set("max_in_flight_events", "queue.buffering.max.messages", std::to_string(max_in_flight_events_)) &&
        set("max_in_flight_bytes", "queue.buffering.max.kbytes", std::to_string((max_in_flight_bytes_ + 1023) / 1024));
    for (const auto& [name, value] : properties_)
        ok = ok && set("properties." + name, name.c_str(), value);
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        return nullptr;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, &KafkaSink::delivery_callback);
    rd_kafka_conf_set_error_cb(conf, &KafkaSink::error_callback);
    rd_kafka_conf_set_log_cb(conf, &KafkaSink::log_callback);
    if (with_brokers) rd_kafka_conf_set_opaque(conf, const_cast<KafkaSink*>(this));
    return conf;
}

void KafkaSink::start() {
    create_producer();
}

void KafkaSink::create_producer() {
    std::string error;
    rd_kafka_conf_t* conf = make_conf(true, error);
    if (!conf) throw std::runtime_error(error);
    char errstr[512] = "";
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!producer_) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("cannot create the Kafka producer: ") + errstr);
    }
    fatal_ = false;
    if (topic_constant_) {
        std::string name;
        topic_->render(Event{}, 0, name);
        constant_topic_ = topic_handle(name);
    }
}

void KafkaSink::destroy_producer() {
    if (!producer_) return;
    for (auto& [name, handle] : topics_)
        rd_kafka_topic_destroy(handle);
    topics_.clear();
    constant_topic_ = nullptr;
    rd_kafka_destroy(producer_);
    producer_ = nullptr;
    for (Resend& r : resend_)
        if (r.headers) rd_kafka_headers_destroy(r.headers);
    resend_.clear();
}

rd_kafka_topic_t* KafkaSink::topic_handle(const std::string& name) {
    if (auto it = topics_.find(name); it != topics_.end()) return it->second;
    rd_kafka_topic_t* handle = rd_kafka_topic_new(producer_, name.c_str(), nullptr);
    if (!handle)
        throw std::runtime_error("cannot use topic '" + name + "': " + rd_kafka_err2str(rd_kafka_last_error()));
    topics_.emplace(name, handle);
    return handle;
}

void KafkaSink::render_headers(const Event& event) {
    header_values_.clear();
    for (int index : headers_) {
        std::string_view value;
        switch (index) {
            case 0:
                value = event.meta.kind;
                break;
            case 1:
                value = event.meta.site_id;
                break;
            case 2:
                value = event.meta.user_id;
                break;
            case 3:
                value = event.meta.id;
                break;
            case 4:
                value = event.meta.source;
                break;
            case 5: {
                if (event.meta.received_at.time_since_epoch().count() == 0) break;
                auto second = std::chrono::floor<std::chrono::seconds>(event.meta.received_at.time_since_epoch());
                if (second.count() != received_second_) {
                    received_second_ = second.count();
                    received_text_ = format_utc(event.meta.received_at);
                }
                value = received_text_;
                break;
            }
        }
        // Unknown metadata is left out rather than sent as an empty header.
        if (!value.empty()) header_values_.emplace_back(metadata_headers[static_cast<std::size_t>(index)], value);
    }
    if (!id_header_.empty()) {
        id_value_.clear();
        stable_id(event, id_value_);
        header_values_.emplace_back(id_header_.c_str(), id_value_);
    }
}

void KafkaSink::stable_id(const Event& event, std::string& out) {
    if (!event.meta.id.empty()) {
        out += event.meta.id;
        return;
    }
    // 128 bits: a collision among the events a receiver remembers is out of reach, and the header stays short.
    thread_local Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
    sha.update(event.payload.data(), static_cast<unsigned>(event.payload.size()));
    const Poco::DigestEngine::Digest& digest = sha.digest();
    static constexpr char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < 16; ++i) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 0xf];
    }
}

KafkaSink::Pending* KafkaSink::find_pending(std::uint64_t seq) {
    if (pending_.empty()) return nullptr;
    // Nearly always the newest batch (deliver() producing it) or the oldest (its reports coming back).
    auto holds = [seq](const Pending& p) { return seq >= p.first_seq && seq - p.first_seq < p.count; };
    if (holds(pending_.back())) return &pending_.back();
    if (holds(pending_.front())) return &pending_.front();
    auto it = std::upper_bound(pending_.begin(), pending_.end(), seq,
                               [](std::uint64_t s, const Pending& p) { return s < p.first_seq; });
    if (it == pending_.begin()) return nullptr;
    --it;
    return holds(*it) ? &*it : nullptr;
}

void KafkaSink::settle(std::uint64_t seq, Settle how) {
    Pending* p = find_pending(seq);
    if (!p || p->unsettled == 0) return;
    --p->unsettled;
    switch (how) {
        case Settle::delivered:
            p->ack.delivered(1);
            break;
        case Settle::refused:
            p->ack.refused(1);
            break;
        case Settle::lost:
            p->ack.lost(1);
            break;
    }
    // The ack is spent once its last event is settled; ranges behind an older unsettled one wait for it.
    while (!pending_.empty() && pending_.front().unsettled == 0)
        pending_.pop_front();
}

void KafkaSink::settle_failed(std::uint64_t seq, rd_kafka_resp_err_t err) {
    settle(seq, never_acceptable(err) ? Settle::refused : Settle::lost);
}

void KafkaSink::lose_unreturned() {
    for (Pending& p : pending_) {
        if (p.handed == 0) continue;
        p.ack.lost(p.handed);
        p.unsettled -= p.handed;
        p.handed = 0;
    }
    while (!pending_.empty() && pending_.front().unsettled == 0)
        pending_.pop_front();
}

void KafkaSink::deliver(const EventBatch& batch, BatchAck ack) {
    if (!producer_) {
        ack.lost(batch.size());
        throw std::runtime_error("the producer is not running");
    }
    serve(0);
    resend_returned();
    // The batch's sequence numbers are taken at once, so that a batch given up halfway lends none of its own to
    // the next one.
    const std::uint64_t first_seq = next_seq_;
    next_seq_ += batch.size();
    if (ack.tracked() && !batch.empty()) pending_.push_back({first_seq, batch.size(), batch.size(), 0, ack});
    std::size_t i = 0;
    try {
        produce_batch(batch, first_seq, i);
    } catch (...) {
        // Events not handed to librdkafka are lost; the host reports the batch's failure itself.
        for (; i < batch.size(); ++i)
            settle(first_seq + i, Settle::lost);
        throw;
    }
    update_gauge();
}

void KafkaSink::produce_batch(const EventBatch& batch, std::uint64_t first_seq, std::size_t& i) {
    std::int64_t now_second = -1;
    for (; i < batch.size(); ++i) {
        const Event& event = batch[i];
        Message message;
        if (!topic_constant_) {
            std::int64_t second = 0;
            if (topic_->has_time()) {
                if (event.meta.received_at.time_since_epoch().count() != 0) {
                    second =
                        std::chrono::floor<std::chrono::seconds>(event.meta.received_at.time_since_epoch()).count();
                } else {
                    if (now_second < 0)
                        now_second =
                            std::chrono::floor<std::chrono::seconds>(context_->clock().now().time_since_epoch())
                                .count();
                    second = now_second;
                }
            }
            topic_->render(event, second, topic_name_);
            make_legal_topic(topic_name_);
            message.topic = &topic_name_;
        }
        message.payload = &event.payload;
        if (key_) {
            key_value_.clear();
            if (key_->append_to(event, key_value_)) message.key = &key_value_;
        }
        if (event.meta.received_at.time_since_epoch().count() != 0)
            message.timestamp_ms = millis_of(event.meta.received_at);
        render_headers(event);
        message.header_values = &header_values_;
        message.seq = first_seq + i;

        if (produce(message) == Produced::gave_up) {
            // Shutting down: the rest is not delivered and stays unsettled, to be sent again after a restart.
            std::uint64_t left = batch.size() - i;
            undelivered_->add(left);
            abandoned_ += left;
            i = batch.size();
            return;
        }
    }
}

KafkaSink::Produced KafkaSink::produce(const Message& message) {
    for (;;) {
        std::array<rd_kafka_vu_t, 9 + metadata_headers.size()> vus;
        std::size_t n = 0;
        // Looked up on every attempt: a restart in between replaces the producer and its topic handles.
        rd_kafka_topic_t* topic = message.topic ? topic_handle(*message.topic) : constant_topic_;
        vus[n].vtype = RD_KAFKA_VTYPE_RKT;
        vus[n++].u.rkt = topic;
        vus[n].vtype = RD_KAFKA_VTYPE_VALUE;
        vus[n].u.mem.ptr = const_cast<char*>(message.payload->data());
        vus[n++].u.mem.size = message.payload->size();
        if (message.key) {
            vus[n].vtype = RD_KAFKA_VTYPE_KEY;
            vus[n].u.mem.ptr = const_cast<char*>(message.key->data());
            vus[n++].u.mem.size = message.key->size();
        }
        vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
        vus[n++].u.i = RD_KAFKA_MSG_F_COPY;
        vus[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
        vus[n++].u.ptr = reinterpret_cast<void*>(static_cast<std::uintptr_t>(message.seq));
        if (message.timestamp_ms != 0) {
            vus[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
            vus[n++].u.i64 = message.timestamp_ms;
        }
        if (message.headers) {
            vus[n].vtype = RD_KAFKA_VTYPE_HEADERS;
            vus[n++].u.headers = message.headers;
        } else if (message.header_values) {
            for (const auto& [name, value] : *message.header_values) {
                vus[n].vtype = RD_KAFKA_VTYPE_HEADER;
                vus[n].u.header.name = name;
                vus[n].u.header.val = value.data();
                vus[n++].u.header.size = static_cast<ssize_t>(value.size());
            }
        }

        rd_kafka_error_t* error = rd_kafka_produceva(producer_, vus.data(), n);
        if (!error) {
            ++in_flight_;
            if (Pending* p = find_pending(message.seq)) ++p->handed;
            return Produced::yes;
        }
        rd_kafka_resp_err_t code = rd_kafka_error_code(error);
        std::string reason = rd_kafka_error_string(error);
        rd_kafka_error_destroy(error);

        if (code == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (!wait_for_room()) return Produced::gave_up;
            continue;
        }
        if (code == RD_KAFKA_RESP_ERR__FATAL) {
            fatal_ = true;
            restart_if_fatal();
            // Everything that came back was produced before this message, so it goes out first. (Inside a
            // re-send round the rest of that round goes first, and what came back follows it.)
            if (!resending_) resend_returned();
            continue;
        }
        failed_->add();
        last_error_ = reason;
        if (failed_logged_++ < 10 || failed_logged_ % 1000 == 0)
            context_->log().error("cannot produce to topic '", rd_kafka_topic_name(topic), "': ", reason,
                                  " (event dropped, counted in failed_events)");
        settle_failed(message.seq, code);
        return Produced::failed;
    }
}

std::optional<steady::time_point> KafkaSink::give_up_deadline() {
    if (flush_deadline_) return flush_deadline_;
    if (context_->stopping()) {
        if (!shutdown_deadline_) shutdown_deadline_ = steady::now() + flush_timeout_;
        return shutdown_deadline_;
    }
    return std::nullopt;
}

bool KafkaSink::wait_for_room() {
    auto deadline = give_up_deadline();
    if (deadline && steady::now() >= *deadline) return false;
    serve(deadline ? millis_until(*deadline) : poll_slice_ms);
    update_gauge();
    // What a restart just took back is older than the message waiting here; inside a re-send round the
    // round's own remaining messages are older still and go first.
    if (!resending_) resend_returned();
    return true;
}

void KafkaSink::serve(int timeout_ms) {
    rd_kafka_poll(producer_, timeout_ms);
    restart_if_fatal();
}

void KafkaSink::restart_if_fatal() {
    if (!producer_) return;
    char reason[512] = "";
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(producer_, reason, sizeof reason);
    if (!fatal_ && code == RD_KAFKA_RESP_ERR_NO_ERROR) return;
    context_->log().error("fatal producer error ", rd_kafka_err2name(code), ": ", reason,
                          "; recreating the producer and producing again the ", in_flight_,
                          " events not yet acknowledged");
    // Every outstanding message comes back through its delivery report and is kept for re-sending.
    rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    auto until = steady::now() + purge_wait;
    while (in_flight_ > 0 && steady::now() < until)
        rd_kafka_poll(producer_, poll_slice_ms);
    if (in_flight_ > 0) {
        undelivered_->add(static_cast<std::uint64_t>(in_flight_));
        abandoned_ += static_cast<std::uint64_t>(in_flight_);
        context_->log().error(in_flight_, " events never came back from the failed producer and are lost");
        in_flight_ = 0;
        lose_unreturned();
    }
    std::vector<Resend> keep = std::move(resend_);
    resend_.clear();
    destroy_producer();
    resend_ = std::move(keep);
    create_producer();
    restarts_->add();
    fatal_ = false;
}

void KafkaSink::resend_returned() {
    if (resend_.empty() || !producer_) return;
    std::vector<Resend> batch = std::move(resend_);
    resend_.clear();
    resending_ = true;
    std::sort(batch.begin(), batch.end(), [](const Resend& a, const Resend& b) { return a.seq < b.seq; });
    for (std::size_t i = 0; i < batch.size(); ++i) {
        Resend& r = batch[i];
        Message message;
        message.topic = &r.topic;
        message.payload = &r.payload;
        message.key = r.key ? &*r.key : nullptr;
        message.timestamp_ms = r.timestamp_ms;
        // librdkafka takes the list on success; keep a copy until then, since a failed attempt leaves it ours.
        rd_kafka_headers_t* headers = r.headers ? rd_kafka_headers_copy(r.headers) : rd_kafka_headers_new(0);
        message.headers = headers;
        message.seq = r.seq;
        retried_->add();
        Produced produced = produce(message);
        if (produced != Produced::yes) rd_kafka_headers_destroy(headers);
        if (produced == Produced::gave_up) {
            std::uint64_t left = batch.size() - i;
            undelivered_->add(left);
            abandoned_ += left;
            for (std::size_t j = i; j < batch.size(); ++j)
                if (batch[j].headers) rd_kafka_headers_destroy(batch[j].headers);
            resending_ = false;
            return;
        }
        if (r.headers) rd_kafka_headers_destroy(r.headers);
        r.headers = nullptr;
    }
    resending_ = false;
}

void KafkaSink::tick() {
    if (!producer_) return;
    serve(0);
    resend_returned();
    update_gauge();
}

void KafkaSink::flush() {
    if (!producer_) return;
    auto deadline = steady::now() + flush_timeout_;
    if (shutdown_deadline_ && *shutdown_deadline_ < deadline) deadline = *shutdown_deadline_;
    flush_deadline_ = deadline;
    serve(0);
    resend_returned();
    while ((in_flight_ > 0 || !resend_.empty()) && steady::now() < deadline) {
        // rd_kafka_flush() also sends at once what linger.ms would still hold back, and serves the reports.
        rd_kafka_flush(producer_, millis_until(deadline));
        restart_if_fatal();
        resend_returned();
    }
    update_gauge();
    if (in_flight_ > 0 || !resend_.empty()) abandon_outstanding("flush_timeout_ms ran out");
    flush_deadline_.reset();
    if (abandoned_ > 0)
        context_->log().error(abandoned_, " events were not delivered (counted in undelivered_events)",
                              last_error_.empty() ? "" : "; last error: ", last_error_);
}

void KafkaSink::abandon_outstanding(const char* when) {
    if (!producer_) return;
    std::uint64_t before = abandoned_;
    abandoning_ = true;
    purged_ = 0;
    rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    auto until = steady::now() + purge_wait;
    while (in_flight_ > 0 && steady::now() < until)
        rd_kafka_poll(producer_, poll_slice_ms);
    // Purged reports, reports that never came, and what was waiting to be produced again.
    std::uint64_t lost = purged_ + static_cast<std::uint64_t>(in_flight_) + resend_.size();
    undelivered_->add(lost);
    abandoned_ += lost;
    in_flight_ = 0;
    for (Resend& r : resend_)
        if (r.headers) rd_kafka_headers_destroy(r.headers);
    resend_.clear();
    abandoning_ = false;
    update_gauge();
    if (abandoned_ > before)
        context_->log().warn(when, ": ", abandoned_ - before,
                             " events handed to Kafka were not acknowledged and are purged "
                             "(possibly written already: their acknowledgement never came)");
}

void KafkaSink::stop() {
    if (!producer_) return;
    // After a failed node or an exception flush() may not have run: whatever is outstanding is counted now.
    if (in_flight_ > 0 || !resend_.empty()) {
        rd_kafka_poll(producer_, 0);
        if (in_flight_ > 0 || !resend_.empty()) abandon_outstanding("stopped before everything was acknowledged");
    }
    destroy_producer();
    // What is still unsettled was not delivered; its acks are the host's to forget, never to be touched again.
    pending_.clear();
    update_gauge();
}

void KafkaSink::on_delivery(const rd_kafka_message_t& m) {
    --in_flight_;
    const auto seq = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(m._private));
    Pending* pending = find_pending(seq);
    if (pending && pending->handed > 0) --pending->handed;
    if (m.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        delivered_->add();
        settle(seq, Settle::delivered);
        return;
    }
    last_error_ = rd_kafka_err2str(m.err);
    if (abandoning_) {
        ++purged_;
        return;
    }
    if (worth_resending(m.err) || fatal_) {
        Resend r;
        r.seq = seq;
        r.topic = rd_kafka_topic_name(m.rkt);
        if (m.key) r.key.emplace(static_cast<const char*>(m.key), m.key_len);
        if (m.payload) r.payload.assign(static_cast<const char*>(m.payload), m.len);
        rd_kafka_timestamp_type_t type;
        std::int64_t ts = rd_kafka_message_timestamp(&m, &type);
        r.timestamp_ms = type == RD_KAFKA_TIMESTAMP_CREATE_TIME && ts > 0 ? ts : 0;
        rd_kafka_headers_t* headers = nullptr;
        if (rd_kafka_message_headers(&m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR && headers)
            r.headers = rd_kafka_headers_copy(headers);
        resend_.push_back(std::move(r));
        return;
    }
    failed_->add();
    if (failed_logged_++ < 10 || failed_logged_ % 1000 == 0)
        context_->log().error("Kafka refused an event for topic '", rd_kafka_topic_name(m.rkt), "': ", last_error_,
                              " (counted in failed_events)");
    settle_failed(seq, m.err);
}

void KafkaSink::on_error(int code, const char* reason) {
    producer_errors_->add();
    auto err = static_cast<rd_kafka_resp_err_t>(code);
    if (err == RD_KAFKA_RESP_ERR__FATAL) fatal_ = true;
    last_error_ = reason;
    auto now = steady::now();
    if (err == RD_KAFKA_RESP_ERR__FATAL || code != last_logged_error_ || now - last_error_log_ >= error_log_interval) {
        last_logged_error_ = code;
        last_error_log_ = now;
        context_->log().warn("Kafka: ", rd_kafka_err2name(err), ": ", reason);
    }
}

void KafkaSink::delivery_callback(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
    if (opaque) static_cast<KafkaSink*>(opaque)->on_delivery(*message);
}

void KafkaSink::error_callback(rd_kafka_t*, int code, const char* reason, void* opaque) {
    if (opaque) static_cast<KafkaSink*>(opaque)->on_error(code, reason);
}

void KafkaSink::log_callback(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
    auto* self = static_cast<KafkaSink*>(rd_kafka_opaque(rk));
    if (!self || !self->context_) return;  // the configure-time probe has nothing worth saying
    // librdkafka logs with syslog levels; errors also reach error_callback, so they are warnings here.
    LogLevel mapped = level <= 4 ? LogLevel::warn : level <= 6 ? LogLevel::info : LogLevel::debug;
    Logger& log = self->context_->log();
    if (!log.enabled(mapped)) return;
    std::string line = std::string("librdkafka ") + facility + ": " + message;
    log.write(mapped, line);
}

void KafkaSink::update_gauge() {
    if (in_flight_gauge_) in_flight_gauge_->set(in_flight_ + static_cast<std::int64_t>(resend_.size()));
}

}  // namespace hubflow::kafka
