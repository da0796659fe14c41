#include "webhook_sink.h"

#include <Poco/DigestEngine.h>
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/NetSSL.h>
#include <Poco/SHA2Engine.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>

#include "dead_letters.h"
#include "hubflow/backoff.h"
#include "sender.h"

namespace hubflow::webhook {

namespace {

using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::int64_t max_timeout_ms = 3'600'000;
constexpr std::int64_t max_max_in_flight = 64;
constexpr std::int64_t max_batch_events = 1'000'000;
constexpr std::int64_t max_batch_bytes = 1LL << 30;
// How long a blocked deliver() sleeps before it looks at the host again.
constexpr auto wait_slice = milliseconds(100);
// Refusals are logged one by one up to this many, then every thousandth.
constexpr std::uint64_t refusals_logged_in_full = 10;
constexpr auto retry_log_interval = std::chrono::seconds(10);
// What of a refusal's response body goes into the log line (the dead-letter file keeps more).
constexpr std::size_t logged_body = 200;
constexpr std::size_t dead_letter_body = 4096;

std::string lower(std::string s) {
    for (char& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool header_token(const std::string& name) {
    if (name.empty()) return false;
    for (char c : name)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c))) return false;
    return true;
}

bool retryable(int status) {
    return status == 0 || status == 408 || status == 429 || status >= 500;
}

std::string describe_failure(const Outcome& o) {
    if (o.status == 0) return o.error;
    return "HTTP " + std::to_string(o.status);
}

enum class Settle { delivered, refused, lost };

void settle(const Request& request, Settle how) {
    for (const Request::Part& part : request.parts) {
        if (how == Settle::delivered)
            part.ack.delivered(part.events);
        else if (how == Settle::refused)
            part.ack.refused(part.events);
        else
            part.ack.lost(part.events);
    }
}

// One event's share of a request's webhook-id: its id when it has one, else its payload; length-prefixed, so
// that no two different lists of events hash the same text.
void add_to_id(Poco::SHA2Engine& sha, const Event& event) {
    const bool has_id = !event.meta.id.empty();
    const std::string& identity = has_id ? event.meta.id : event.payload;
    const std::string prefix = (has_id ? "i" : "p") + std::to_string(identity.size()) + ":";
    sha.update(prefix.data(), static_cast<unsigned>(prefix.size()));
    sha.update(identity.data(), static_cast<unsigned>(identity.size()));
}

milliseconds ms_in(const ConfigView& view, std::string_view key, std::int64_t fallback, std::int64_t min) {
    return milliseconds(view.has(key) ? view.integer_in(key, min, max_timeout_ms) : fallback);
}

}  // namespace

struct WebhookSink::Worker {
    Worker(const Settings& settings, const Poco::URI& uri, Poco::Net::Context::Ptr tls, std::uint64_t seed)
        : sender(settings, uri, std::move(tls)), random(seed) {}
    Sender sender;
    std::mt19937_64 random;
    enum class State { idle, sending, waiting } state = State::idle;  // under the sink's mutex_
    std::thread thread;
};

WebhookSink::WebhookSink() = default;

WebhookSink::~WebhookSink() {
    {
        std::lock_guard lock(mutex_);
        abort_ = true;
        quit_ = true;
    }
    for (auto& w : workers_)
        w->sender.cut_off();
    join_workers();
}

