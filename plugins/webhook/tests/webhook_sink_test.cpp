// The webhook sink against real Poco HTTP servers on 127.0.0.1 (ports chosen by the system) that answer,
// fail, stall and verify signatures the way receivers do.

#include "webhook_sink.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "hubflow/config.h"
#include "hubflow/json_parse.h"
#include "hubflow/testing/fake_context.h"
#include "hubflow/testing/node_config.h"
#include "receiver.h"

#include <Poco/Net/Context.h>
#include <Poco/Net/SecureServerSocket.h>

namespace {

using hubflow::ConfigError;
using hubflow::ConfigView;
using hubflow::Event;
using hubflow::EventBatch;
using hubflow::Value;
using hubflow::testing::AckRecorder;
using hubflow::testing::FakeContext;
using hubflow::webhook::WebhookSink;
using hubflow::webhook::test::Received;
using hubflow::webhook::test::Receiver;
using hubflow::webhook::test::Reply;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// A Standard Webhooks secret: whsec_ + base64 of 24 bytes.
constexpr const char* test_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

Event make_event(int seq) {
    Event e;
    e.payload = R"({"seq":)" + std::to_string(seq) + R"(,"site_id":"site-1","kind":"entry"})";
    e.meta.kind = "entry";
    e.meta.site_id = "site-1";
    e.meta.id = "e" + std::to_string(seq);
    return e;
}

EventBatch make_batch(int first, int count) {
    EventBatch b;
    for (int i = 0; i < count; ++i)
        b.push_back(make_event(first + i));
    return b;
}

// The seq of every event in a request body, whatever its encoding.
std::vector<int> seqs_in(const Received& r) {
    std::vector<int> out;
    auto take = [&](const Value& v) { out.push_back(static_cast<int>(v.find("seq")->as_int())); };
    const std::string type = r.header("content-type");
    if (type == "application/x-ndjson") {
        std::size_t at = 0;
        while (at < r.body.size()) {
            std::size_t nl = r.body.find('\n', at);
            EXPECT_NE(nl, std::string::npos) << "ndjson body not ending in a line break";
            if (nl == std::string::npos) break;
            take(hubflow::parse_json(r.body.substr(at, nl - at)));
            at = nl + 1;
        }
        return out;
    }
    Value v = hubflow::parse_json(r.body);
    if (v.is_array()) {
        for (const Value& item : v.as_array())
            take(item);
    } else {
        take(v);
    }
    return out;
}

std::vector<int> all_seqs(const std::vector<Received>& requests) {
    std::vector<int> out;
    for (const auto& r : requests)
        for (int s : seqs_in(r))
            out.push_back(s);
    return out;
}

std::vector<int> range(int first, int count) {
    std::vector<int> v;
    for (int i = 0; i < count; ++i)
        v.push_back(first + i);
    return v;
}

// Waits for a condition on the sink's counters, which change on its sender threads.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = steady::now() + timeout;
    while (!pred()) {
        if (steady::now() >= deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

std::string base64(const unsigned char* data, int size) {
    std::string out(static_cast<std::size_t>(4 * ((size + 2) / 3)), '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, size);
    out.resize(static_cast<std::size_t>(n));
    return out;
}

// The receiver's side of Standard Webhooks, written against OpenSSL directly rather than the sink's code:
// decode the secret, HMAC-SHA256 "id.timestamp.body", compare with each "v1," signature in the header.
bool signature_valid(const Received& r, const std::string& secret) {
    const std::string encoded = secret.substr(6);  // after whsec_
    std::string key(encoded.size() * 3 / 4 + 3, '\0');
    const int decoded =
        EVP_DecodeBlock(reinterpret_cast<unsigned char*>(key.data()),
                        reinterpret_cast<const unsigned char*>(encoded.data()), static_cast<int>(encoded.size()));
    if (decoded < 0) return false;
    const std::size_t padding = std::count(encoded.end() - 2, encoded.end(), '=');
    key.resize(static_cast<std::size_t>(decoded) - padding);

    const std::string signed_content = r.header("webhook-id") + "." + r.header("webhook-timestamp") + "." + r.body;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_size = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(signed_content.data()), signed_content.size(), mac, &mac_size);
    const std::string expected = "v1," + base64(mac, static_cast<int>(mac_size));
    std::istringstream signatures(r.header("webhook-signature"));
    std::string one;
    while (signatures >> one)
        if (one == expected) return true;
    return false;
}

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

// Writes events one by one on a thread of its own, as the host's node thread would, counting the write()
// calls that returned. On the way out it makes the host stop, so a write() still blocked gives up.
class Writer {
public:
    Writer(WebhookSink& sink, FakeContext& context, int count) : context_(context) {
        thread_ = std::thread([this, &sink, count] {
            for (int i = 0; i < count; ++i) {
                sink.write(make_batch(i, 1));
                ++written;
            }
        });
    }
    ~Writer() {
        if (!thread_.joinable()) return;
        context_.stop_requested = true;
        thread_.join();
    }
    void join() { thread_.join(); }
    std::atomic<int> written{0};

private:
    FakeContext& context_;
    std::thread thread_;
};

class WebhookSinkTest : public ::testing::Test {
protected:
    ~WebhookSinkTest() override {
        if (sink) sink->stop();
        std::filesystem::remove_all(dir);
    }

    void configure(const std::string& json) {
        config = hubflow::testing::node_config(WebhookSink::describe(), json);
        sink = std::make_unique<WebhookSink>();
        sink->configure(ConfigView(config), context);
    }
    void start(const std::string& json) {
        configure(json);
        sink->start();
    }
    // The receiver's URL with `extra` keys; retries are fast so the suite stays short.
    std::string with_url(const std::string& extra, const std::string& url = {}) {
        const bool own_retry = extra.find("\"retry\"") != std::string::npos;
        return R"({"url": ")" + (url.empty() ? receiver.url() : url) + "\"" +
               (own_retry ? "" : R"(, "retry": {"initial_ms": 10, "max_ms": 40})") +
               (extra.empty() ? "" : ", " + extra) + "}";
    }
    std::uint64_t counter(const std::string& name) { return context.metric_registry.counters[name].value(); }
    std::int64_t gauge(const std::string& name) { return context.metric_registry.gauges[name].value(); }

    std::filesystem::path dir = [] {
        std::string pattern = (std::filesystem::temp_directory_path() / "hubflow-webhook-XXXXXX").string();
        if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        return std::filesystem::path(pattern);
    }();
    Receiver receiver;
    FakeContext context{"hook"};
    Value config;
    std::unique_ptr<WebhookSink> sink;
};

TEST_F(WebhookSinkTest, OneEventPerRequestAsJsonObject) {
    start(with_url(""));
    sink->write(make_batch(0, 5));
    sink->flush();
    auto requests = receiver.requests();
    ASSERT_EQ(requests.size(), 5u);
    for (const auto& r : requests) {
        EXPECT_EQ(r.method, "POST");
        EXPECT_EQ(r.uri, "/hook");
        EXPECT_EQ(r.header("content-type"), "application/json");
        EXPECT_EQ(hubflow::parse_json(r.body).type(), Value::Type::object) << r.body;
        EXPECT_EQ(r.header("webhook-signature"), "");  // no signing configured
    }
    auto seqs = all_seqs(requests);
    EXPECT_EQ(std::multiset<int>(seqs.begin(), seqs.end()), std::multiset<int>({0, 1, 2, 3, 4}));
    EXPECT_EQ(counter("delivered_events"), 5u);
    EXPECT_EQ(counter("requests"), 5u);
    EXPECT_EQ(gauge("pending_events"), 0);
}

TEST_F(WebhookSinkTest, BatchesByCountAsJsonArrayInOrder) {
    start(with_url(R"("batch": {"max_events": 4}, "max_in_flight": 1, "method": "PUT")"));
    sink->write(make_batch(0, 6));
    sink->write(make_batch(6, 4));
    ASSERT_TRUE(receiver.wait_for_requests(2));
    sink->flush();  // the last 2 go out now
    auto requests = receiver.requests();
    ASSERT_EQ(requests.size(), 3u);
    EXPECT_EQ(seqs_in(requests[0]), range(0, 4));
    EXPECT_EQ(seqs_in(requests[1]), range(4, 4));
    EXPECT_EQ(seqs_in(requests[2]), range(8, 2));
    EXPECT_EQ(requests[0].method, "PUT");
    EXPECT_EQ(requests[0].body.front(), '[');
    EXPECT_EQ(counter("delivered_events"), 10u);
}

TEST_F(WebhookSinkTest, NdjsonBatchesBoundedByBytes) {
    const std::size_t event_size = make_event(10).payload.size() + 1;  // with its line break
    const std::size_t max_bytes = 3 * event_size + 1;                  // room for the line break added below
    start(with_url(R"("encoding": "ndjson", "batch": {"max_events": 100, "max_bytes": )" + std::to_string(max_bytes) +
                   R"(}, "max_in_flight": 1)"));
    EventBatch batch = make_batch(10, 8);
    batch[2].payload = "{\"seq\":12,\n\"site_id\":\"site-1\",\"kind\":\"entry\"}";  // a raw line break inside
    sink->write(batch);
    sink->flush();
    auto requests = receiver.requests();
    ASSERT_EQ(requests.size(), 3u);
    for (const auto& r : requests) {
        EXPECT_EQ(r.header("content-type"), "application/x-ndjson");
        EXPECT_LE(r.body.size(), max_bytes);
    }
    EXPECT_EQ(seqs_in(requests[0]), range(10, 3));
    EXPECT_EQ(seqs_in(requests[1]), range(13, 3));
    EXPECT_EQ(seqs_in(requests[2]), range(16, 2));
}

TEST_F(WebhookSinkTest, BatchSentWhenItsTimeoutPasses) {
    start(with_url(R"("batch": {"max_events": 100, "timeout_ms": 200})"));
    sink->write(make_batch(0, 3));
    sink->tick();
    context.clock_control().advance(199ms);
    sink->tick();
    EXPECT_EQ(receiver.count(), 0u);
    context.clock_control().advance(1ms);
    sink->tick();
    ASSERT_TRUE(receiver.wait_for_requests(1));
    EXPECT_EQ(seqs_in(receiver.requests()[0]), range(0, 3));
    EXPECT_LE(sink->tick_interval(), 200ms);
}

TEST_F(WebhookSinkTest, HeadersBearerAndGzip) {
    start(with_url(R"("headers": {"X-Api-Key": "k-123", "X-Tenant": "t1"}, "auth": {"bearer": "tok-456"},
                      "compression": "gzip", "batch": {"max_events": 50})"));
    sink->write(make_batch(0, 50));
    sink->flush();
    ASSERT_EQ(receiver.count(), 1u);
    const Received r = receiver.requests()[0];
    EXPECT_EQ(r.header("x-api-key"), "k-123");
    EXPECT_EQ(r.header("x-tenant"), "t1");
    EXPECT_EQ(r.header("authorization"), "Bearer tok-456");
    EXPECT_EQ(r.header("content-encoding"), "gzip");
    EXPECT_LT(r.raw_body.size(), r.body.size());  // compressed on the wire
    EXPECT_EQ(seqs_in(r), range(0, 50));
    EXPECT_EQ(counter("bytes_sent"), r.raw_body.size());
    // No header value reaches the log.
    for (const auto& [level, line] : context.logger.lines) {
        EXPECT_EQ(line.find("k-123"), std::string::npos) << line;
        EXPECT_EQ(line.find("tok-456"), std::string::npos) << line;
    }
}

TEST_F(WebhookSinkTest, BasicAuth) {
    start(with_url(R"("auth": {"basic": {"user": "svc", "password": "p@ss:word"}})"));
    sink->write(make_batch(0, 1));
    ASSERT_TRUE(receiver.wait_for_requests(1));
    // base64("svc:p@ss:word")
    EXPECT_EQ(receiver.requests()[0].header("authorization"), "Basic c3ZjOnBAc3M6d29yZA==");
}

TEST_F(WebhookSinkTest, OneConnectionCarriesEveryRequest) {
    start(with_url(R"("max_in_flight": 1)"));
    for (int i = 0; i < 30; ++i)
        sink->write(make_batch(i, 1));
    sink->flush();
    EXPECT_EQ(receiver.count(), 30u);
    EXPECT_EQ(receiver.connections(), 1);
    EXPECT_EQ(all_seqs(receiver.requests()), range(0, 30));
}

TEST_F(WebhookSinkTest, RequestsInFlightAreBoundedAndWritesBlockBeyondTheQueue) {
    start(with_url(R"("max_in_flight": 3)"));
    receiver.hold();
    Writer writer(*sink, context, 10);
    ASSERT_TRUE(receiver.wait_for_active(3));
    // 3 on the wire, 3 queued; the 7th write has its event but cannot queue the request.
    ASSERT_TRUE(eventually([&] { return gauge("pending_events") == 7; }));
    EXPECT_EQ(writer.written.load(), 6);
    EXPECT_EQ(receiver.count(), 3u);
    receiver.release();
    writer.join();
    sink->flush();
    EXPECT_EQ(receiver.count(), 10u);
    EXPECT_EQ(receiver.max_active(), 3);
    EXPECT_LE(receiver.connections(), 3);
    EXPECT_EQ(counter("delivered_events"), 10u);
}

TEST_F(WebhookSinkTest, ServerErrorsAreRetriedWithTheSameWebhookId) {
    setenv("HUBFLOW_WEBHOOK_TEST_SECRET", test_secret, 1);
    receiver.respond([](const Received&, int n) {
        if (n == 0) return Reply{500, "boom"};
        if (n == 1) return Reply{503, "busy"};
        return Reply{200, "ok"};
    });
    start(with_url(R"("signing": {"secret_env": "HUBFLOW_WEBHOOK_TEST_SECRET"})"));
    sink->write(make_batch(0, 1));
    sink->flush();
    auto requests = receiver.requests();
    ASSERT_EQ(requests.size(), 3u);
    EXPECT_EQ(requests[0].header("webhook-id"), requests[2].header("webhook-id"));
    EXPECT_EQ(requests[0].body, requests[2].body);
    EXPECT_EQ(counter("delivered_events"), 1u);
    EXPECT_EQ(counter("retries"), 2u);
    EXPECT_EQ(counter("request_errors"), 2u);
    EXPECT_EQ(counter("dead_lettered_events") + counter("failed_events"), 0u);
    EXPECT_TRUE(context.logger.contains("HTTP 500"));
}

TEST_F(WebhookSinkTest, TooManyRequestsWaitsForRetryAfter) {
    receiver.respond([](const Received&, int n) {
        if (n == 0) return Reply{429, "slow down", {{"Retry-After", "1"}}};
        return Reply{};
    });
    start(with_url(""));  // backoff alone would retry within 10 ms
    const auto before = steady::now();
    sink->write(make_batch(0, 1));
    sink->flush();
    const auto waited = steady::now() - before;
    ASSERT_EQ(receiver.count(), 2u);
    EXPECT_GE(waited, 950ms);
    EXPECT_EQ(counter("delivered_events"), 1u);
    EXPECT_TRUE(context.logger.contains("(Retry-After)"));
}

TEST_F(WebhookSinkTest, ReceiverDownHoldsBackpressureUntilItComesUp) {
    const std::uint16_t port = receiver.port();
    const std::string url = receiver.url();
    receiver.stop();  // nobody listens there now
    start(with_url(R"("max_in_flight": 1)", url));
    Writer writer(*sink, context, 5);
    // The sender keeps failing and retrying; one request is being retried, one is queued, and write() holds
    // the third: the writer does not get ahead however long the receiver is away.
    ASSERT_TRUE(eventually([&] { return counter("retries") >= 5; }));
    EXPECT_EQ(writer.written.load(), 2);
    EXPECT_EQ(counter("delivered_events"), 0u);
    EXPECT_EQ(gauge("pending_events"), 3);

    Receiver back(port);
    writer.join();
    sink->flush();
    EXPECT_EQ(all_seqs(back.requests()), range(0, 5));
    EXPECT_EQ(counter("delivered_events"), 5u);
    EXPECT_EQ(counter("undelivered_events") + counter("failed_events"), 0u);
}

TEST_F(WebhookSinkTest, ClientErrorGoesToTheDeadLetterFileWithStatusAndBody) {
    const std::string dead = (dir / "dead" / "webhook.jsonl").string();
    receiver.respond([](const Received& r, int) {
        if (r.body.find("\"seq\":2") != std::string::npos) return Reply{400, "field \"lock\" is \xff required"};
        return Reply{};
    });
    start(with_url(R"("batch": {"max_events": 2}, "max_in_flight": 1, "dead_letter": ")" + dead + "\""));
    AckRecorder acks;
    sink->deliver(make_batch(0, 6), acks.ack());
    sink->flush();
    // Dead-lettered events are refused for good: finished, counted, never sent again.
    EXPECT_EQ(acks.delivered(), 4u);
    EXPECT_EQ(acks.refused(), 2u);
    EXPECT_EQ(acks.settled(), 6u);
    EXPECT_EQ(receiver.count(), 3u);  // never retried
    EXPECT_EQ(counter("delivered_events"), 4u);
    EXPECT_EQ(counter("dead_lettered_events"), 2u);
    EXPECT_EQ(counter("retries"), 0u);
    auto lines = lines_of(dead);
    ASSERT_EQ(lines.size(), 2u);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        Value record = hubflow::parse_json(lines[i]);
        EXPECT_EQ(record.find("status")->as_int(), 400);
        EXPECT_EQ(record.find("response")->as_string(), "field \"lock\" is ? required");
        EXPECT_EQ(record.find("attempts")->as_int(), 1);
        EXPECT_EQ(record.find("error")->as_string(), "refused by the receiver");
        EXPECT_EQ(record.find("webhook_id")->as_string().rfind("msg_", 0), 0u);
        EXPECT_EQ(record.find("event")->find("seq")->as_int(), 2 + static_cast<int>(i));
    }
    EXPECT_TRUE(context.logger.contains("HTTP 400"));
}

TEST_F(WebhookSinkTest, RefusalWithoutDeadLetterFileIsCountedAndLogged) {
    receiver.respond([](const Received&, int) { return Reply{404, "no such hook"}; });
    start(with_url(""));
    AckRecorder acks;
    sink->deliver(make_batch(0, 2), acks.ack());
    sink->flush();
    EXPECT_EQ(acks.refused(), 2u);  // counting is all the configuration asked for
    EXPECT_EQ(acks.settled(), 2u);
    EXPECT_EQ(counter("failed_events"), 2u);
    EXPECT_TRUE(context.logger.contains("no dead_letter file"));
    EXPECT_TRUE(context.logger.contains("no such hook"));
}

// A dead-letter file that cannot be written keeps the events nowhere: they are lost, not finished, so their
// source keeps its checkpoint before them and sends them again after a restart.
TEST_F(WebhookSinkTest, ADeadLetterFileThatCannotBeWrittenLosesTheEvents) {
    std::ofstream(dir / "not-a-folder") << "x";
    // A strftime field: the file is opened at the first refusal, under a "folder" that is a file.
    const std::string dead = (dir / "not-a-folder" / "dead-%Y.jsonl").string();
    receiver.respond([](const Received&, int) { return Reply{400, "no"}; });
    start(with_url(R"("dead_letter": ")" + dead + "\""));
    AckRecorder acks;
    sink->deliver(make_batch(0, 2), acks.ack());
    sink->flush();
    EXPECT_EQ(acks.lost(), 2u);
    EXPECT_EQ(acks.settled(), 2u);
    EXPECT_EQ(counter("failed_events"), 2u);
    EXPECT_TRUE(context.logger.contains("NOT written to the dead-letter file"));
}

