#pragma once
// The `webhook` sink: HTTP(S) requests carrying events to a URL, one event per request or in batches.
//
// Threads. The node's thread (deliver, tick, flush) only encodes: it appends payloads to the open batch and,
// when the batch is full by count or bytes or old enough (batch.timeout_ms, checked in tick), seals it into
// a request and puts that in a queue. `max_in_flight` sender threads, each with one keep-alive connection of
// its own, take requests from the queue and deliver them, retrying as long as it takes. The queue holds at
// most `max_in_flight` requests besides the ones being sent, so while the receiver is down the senders are
// busy retrying, the queue fills and deliver() blocks: that is the backpressure the host carries upstream. A
// blocked deliver() wakes every 100 ms to look at the host, and never spins. So what is taken and not yet
// settled is bounded: the open batch, `max_in_flight` requests queued and `max_in_flight` being sent.
//
// Acknowledgements (SDK 1.2). Requests are cut by count, bytes and time, not along input batches: one input
// batch may be spread over several requests, and one request may carry the tail of one batch and the head of
// the next. So each request keeps the list of parts it carries, (BatchAck, events), and settles them when it
// ends: delivered on a 2xx, refused when the receiver refused them for good and they are dead-lettered (or
// there is no dead-letter file: counted in failed_events, as configured), lost when the dead-letter file could
// not be written. Events still waiting when the sink gives up at shutdown are left unsettled: they were not
// delivered, and their sources send them again after a restart.
//
// webhook-id. Each request's id is derived from its events, so that the same events sent again (a retry, or
// the next run after a crash re-reading what was not finished) carry the same id: "msg_" and the first 128 bits
// of SHA-256, in hex, over each event in order, "i<length>:<id>" for an event with `id` metadata and
// "p<length>:<payload>" for one without.
//
// Nothing accepted is dropped silently. Every event ends in exactly one of the counters
// delivered_events (a 2xx answer), dead_lettered_events (refused for good and written to the dead-letter
// file), failed_events (refused for good with no dead-letter file to take it, or the file could not be
// written; logged) or undelivered_events (still waiting when the sink had to stop; logged with the count).
//
// Retries: network errors, 408, 429 and 5xx are retried with exponential backoff and full jitter
// (retry.initial_ms doubling up to retry.max_ms), or after the receiver's Retry-After (seconds or HTTP-date)
// when it sends one; other statuses are refused for good. A request that was sent on a reused keep-alive
// connection and failed before any answer is sent again at once on a fresh connection: the receiver may have
// closed the idle connection, which is no reason to wait.
//
// Shutdown: flush() seals the open batch and waits up to flush_timeout_ms for the queue and the senders to
// finish. Then it gives up: queued requests are not sent, retries stop, and requests still on the wire are cut
// off (their socket is shut down); all of their events count as undelivered, and the log says how many were
// queued, waiting for a retry, or cut off on the wire (those may have reached the receiver). Once the host is
// stopping, a deliver() blocked on the full queue gives up at the same deadline, so the sink never outlasts the
// host's grace period because a receiver is down.
//
// Requests keep the order of sealing with max_in_flight = 1; with more, requests overtake each other.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "hubflow/component.h"
#include "hubflow/delivery.h"
#include "hubflow/schema.h"

namespace Poco {
class SHA2Engine;
}

namespace hubflow::webhook {

enum class Encoding { json, json_array, ndjson };

// What a pipeline file says, checked.
struct Settings {
    std::string url;
    std::string method = "POST";
    std::size_t max_events = 1;
    std::size_t max_bytes = 1024 * 1024;
    std::chrono::milliseconds batch_timeout{1000};
    Encoding encoding = Encoding::json;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string bearer;
    std::optional<std::pair<std::string, std::string>> basic;  // user, password
    bool gzip = false;
    std::chrono::milliseconds request_timeout{30000};
    std::chrono::milliseconds connect_timeout{5000};
    std::size_t max_in_flight = 4;
    std::string signing_key;  // decoded Standard Webhooks secret; empty = no signing
    std::chrono::milliseconds retry_initial{1000};
    std::chrono::milliseconds retry_max{30000};
    std::uint64_t max_attempts = 0;  // 0 = forever
    std::string dead_letter;
    std::string ca_file;
    bool insecure = false;
    std::chrono::milliseconds flush_timeout{5000};
};

// One sealed batch: the body as encoded (uncompressed) and where each event's payload sits in it, so that a
// refused request can be written to the dead-letter file event by event.
struct Request {
    // Events of one input batch that this request carries, settled together when the request ends.
    struct Part {
        BatchAck ack;
        std::size_t events = 0;
    };