ComponentDescription WebhookSink::describe() {
    return {"webhook",
            ComponentKind::sink,
            "HTTP(S) POST of events: batching, retries with backoff, dead letters, Standard Webhooks signing",
            {{.name = "url", .type = FieldType::string, .required = true, .doc = "http:// or https:// URL to send to"},
             {.name = "method", .type = FieldType::string, .default_json = "\"POST\"", .doc = "POST, PUT or PATCH"},
             {.name = "batch",
              .type = FieldType::object,
              .default_json = "{}",
              .doc = "how many events go into one request",
              .fields = {{.name = "max_events",
                          .type = FieldType::integer,
                          .default_json = "1",
                          .doc = "events per request at most (1 = one event per request)"},
                         {.name = "max_bytes",
                          .type = FieldType::integer,
                          .default_json = "1048576",
                          .doc = "body bytes per request at most (before compression; one event may exceed it)"},
                         {.name = "timeout_ms",
                          .type = FieldType::integer,
                          .default_json = "1000",
                          .doc = "a batch is sent at the latest this long after its first event"}}},
             {.name = "encoding",
              .type = FieldType::string,
              .doc = "json (the event itself; needs batch.max_events 1), json_array or ndjson; default json for "
                     "one event per request, else json_array"},
             {.name = "headers",
              .type = FieldType::map,
              .default_json = "{}",
              .doc = "extra request headers, name: value (values are never logged)"},
             {.name = "auth",
              .type = FieldType::object,
              .doc = "bearer token or basic credentials; use ${ENV} for the values",
              .fields = {{.name = "bearer", .type = FieldType::string, .doc = "Authorization: Bearer <token>"},
                         {.name = "basic",
                          .type = FieldType::object,
                          .doc = "Authorization: Basic",
                          .fields = {{.name = "user", .type = FieldType::string, .required = true, .doc = "user"},
                                     {.name = "password",
                                      .type = FieldType::string,
                                      .default_json = "\"\"",
                                      .doc = "password"}}}}},
             {.name = "compression",
              .type = FieldType::string,
              .default_json = "\"none\"",
              .doc = "none or gzip (Content-Encoding: gzip)"},
             {.name = "request_timeout_ms",
              .type = FieldType::integer,
              .default_json = "30000",
              .doc = "longest wait for the receiver to take the request or to answer (per socket operation)"},
             {.name = "connect_timeout_ms",
              .type = FieldType::integer,
              .default_json = "5000",
              .doc = "longest wait for a connection"},
             {.name = "max_in_flight",
              .type = FieldType::integer,
              .default_json = "4",
              .doc = "requests at once, each on its own keep-alive connection (1 keeps the order of events)"},
             {.name = "signing",
              .type = FieldType::object,
              .doc = "Standard Webhooks signature headers webhook-id, webhook-timestamp, webhook-signature",
              .fields = {{.name = "secret_env",
                          .type = FieldType::string,
                          .required = true,
                          .doc = "environment variable holding the secret (whsec_<base64>)"}}},
             {.name = "retry",
              .type = FieldType::object,
              .default_json = "{}",
              .doc = "on network errors, 408, 429 and 5xx: exponential backoff with full jitter, or Retry-After",
              .fields = {{.name = "initial_ms",
                          .type = FieldType::integer,
                          .default_json = "1000",
                          .doc = "bound of the first delay; doubles per failed attempt"},
                         {.name = "max_ms",
                          .type = FieldType::integer,
                          .default_json = "30000",
                          .doc = "largest bound of a delay"},
                         {.name = "max_attempts",
                          .type = FieldType::integer,
                          .default_json = "0",
                          .doc = "attempts before the events go to the dead-letter file (0 = retry forever)"}}},
             {.name = "dead_letter",
              .type = FieldType::string,
              .doc = "JSON Lines file for events refused for good, with status and response (strftime % fields)",
              .claim = Claim::file_path},
             {.name = "tls",
              .type = FieldType::object,
              .default_json = "{}",
              .doc = "for https URLs; the system's CAs are trusted",
              .fields = {{.name = "ca_file",
                          .type = FieldType::string,
                          .default_json = "\"\"",
                          .doc = "PEM file of further CAs to trust"},
                         {.name = "insecure",
                          .type = FieldType::boolean,
                          .default_json = "false",
                          .doc = "do not verify the receiver's certificate (testing only)"}}},
             {.name = "flush_timeout_ms",
              .type = FieldType::integer,
              .default_json = "5000",
              .doc = "at shutdown: how long to keep delivering before counting the rest undelivered"}}};
}