TEST_F(WebhookSinkTest, MaxAttemptsSendsTheEventsToTheDeadLetterFile) {
    const std::string dead = (dir / "dead.jsonl").string();
    receiver.respond([](const Received&, int) { return Reply{503, "down for maintenance"}; });
    start(with_url(R"("retry": {"initial_ms": 5, "max_ms": 10, "max_attempts": 3}, "dead_letter": ")" + dead + "\""));
    sink->write(make_batch(0, 1));
    sink->flush();
    EXPECT_EQ(receiver.count(), 3u);
    auto lines = lines_of(dead);
    ASSERT_EQ(lines.size(), 1u);
    Value record = hubflow::parse_json(lines[0]);
    EXPECT_EQ(record.find("status")->as_int(), 503);
    EXPECT_EQ(record.find("attempts")->as_int(), 3);
    EXPECT_EQ(record.find("error")->as_string(), "gave up after 3 attempts: HTTP 503");
    EXPECT_EQ(counter("dead_lettered_events"), 1u);
    EXPECT_EQ(counter("retries"), 2u);
}

TEST_F(WebhookSinkTest, ReceiverVerifiesTheStandardWebhooksSignature) {
    setenv("HUBFLOW_WEBHOOK_TEST_SECRET", test_secret, 1);
    receiver.respond([](const Received& r, int) {
        return signature_valid(r, test_secret) ? Reply{204} : Reply{401, "bad signature"};
    });
    start(with_url(R"("signing": {"secret_env": "HUBFLOW_WEBHOOK_TEST_SECRET"}, "batch": {"max_events": 3},
                      "compression": "gzip")"));
    sink->write(make_batch(0, 7));
    sink->flush();
    auto requests = receiver.requests();
    ASSERT_EQ(requests.size(), 3u);
    std::set<std::string> ids;
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    for (const auto& r : requests) {
        EXPECT_TRUE(signature_valid(r, test_secret)) << r.header("webhook-signature");
        EXPECT_NEAR(std::stoll(r.header("webhook-timestamp")), now, 60);
        ids.insert(r.header("webhook-id"));
    }
    EXPECT_EQ(ids.size(), 3u);  // one id per message
    EXPECT_EQ(counter("delivered_events"), 7u);
    EXPECT_EQ(counter("failed_events"), 0u);

    // The same check refuses a signature made with another secret.
    Received forged = requests[0];
    forged.body += " ";
    EXPECT_FALSE(signature_valid(forged, test_secret));
}

TEST_F(WebhookSinkTest, FlushSendsTheOpenBatch) {
    start(with_url(R"("batch": {"max_events": 100, "timeout_ms": 60000})"));
    sink->write(make_batch(0, 5));
    EXPECT_EQ(receiver.count(), 0u);
    sink->flush();
    ASSERT_EQ(receiver.count(), 1u);
    EXPECT_EQ(seqs_in(receiver.requests()[0]), range(0, 5));
    EXPECT_EQ(counter("delivered_events"), 5u);
}

TEST_F(WebhookSinkTest, ShutdownGivesUpAtTheDeadlineAndCountsEveryEvent) {
    receiver.hold();
    start(with_url(R"("max_in_flight": 2, "flush_timeout_ms": 200)"));
    Writer writer(*sink, context, 5);
    ASSERT_TRUE(receiver.wait_for_active(2));
    ASSERT_TRUE(eventually([&] { return gauge("pending_events") == 5; }));
    EXPECT_EQ(writer.written.load(), 4);  // 2 on the wire, 2 queued, the 5th write blocked

    const auto before = steady::now();
    context.stop_requested = true;
    writer.join();  // the blocked write gives up at flush_timeout_ms
    sink->flush();
    EXPECT_LT(steady::now() - before, 2s);
    EXPECT_EQ(counter("undelivered_events"), 5u);
    EXPECT_EQ(counter("delivered_events"), 0u);
    EXPECT_EQ(gauge("pending_events"), 0);
    EXPECT_TRUE(context.logger.contains("2 queued, 0 waiting to be retried, 2 cut off on the wire"));
    EXPECT_TRUE(context.logger.contains("5 events were not delivered"));
}

// Requests are cut by count, not along input batches: one input batch spread over two requests and one request
// carrying parts of two batches settle every event once, each when its own request is answered.
TEST_F(WebhookSinkTest, EachEventIsSettledOnceWhenItsRequestIsAnswered) {
    start(with_url(R"("batch": {"max_events": 4, "timeout_ms": 60000}, "max_in_flight": 1)"));
    receiver.hold();
    AckRecorder first, second;
    sink->deliver(make_batch(0, 6), first.ack());  // a request of 0-3 goes out; 4, 5 wait in the open batch
    ASSERT_TRUE(receiver.wait_for_active(1));
    EXPECT_EQ(first.settled(), 0u) << "settled before the receiver answered";
    receiver.release();
    ASSERT_TRUE(first.wait_settled(4, 5s));
    EXPECT_EQ(first.delivered(), 4u);
    sink->deliver(make_batch(6, 4), second.ack());  // a request of 4, 5, 6, 7; 8, 9 wait
    ASSERT_TRUE(first.wait_settled(6, 5s));
    ASSERT_TRUE(second.wait_settled(2, 5s));
    EXPECT_EQ(second.settled(), 2u);
    sink->flush();
    EXPECT_EQ(first.delivered(), 6u);
    EXPECT_EQ(second.delivered(), 4u);
    EXPECT_EQ(first.settled() + second.settled(), 10u);
    auto requests = receiver.requests();
    ASSERT_EQ(requests.size(), 3u);
    EXPECT_EQ(seqs_in(requests[1]), range(4, 4));
}

// While the receiver is down nothing is settled, however long the sink retries; once it is back every event is
// settled as delivered, once.
TEST_F(WebhookSinkTest, NothingIsSettledWhileTheReceiverIsDown) {
    const std::uint16_t port = receiver.port();
    const std::string url = receiver.url();
    receiver.stop();
    start(with_url(R"("max_in_flight": 2)", url));
    AckRecorder acks;
    sink->deliver(make_batch(0, 3), acks.ack());
    ASSERT_TRUE(eventually([&] { return counter("retries") >= 6; }));
    EXPECT_EQ(acks.settled(), 0u);

    Receiver back(port);
    sink->flush();
    EXPECT_EQ(acks.delivered(), 3u);
    EXPECT_EQ(acks.settled(), 3u);
    EXPECT_EQ(all_seqs(back.requests()).size(), 3u);
}

// Given up at shutdown: not delivered, so left unsettled for the source to send again after a restart.
TEST_F(WebhookSinkTest, EventsAbandonedAtShutdownStayUnsettled) {
    receiver.hold();
    start(with_url(R"("batch": {"max_events": 2}, "max_in_flight": 1, "flush_timeout_ms": 200)"));
    AckRecorder acks;
    sink->deliver(make_batch(0, 5), acks.ack());
    ASSERT_TRUE(receiver.wait_for_active(1));
    context.stop_requested = true;
    sink->flush();
    sink->stop();
    EXPECT_EQ(counter("undelivered_events"), 5u);
    EXPECT_EQ(acks.settled(), 0u);
}

// The webhook-id is derived from the events, so two sink instances (two runs of the host, say) sending the same
// events give the same ids, with or without id metadata, signed or not.
TEST_F(WebhookSinkTest, TheWebhookIdIsTheSameWhenTheSameEventsAreSentAgain) {
    EventBatch batch = make_batch(0, 7);
    batch[4].meta.id.clear();  // identified by its payload instead
    batch[5].meta.id.clear();
    std::vector<std::vector<std::string>> ids(2);
    for (int run = 0; run < 2; ++run) {
        Receiver run_receiver;
        FakeContext run_context("hook");
        Value run_config = hubflow::testing::node_config(
            WebhookSink::describe(), with_url(R"("batch": {"max_events": 3}, "max_in_flight": 1)", run_receiver.url()));
        WebhookSink run_sink;
        run_sink.configure(ConfigView(run_config), run_context);
        run_sink.start();
        AckRecorder acks;
        run_sink.deliver(batch, acks.ack());
        run_sink.flush();
        run_sink.stop();
        EXPECT_EQ(acks.delivered(), batch.size());
        for (const auto& r : run_receiver.requests())
            ids[run].push_back(r.header("webhook-id"));
    }
    ASSERT_EQ(ids[0].size(), 3u);
    EXPECT_EQ(ids[0], ids[1]);
    EXPECT_EQ(std::set<std::string>(ids[0].begin(), ids[0].end()).size(), 3u);
    // "msg_" and SHA-256 of "i2:e0i2:e1i2:e2" (sha256sum), its first 128 bits.
    EXPECT_EQ(ids[0][0], "msg_9b4a8b93c124158dea8fddb44b799ed6");

    // One event per request: each event's id alone, so a receiver may also recompute it.
    start(with_url(""));
    sink->write(make_batch(0, 1));  // untracked: the id does not depend on tracking
    sink->flush();
    ASSERT_EQ(receiver.count(), 1u);
    EXPECT_EQ(receiver.requests()[0].header("webhook-id"), "msg_2902e11244f26d84609643e004e92dc4");  // "i2:e0"
}

// A sink that throws has delivered nothing it did not report: the events are lost, so the batch still ends.
TEST_F(WebhookSinkTest, ABatchRefusedByThrowingIsLost) {
    configure(with_url(""));
    AckRecorder acks;
    EXPECT_THROW(sink->deliver(make_batch(0, 3), acks.ack()), std::runtime_error);  // not started
    EXPECT_EQ(acks.lost(), 3u);
    EXPECT_EQ(acks.settled(), 3u);
}

TEST_F(WebhookSinkTest, ConfigErrorsNameTheKey) {
    setenv("HUBFLOW_WEBHOOK_BAD_SECRET", "whsec_not*base64!", 1);
    unsetenv("HUBFLOW_WEBHOOK_UNSET");
    struct Case {
        std::string json;
        std::string key;
    };
    const std::vector<Case> cases = {
        {R"({"url": "ftp://example.com/x"})", "url"},
        {R"({"url": "http://user:pw@example.com/x"})", "url"},
        {R"({"url": "http://example.com", "method": "GET"})", "method"},
        {R"({"url": "http://example.com", "batch": {"max_events": 0}})", "batch.max_events"},
        {R"({"url": "http://example.com", "batch": {"max_events": 5}, "encoding": "json"})", "encoding"},
        {R"({"url": "http://example.com", "encoding": "xml"})", "encoding"},
        {R"({"url": "http://example.com", "compression": "br"})", "compression"},
        {R"({"url": "http://example.com", "max_in_flight": 0})", "max_in_flight"},
        {R"({"url": "http://example.com", "retry": {"initial_ms": 500, "max_ms": 100}})", "retry.max_ms"},
        {R"({"url": "http://example.com", "headers": {"Content-Length": "3"}})", "headers.Content-Length"},
        {R"({"url": "http://example.com", "headers": {"X-A": 3}})", "headers.X-A"},
        {R"({"url": "http://example.com", "headers": {"Authorization": "x"}, "auth": {"bearer": "t"}})",
         "headers.Authorization"},
        {R"({"url": "http://example.com", "auth": {"bearer": "t", "basic": {"user": "u"}}})", "auth.basic"},
        {R"({"url": "http://example.com", "auth": {"bearer": ""}})", "auth.bearer"},
        {R"({"url": "http://example.com", "signing": {"secret_env": "HUBFLOW_WEBHOOK_UNSET"}})", "signing.secret_env"},
        {R"({"url": "http://example.com", "signing": {"secret_env": "HUBFLOW_WEBHOOK_BAD_SECRET"}})",
         "signing.secret_env"},
        {R"({"url": "http://example.com", "dead_letter": "x/{"})", "dead_letter"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.json);
        try {
            configure(c.json);
            ADD_FAILURE() << "accepted";
        } catch (const ConfigError& e) {
            EXPECT_EQ(e.key(), c.key) << e.what();
            EXPECT_EQ(std::string(e.what()).find("not*base64"), std::string::npos) << "secret in the message";
        }
    }
}

// ---- HTTPS: the receiver's certificate is verified against the system's CAs plus tls.ca_file ----

struct X509Free {
    void operator()(X509* p) const { X509_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
    ASSERT_NE(ext, nullptr) << value;
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

// A certificate for 127.0.0.1 signed by `issuer`, or a CA certificate when `issuer` is null and `ca`.
X509Ptr make_certificate(EVP_PKEY* key, bool ca, EVP_PKEY* issuer_key = nullptr, X509* issuer = nullptr) {
    static long serial = 1;
    X509Ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* subject = X509_get_subject_name(cert.get());
    const char* name = ca ? "hubflow webhook test CA" : "127.0.0.1";
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name), -1, -1, 0);
    X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : subject);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
    if (ca) {
        add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_extension(cert.get(), &ctx, NID_basic_constraints, "CA:FALSE");
        add_extension(cert.get(), &ctx, NID_subject_alt_name, "IP:127.0.0.1");
    }
    X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256());
    return cert;
}

void write_pem(const std::string& path, X509* cert, EVP_PKEY* key = nullptr) {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    if (cert) PEM_write_X509(f, cert);
    if (key) PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
}

class WebhookHttpsTest : public WebhookSinkTest {
protected:
    // An HTTPS receiver whose certificate comes from a CA of this test (written to ca_file) or is self-signed.
    std::unique_ptr<Receiver> https_receiver(bool from_ca) {
        PkeyPtr ca_key(EVP_EC_gen("P-256"));
        X509Ptr ca = make_certificate(ca_key.get(), true);
        write_pem(ca_file, ca.get());
        PkeyPtr key(EVP_EC_gen("P-256"));
        X509Ptr cert =
            from_ca ? make_certificate(key.get(), false, ca_key.get(), ca.get()) : make_certificate(key.get(), false);
        const std::string cert_file = (dir / "server.crt").string(), key_file = (dir / "server.key").string();
        write_pem(cert_file, cert.get());
        write_pem(key_file, nullptr, key.get());
        Poco::Net::Context::Ptr context = new Poco::Net::Context(Poco::Net::Context::SERVER_USE, key_file, cert_file,
                                                                 "", Poco::Net::Context::VERIFY_NONE);
        Poco::Net::SecureServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0), 64, context);
        return std::make_unique<Receiver>(socket, "https");
    }
    std::string ca_file = (dir / "ca.pem").string();
};

TEST_F(WebhookHttpsTest, TrustsTheCaFile) {
    auto server = https_receiver(true);
    start(with_url(R"("tls": {"ca_file": ")" + ca_file + R"("})", server->url()));
    sink->write(make_batch(0, 2));
    sink->flush();
    EXPECT_EQ(server->count(), 2u);
    EXPECT_EQ(counter("delivered_events"), 2u);
}

TEST_F(WebhookHttpsTest, RefusesAnUntrustedCertificate) {
    auto server = https_receiver(true);
    start(with_url(R"("retry": {"initial_ms": 5, "max_ms": 10, "max_attempts": 2})", server->url()));
    sink->write(make_batch(0, 1));
    sink->flush();
    EXPECT_EQ(server->count(), 0u);
    EXPECT_EQ(counter("delivered_events"), 0u);
    EXPECT_EQ(counter("failed_events"), 1u);
    EXPECT_TRUE(context.logger.contains("ertificate")) << context.logger.lines.back().second;
}

TEST_F(WebhookHttpsTest, InsecureAcceptsASelfSignedCertificate) {
    auto server = https_receiver(false);
    start(with_url(R"("tls": {"insecure": true})", server->url()));
    sink->write(make_batch(0, 1));
    sink->flush();
    EXPECT_EQ(server->count(), 1u);
    EXPECT_EQ(counter("delivered_events"), 1u);
}

}  // namespace