    std::string body;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> events;  // offset, length in body
    std::string id;                // webhook-id: derived from the events, so the same for every attempt and every run
    std::vector<Part> parts;       // tracked input batches, in order; their events add up to count() at most
    std::uint64_t last_input = 0;  // the deliver() call that added the last part
    std::size_t count() const { return events.size(); }
};

class Sender;
class DeadLetters;

class WebhookSink final : public AcknowledgingSink {
public:
    WebhookSink();
    ~WebhookSink() override;
    WebhookSink(const WebhookSink&) = delete;
    WebhookSink& operator=(const WebhookSink&) = delete;

    static ComponentDescription describe();

    // Reads the signing secret from the environment variable signing.secret_env; a missing or malformed
    // secret is a ConfigError naming that key (never showing the value).
    void configure(const ConfigView& config, Context& context) override;
    // Opens the dead-letter file (when its path has no placeholders) and starts the sender threads. Connects
    // to nothing: a receiver that is down is not an error, events wait for it.
    void start() override;
    void deliver(const EventBatch& batch, BatchAck ack) override;
    // Seals the open batch once it is batch.timeout_ms old.
    void tick() override;
    std::chrono::milliseconds tick_interval() const override;
    void flush() override;
    void stop() override;

    const Settings& settings() const { return settings_; }

private:
    struct Worker;

    void seal();
    // Puts a request in the queue, blocking while it is full; false when the sink gave up (shutdown).
    bool enqueue(std::unique_ptr<Request> request);
    std::optional<std::chrono::steady_clock::time_point> give_up_deadline();
    void run_worker(Worker& worker);
    // Sends `request` until it is delivered, refused for good or given up.
    void send(Worker& worker, Request& request);
    void refuse(const Request& request, int status, const std::string& response, const std::string& reason,
                std::uint64_t attempts);
    // Stops every retry and cuts off what is on the wire; returns once the senders are idle.
    void abandon(const char* why);
    void join_workers();

    Settings settings_;
    Context* context_ = nullptr;
    std::unique_ptr<DeadLetters> dead_letters_;

    Counter* delivered_ = nullptr;
    Counter* dead_lettered_ = nullptr;
    Counter* failed_ = nullptr;
    Counter* undelivered_ = nullptr;
    Counter* requests_ = nullptr;
    Counter* retries_ = nullptr;
    Counter* request_errors_ = nullptr;
    Counter* bytes_sent_ = nullptr;
    Gauge* pending_gauge_ = nullptr;

    // The open batch (node thread only).
    std::unique_ptr<Request> open_;
    std::unique_ptr<Poco::SHA2Engine> open_id_;  // the open batch's webhook-id so far
    std::uint64_t inputs_ = 0;                   // deliver() calls
    std::chrono::steady_clock::time_point open_since_{};

    // Shared with the senders, under mutex_.
    std::mutex mutex_;
    std::condition_variable work_;   // a request was queued, or quit_/abort_ was set
    std::condition_variable space_;  // a request left the queue
    std::condition_variable idle_;   // a request finished
    std::condition_variable abort_cv_;
    std::deque<std::unique_ptr<Request>> queue_;
    std::size_t busy_ = 0;
    bool quit_ = false;
    bool abort_ = false;
    std::int64_t pending_events_ = 0;  // accepted by write(), not yet counted in a final counter
    // What abandon() found, for its log line.
    std::uint64_t abandoned_queued_ = 0, abandoned_retrying_ = 0, abandoned_on_wire_ = 0;

    std::vector<std::unique_ptr<Worker>> workers_;
    std::optional<std::chrono::steady_clock::time_point> shutdown_deadline_;
    std::uint64_t undelivered_total_ = 0;

    // Log rate limiting for refusals and retries (senders), under log_mutex_.
    std::mutex log_mutex_;
    std::uint64_t refusals_logged_ = 0;
    std::chrono::steady_clock::time_point last_retry_log_{};
};

}  // namespace hubflow::webhook