void WebhookSink::configure(const ConfigView& config, Context& context) {
    context_ = &context;
    Settings s;

    s.url = config.string("url");
    Poco::URI uri;
    try {
        uri = Poco::URI(s.url);
    } catch (const Poco::Exception& e) {
        throw config.error("url", "is not a URL: " + e.message());
    }
    if (uri.getScheme() != "http" && uri.getScheme() != "https")
        throw config.error("url", "must start with http:// or https://");
    if (uri.getHost().empty()) throw config.error("url", "names no host");
    if (!uri.getUserInfo().empty())
        throw config.error("url", "carries credentials; put them in auth.basic, where they are not logged");

    if (config.has("method")) s.method = config.one_of("method", {"POST", "PUT", "PATCH"});

    if (config.has("batch")) {
        ConfigView batch = config.object("batch");
        if (batch.has("max_events"))
            s.max_events = static_cast<std::size_t>(batch.integer_in("max_events", 1, max_batch_events));
        if (batch.has("max_bytes"))
            s.max_bytes = static_cast<std::size_t>(batch.integer_in("max_bytes", 1, max_batch_bytes));
        s.batch_timeout = ms_in(batch, "timeout_ms", 1000, 1);
    }

    s.encoding = s.max_events == 1 ? Encoding::json : Encoding::json_array;
    if (config.has("encoding")) {
        std::string e = config.one_of("encoding", {"json", "json_array", "ndjson"});
        s.encoding = e == "json" ? Encoding::json : e == "ndjson" ? Encoding::ndjson : Encoding::json_array;
        if (s.encoding == Encoding::json && s.max_events != 1)
            throw config.error("encoding",
                               "json sends one event as the whole body, so it needs batch.max_events 1; use "
                               "json_array or ndjson for batches");
    }

    if (config.has("compression")) s.gzip = config.one_of("compression", {"none", "gzip"}) == "gzip";
    s.request_timeout = ms_in(config, "request_timeout_ms", 30000, 1);
    s.connect_timeout = ms_in(config, "connect_timeout_ms", 5000, 1);
    if (config.has("max_in_flight"))
        s.max_in_flight = static_cast<std::size_t>(config.integer_in("max_in_flight", 1, max_max_in_flight));
    s.flush_timeout = ms_in(config, "flush_timeout_ms", 5000, 0);

    if (config.has("auth")) {
        ConfigView auth = config.object("auth");
        if (auth.has("bearer") && auth.has("basic")) throw auth.error("basic", "set bearer or basic, not both");
        if (auth.has("bearer")) {
            s.bearer = auth.string("bearer");
            if (s.bearer.empty()) throw auth.error("bearer", "is empty (is its environment variable set?)");
        } else if (auth.has("basic")) {
            ConfigView basic = auth.object("basic");
            std::string user = basic.string("user");
            if (user.empty()) throw basic.error("user", "is empty (is its environment variable set?)");
            if (user.find(':') != std::string::npos) throw basic.error("user", "cannot hold ':' in basic auth");
            s.basic.emplace(std::move(user), basic.string_or("password", ""));
        }
    }

    if (config.has("signing")) {
        ConfigView signing = config.object("signing");
        std::string name = signing.string("secret_env");
        if (name.empty()) throw signing.error("secret_env", "names no environment variable");
        const char* secret = std::getenv(name.c_str());
        if (!secret || !*secret) throw signing.error("secret_env", "environment variable '" + name + "' is not set");
        try {
            s.signing_key = decode_secret(secret);
        } catch (const std::invalid_argument& e) {
            throw signing.error("secret_env", "the secret in '" + name + "' " + e.what());
        }
    }

    if (config.has("headers")) {
        const Value& map = config.value("headers");
        if (!map.is_object()) throw config.error("headers", "expected an object of header names and values");
        for (const auto& [name, value] : map.as_object()) {
            const std::string key = config.path_of("headers." + name);
            if (!value.is_string()) throw ConfigError(key, "expected a string", value.position);
            if (!header_token(name)) throw ConfigError(key, "is not a valid header name", value.position);
            const std::string& text = value.as_string();
            if (text.find_first_of("\r\n") != std::string::npos)
                throw ConfigError(key, "a header value cannot hold a line break", value.position);
            const std::string l = lower(name);
            if (l == "content-length" || l == "transfer-encoding" || l == "content-encoding" || l == "host" ||
                l == "connection")
                throw ConfigError(key, "is set by the sink itself", value.position);
            if (l == "authorization" && (!s.bearer.empty() || s.basic))
                throw ConfigError(key, "is set by auth; use one or the other", value.position);
            if ((l == "webhook-id" || l == "webhook-timestamp" || l == "webhook-signature") && !s.signing_key.empty())
                throw ConfigError(key, "is set by signing", value.position);
            s.headers.emplace_back(name, text);
        }
    }

    if (config.has("retry")) {
        ConfigView retry = config.object("retry");
        s.retry_initial = ms_in(retry, "initial_ms", 1000, 1);
        s.retry_max = ms_in(retry, "max_ms", 30000, 1);
        if (s.retry_max < s.retry_initial)
            throw retry.error("max_ms",
                              "must be at least initial_ms (" + std::to_string(s.retry_initial.count()) + ")");
        if (retry.has("max_attempts"))
            s.max_attempts = static_cast<std::uint64_t>(retry.integer_at_least("max_attempts", 0));
    }

    if (config.has("tls")) {
        ConfigView tls = config.object("tls");
        s.ca_file = tls.string_or("ca_file", "");
        s.insecure = tls.boolean_or("insecure", false);
    }

    dead_letters_.reset();
    if (config.has("dead_letter")) {
        s.dead_letter = config.string("dead_letter");
        if (s.dead_letter.empty()) throw config.error("dead_letter", "is empty");
        dead_letters_ = std::make_unique<DeadLetters>(s.dead_letter, config.path_of("dead_letter"), context);
    }

    settings_ = std::move(s);

    auto& metrics = context.metrics();
    delivered_ = &metrics.counter("delivered_events", "events in requests the receiver answered with 2xx");
    dead_lettered_ = &metrics.counter("dead_lettered_events", "events refused for good, written to dead_letter");
    failed_ = &metrics.counter("failed_events", "events refused for good that no dead-letter file took (logged)");
    undelivered_ = &metrics.counter("undelivered_events", "events still waiting when the sink stopped (logged)");
    requests_ = &metrics.counter("requests", "request attempts");
    retries_ = &metrics.counter("retries", "attempts scheduled again after a network error, 408, 429 or 5xx");
    request_errors_ = &metrics.counter("request_errors", "attempts that failed: network error or non-2xx status");
    bytes_sent_ = &metrics.counter("bytes_sent", "request body bytes sent (after compression)");
    pending_gauge_ = &metrics.gauge("pending_events", "events accepted and not yet delivered or refused");
}

void WebhookSink::start() {
    const Poco::URI uri(settings_.url);
    Poco::Net::Context::Ptr tls;
    if (uri.getScheme() == "https") {
        Poco::Net::initializeSSL();
        Poco::Net::Context::Params params;
        params.verificationMode =
            settings_.insecure ? Poco::Net::Context::VERIFY_NONE : Poco::Net::Context::VERIFY_RELAXED;
        params.loadDefaultCAs = true;
        params.caLocation = settings_.ca_file;
        try {
            tls = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
        } catch (const Poco::Exception& e) {
            throw std::runtime_error("tls.ca_file: cannot use '" + settings_.ca_file + "': " + e.displayText());
        }
        tls->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
        if (settings_.insecure) tls->enableExtendedCertificateVerification(false);
    }
    if (dead_letters_) dead_letters_->start();

    {
        std::lock_guard lock(mutex_);
        quit_ = false;
        abort_ = false;
    }
    std::random_device seed;
    for (std::size_t i = 0; i < settings_.max_in_flight; ++i) {
        auto worker = std::make_unique<Worker>(settings_, uri, tls, (std::uint64_t{seed()} << 32) | seed());
        Worker* w = worker.get();
        workers_.push_back(std::move(worker));
        w->thread = std::thread([this, w] { run_worker(*w); });
    }
    context_->log().info("sending to ", redacted_url(uri), " with up to ", settings_.max_in_flight,
                         " requests at once, ", settings_.max_events, " events per request at most");
}

void WebhookSink::deliver(const EventBatch& batch, BatchAck ack) {
    if (workers_.empty()) {
        ack.lost(batch.size());
        throw std::runtime_error("the sink is not running");
    }
    const std::uint64_t input = ++inputs_;
    const bool array = settings_.encoding == Encoding::json_array;
    const bool ndjson = settings_.encoding == Encoding::ndjson;
    for (const Event& event : batch) {
        // Bytes the event adds besides its payload: the separator or line break, and the array's closing ']'.
        const std::size_t overhead = array ? 2 : ndjson ? 1 : 0;
        if (open_ && open_->count() > 0 && open_->body.size() + event.payload.size() + overhead > settings_.max_bytes)
            seal();
        if (!open_) {
            open_ = std::make_unique<Request>();
            open_since_ = context_->clock().monotonic();
            if (!open_id_) open_id_ = std::make_unique<Poco::SHA2Engine>(Poco::SHA2Engine::SHA_256);
            open_id_->reset();
        }
        Request& r = *open_;
        if (ack.tracked()) {
            if (r.parts.empty() || r.last_input != input) {
                r.parts.push_back({ack, 0});
                r.last_input = input;
            }
            ++r.parts.back().events;
        }
        add_to_id(*open_id_, event);
        if (array) r.body += r.count() == 0 ? '[' : ',';
        const std::size_t offset = r.body.size();
        r.body += event.payload;
        if (ndjson) {
            // One event, one line: raw line breaks in a payload are JSON whitespace and become spaces.
            if (std::memchr(event.payload.data(), '\n', event.payload.size()) ||
                std::memchr(event.payload.data(), '\r', event.payload.size()))
                std::replace_if(
                    r.body.begin() + static_cast<std::ptrdiff_t>(offset), r.body.end(),
                    [](char c) { return c == '\n' || c == '\r'; }, ' ');
            r.body += '\n';
        }
        r.events.emplace_back(static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(event.payload.size()));
        pending_gauge_->add(1);
        if (r.count() >= settings_.max_events) seal();
    }
    if (open_ && context_->clock().monotonic() - open_since_ >= settings_.batch_timeout) seal();
}

void WebhookSink::tick() {
    if (open_ && context_->clock().monotonic() - open_since_ >= settings_.batch_timeout) seal();
}

std::chrono::milliseconds WebhookSink::tick_interval() const {
    return std::clamp<milliseconds>(settings_.batch_timeout, milliseconds(10), milliseconds(250));
}

void WebhookSink::seal() {
    if (!open_) return;
    std::unique_ptr<Request> request = std::move(open_);
    if (request->count() == 0) return;
    if (settings_.encoding == Encoding::json_array) request->body += ']';
    const Poco::DigestEngine::Digest& digest = open_id_->digest();
    request->id = "msg_" + Poco::DigestEngine::digestToHex(digest).substr(0, 32);
    enqueue(std::move(request));
}

std::optional<steady::time_point> WebhookSink::give_up_deadline() {
    if (shutdown_deadline_) return shutdown_deadline_;
    if (context_->stopping()) {
        shutdown_deadline_ = steady::now() + settings_.flush_timeout;
        return shutdown_deadline_;
    }
    return std::nullopt;
}

bool WebhookSink::enqueue(std::unique_ptr<Request> request) {
    std::unique_lock lock(mutex_);
    while (queue_.size() >= settings_.max_in_flight && !abort_) {
        lock.unlock();
        auto deadline = give_up_deadline();
        lock.lock();
        if (deadline && steady::now() >= *deadline) break;
        auto until = steady::now() + wait_slice;
        if (deadline && *deadline < until) until = *deadline;
        space_.wait_until(lock, until);
    }
    if (queue_.size() < settings_.max_in_flight && !abort_) {
        queue_.push_back(std::move(request));
        lock.unlock();
        work_.notify_one();
        return true;
    }
    const std::size_t count = request->count();
    undelivered_total_ += count;
    lock.unlock();
    undelivered_->add(count);
    pending_gauge_->add(-static_cast<std::int64_t>(count));
    context_->log().warn("shutting down with the receiver not keeping up: ", count,
                         " events not sent (counted in undelivered_events)");
    return false;
}

void WebhookSink::run_worker(Worker& worker) {
    for (;;) {
        std::unique_ptr<Request> request;
        {
            std::unique_lock lock(mutex_);
            work_.wait(lock, [&] { return quit_ || !queue_.empty(); });
            if (queue_.empty()) return;
            request = std::move(queue_.front());
            queue_.pop_front();
            ++busy_;
        }
        space_.notify_one();
        send(worker, *request);
        {
            std::lock_guard lock(mutex_);
            --busy_;
        }
        pending_gauge_->add(-static_cast<std::int64_t>(request->count()));
        idle_.notify_all();
    }
}

void WebhookSink::send(Worker& worker, Request& request) {
    const std::uint64_t count = request.count();
    std::string compressed;
    Backoff backoff(settings_.retry_initial, settings_.retry_max, worker.random());
    for (std::uint64_t attempt = 1;; ++attempt) {
        {
            std::lock_guard lock(mutex_);
            if (abort_) {
                // Taken from the queue just before the sink gave up.
                abandoned_queued_ += count;
                undelivered_total_ += count;
                undelivered_->add(count);
                return;
            }
            worker.state = Worker::State::sending;
        }
        requests_->add();
        Outcome outcome = worker.sender.send(request, compressed);
        if (outcome.on_wire) bytes_sent_->add(settings_.gzip ? compressed.size() : request.body.size());
        {
            std::lock_guard lock(mutex_);
            worker.state = Worker::State::idle;
        }
        if (outcome.status >= 200 && outcome.status < 300) {
            delivered_->add(count);
            settle(request, Settle::delivered);
            return;
        }
        request_errors_->add();
        if (!retryable(outcome.status)) {
            refuse(request, outcome.status, outcome.body, "refused by the receiver", attempt);
            return;
        }
        if (settings_.max_attempts > 0 && attempt >= settings_.max_attempts) {
            refuse(request, outcome.status, outcome.body,
                   "gave up after " + std::to_string(attempt) + " attempts: " + describe_failure(outcome), attempt);
            return;
        }

        // Retry-After is the receiver telling us when; without it, full jitter.
        const milliseconds delay = outcome.retry_after ? *outcome.retry_after : backoff.next();
        std::unique_lock lock(mutex_);
        if (abort_) {
            // No answer to a request that went out: the receiver may have it.
            (outcome.on_wire && outcome.status == 0 ? abandoned_on_wire_ : abandoned_retrying_) += count;
            undelivered_total_ += count;
            undelivered_->add(count);
            return;
        }
        retries_->add();
        {
            std::lock_guard log_lock(log_mutex_);
            const auto now = steady::now();
            if (now - last_retry_log_ >= retry_log_interval) {
                last_retry_log_ = now;
                context_->log().warn("request of ", count, " events failed (", describe_failure(outcome),
                                     "); retrying in ", delay.count(), " ms",
                                     outcome.retry_after ? " (Retry-After)" : "", ", attempt ", attempt + 1,
                                     "; events wait meanwhile (further failures are logged "
                                     "at most every 10 s)");
            }
        }
        worker.state = Worker::State::waiting;
        abort_cv_.wait_for(lock, delay, [&] { return abort_; });
        worker.state = Worker::State::idle;
        if (abort_) {
            abandoned_retrying_ += count;
            undelivered_total_ += count;
            undelivered_->add(count);
            return;
        }
    }
}

void WebhookSink::refuse(const Request& request, int status, const std::string& response, const std::string& reason,
                         std::uint64_t attempts) {
    const std::uint64_t count = request.count();
    const std::string excerpt = printable_excerpt(response, dead_letter_body);
    std::string where;
    if (dead_letters_) {
        try {
            dead_letters_->write(request, status, reason, excerpt, attempts);
            dead_lettered_->add(count);
            settle(request, Settle::refused);
            where = "written to the dead-letter file";
        } catch (const std::exception& e) {
            // Kept nowhere: not finished, so their sources keep them and send them again after a restart.
            failed_->add(count);
            settle(request, Settle::lost);
            where = std::string("NOT written to the dead-letter file (") + e.what() + "); counted in failed_events";
        }
    } else {
        // Without a dead-letter file, counting is all the configuration asks for: refused for good.
        failed_->add(count);
        settle(request, Settle::refused);
        where = "no dead_letter file is set, counted in failed_events";
    }
    std::lock_guard lock(log_mutex_);
    ++refusals_logged_;
    if (refusals_logged_ <= refusals_logged_in_full || refusals_logged_ % 1000 == 0)
        context_->log().error(count, " events not delivered: ", reason,
                              status > 0 ? " (HTTP " + std::to_string(status) + ")" : std::string(),
                              excerpt.empty() ? "" : ", response: ", printable_excerpt(excerpt, logged_body), "; ",
                              where, refusals_logged_ == refusals_logged_in_full ? " (now logging every 1000th)" : "");
}

void WebhookSink::flush() {
    if (workers_.empty()) return;
    auto deadline = steady::now() + settings_.flush_timeout;
    if (shutdown_deadline_ && *shutdown_deadline_ < deadline) deadline = *shutdown_deadline_;
    // A deliver() or seal() from here on gives up at the same deadline.
    shutdown_deadline_ = deadline;
    seal();
    bool done = false;
    {
        std::unique_lock lock(mutex_);
        done = idle_.wait_until(lock, deadline, [&] { return queue_.empty() && busy_ == 0; });
    }
    if (!done) abandon("flush_timeout_ms ran out");
    std::lock_guard lock(mutex_);
    if (undelivered_total_ > 0)
        context_->log().error(undelivered_total_, " events were not delivered (counted in undelivered_events)");
}

void WebhookSink::abandon(const char* why) {
    std::unique_lock lock(mutex_);
    abort_ = true;
    std::uint64_t queued = 0;
    for (const auto& r : queue_)
        queued += r->count();
    queue_.clear();
    abandoned_queued_ += queued;
    undelivered_total_ += queued;
    undelivered_->add(queued);
    pending_gauge_->add(-static_cast<std::int64_t>(queued));
    for (auto& w : workers_)
        if (w->state == Worker::State::sending) w->sender.cut_off();
    abort_cv_.notify_all();
    space_.notify_all();
    // A request cut off returns at once; one still connecting may take up to connect_timeout_ms.
    const auto bound = std::max<milliseconds>(settings_.connect_timeout, milliseconds(1000));
    if (!idle_.wait_for(lock, bound, [&] { return busy_ == 0; }))
        context_->log().error(busy_, " requests did not end within ", bound.count(), " ms of being cut off");
    if (abandoned_queued_ + abandoned_retrying_ + abandoned_on_wire_ > 0)
        context_->log().warn(why, ": ", abandoned_queued_ + abandoned_retrying_ + abandoned_on_wire_,
                             " events not delivered: ", abandoned_queued_, " queued, ", abandoned_retrying_,
                             " waiting to be retried, ", abandoned_on_wire_,
                             " cut off on the wire (the receiver may have those)");
}

void WebhookSink::join_workers() {
    {
        std::lock_guard lock(mutex_);
        quit_ = true;
    }
    work_.notify_all();
    abort_cv_.notify_all();
    for (auto& w : workers_)
        if (w->thread.joinable()) w->thread.join();
    workers_.clear();
}

void WebhookSink::stop() {
    if (open_ && open_->count() > 0) {
        // flush() did not run (the node failed or threw): the open batch was never sent.
        const std::size_t count = open_->count();
        undelivered_->add(count);
        pending_gauge_->add(-static_cast<std::int64_t>(count));
        std::lock_guard lock(mutex_);
        undelivered_total_ += count;
        context_->log().warn(count, " events of an unsent batch were not delivered (counted in undelivered_events)");
    }
    open_.reset();
    if (!workers_.empty()) {
        bool busy = false;
        {
            std::lock_guard lock(mutex_);
            busy = !queue_.empty() || busy_ > 0;
        }
        if (busy) abandon("stopped before everything was delivered");
        join_workers();
    }
    if (dead_letters_) dead_letters_->stop();
}

}  // namespace hubflow::webhook
