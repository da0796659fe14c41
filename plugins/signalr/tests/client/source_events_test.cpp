// The `signalr` source in process, on a FakeContext, against a one-connection hub written with the plugin's
// own codecs: the events' payloads and metadata exactly, and the goodbye on shutdown.
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "client/signalr_source.h"
#include "hubflow/testing/fake_context.h"
#include "hubflow/testing/node_config.h"
#include "protocol/hub_protocol.h"
#include "protocol/msgpack_protocol.h"
#include "protocol/websocket.h"

namespace hubflow::signalr {
namespace {

using namespace std::chrono_literals;

// Accepts one client, completes the upgrade and the handshake, sends `first_frame` (which carries the
// handshake answer; in a binary frame for `messagepack`), then records the client's records (or the types of its
// MessagePack messages) until it sends a WebSocket close.
class OneShotHub {
public:
    explicit OneShotHub(std::string first_frame, bool messagepack = false)
        : socket_(Poco::Net::SocketAddress("127.0.0.1", 0)),
          first_frame_(std::move(first_frame)),
          messagepack_(messagepack) {
        thread_ = std::thread([this] { serve(); });
    }
    ~OneShotHub() {
        done_ = true;
        thread_.join();
    }
    std::uint16_t port() const { return socket_.address().port(); }

    std::string request_head;            // the upgrade request as received
    std::vector<std::string> records;    // what the client sent after its handshake
    std::vector<int> messagepack_types;  // the same, for a MessagePack client
    std::string handshake;               // the client's handshake request
    std::uint16_t close_code = 0;        // the client's WebSocket close
    std::atomic<bool> pinged{false};     // a SignalR ping arrived (the client's loop is running)
    std::atomic<bool> finished{false};   // the client closed
    std::string error;                   // why the hub gave up, if it did

private:
    void serve() {
        const auto deadline = std::chrono::steady_clock::now() + 15s;
        auto expired = [&] { return done_ || std::chrono::steady_clock::now() > deadline; };
        while (!socket_.poll(Poco::Timespan(0, 50'000), Poco::Net::Socket::SELECT_READ))
            if (expired()) return;
        Poco::Net::StreamSocket client = socket_.acceptConnection();
        client.setReceiveTimeout(Poco::Timespan(0, 50'000));
        std::string in;
        char buffer[16 * 1024];
        auto receive = [&]() -> bool {
            try {
                int n = client.receiveBytes(buffer, sizeof buffer);
                if (n <= 0) return false;
                in.append(buffer, static_cast<std::size_t>(n));
            } catch (const Poco::TimeoutException&) {
            }
            return true;
        };
        while (in.find("\r\n\r\n") == std::string::npos)
            if (!receive() || expired()) return void(error = "no upgrade request");
        request_head = in.substr(0, in.find("\r\n\r\n"));
        const auto key_at = request_head.find("Sec-WebSocket-Key: ") + 19;
        const std::string key = request_head.substr(key_at, request_head.find("\r\n", key_at) - key_at);
        in.erase(0, in.find("\r\n\r\n") + 4);
        const std::string answer =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: " +
            websocket_accept_key(key) + "\r\n\r\n";
        client.sendBytes(answer.data(), static_cast<int>(answer.size()));

        FrameDecoder decoder(Endpoint::server, 1 << 20);
        messagepack::MessageReader reader(1 << 20);
        HubMessage message;
        std::string parse_error;
        std::vector<WsEvent> events;
        bool handshaken = false;
        while (!expired()) {
            events.clear();
            if (!decoder.feed(in, events)) return void(error = decoder.error().reason);
            in.clear();
            for (const WsEvent& e : events) {
                if (e.kind == WsEvent::close) {
                    close_code = e.close_code;
                    std::string frame;
                    append_frame(frame, Opcode::close, close_payload(close_code::normal, ""));
                    client.sendBytes(frame.data(), static_cast<int>(frame.size()));
                    finished = true;
                    return;
                }
                if (e.kind == WsEvent::binary && handshaken && messagepack_) {
                    reader.feed(e.payload);
                    std::string_view body;
                    while (reader.next(body)) {
                        if (!messagepack::parse_message(body, message, parse_error)) return void(error = parse_error);
                        messagepack_types.push_back(message.type);
                        if (message.type == message_type::ping) pinged = true;
                    }
                    continue;
                }
                if (e.kind != WsEvent::text) continue;
                RecordSplitter split(e.payload);
                std::string_view record;
                while (split.next(record)) {
                    if (!handshaken) {
                        handshaken = true;
                        handshake = record;
                        std::string frame;
                        append_frame(frame, messagepack_ ? Opcode::binary : Opcode::text, first_frame_);
                        client.sendBytes(frame.data(), static_cast<int>(frame.size()));
                        continue;
                    }
                    records.emplace_back(record);
                    if (record.find(R"("type":6)") != std::string_view::npos) pinged = true;
                }
            }
            if (!receive()) return void(error = "the client went away without a close");
        }
    }

    Poco::Net::ServerSocket socket_;
    std::string first_frame_;
    bool messagepack_;
    std::atomic<bool> done_{false};
    std::thread thread_;
};

template <typename Predicate>
bool wait_until(Predicate p, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!p()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

TEST(SignalrSourceEvents, PayloadAndMetadataFromOneBatchedFrameThenAGoodbye) {
    std::string frame = handshake_response();
    append_invocation(frame, "ReceiveMessage", R"({"id":"e1","user_id":"u1","lock":{"id":"L"}})");
    append_invocation(frame, "receivemessage", R"({"user_id":null,"id":"e2"})");  // method names: any case
    append_invocation(frame, "SomethingElse", R"({"id":"ignored"})");
    frame += R"({"type":1,"target":"ReceiveMessage","arguments":[{"id":"e3","user_id":"u3"}],"future":1})";
    frame += '\x1e';
    append_invocation(frame, "ReceiveMessage", "not JSON at all");
    OneShotHub hub(frame);

    testing::FakeContext context("ks");
    Value config = testing::node_config(SignalrSource::describe(),
                                        R"({"url": "ws://127.0.0.1:)" + std::to_string(hub.port()) +
                                            R"(/v1/hub/incidents?site_id=S1&user_id=U9", "ping_interval_s": 0.05,
                                          "auth": {"token": "secret-token-value", "token_file": "", "oauth2": null}})");
    SignalrSource source;
    source.configure(ConfigView(config), context);
    std::thread runner([&] { source.run(); });
    // A ping comes from the loop after it emitted what the frame held.
    const bool pinged = wait_until([&] { return hub.pinged.load(); }, 10s);
    context.stop_requested = true;
    runner.join();
    ASSERT_TRUE(pinged) << hub.error;
    ASSERT_TRUE(wait_until([&] { return hub.finished.load(); }, 5s)) << hub.error;

    EXPECT_NE(hub.request_head.find("GET /v1/hub/incidents?site_id=S1&user_id=U9 HTTP/1.1"), std::string::npos);
    EXPECT_NE(hub.request_head.find("Authorization: Bearer secret-token-value"), std::string::npos);

    const auto& events = context.emitted[""];
    ASSERT_EQ(events.size(), 4u);
    EXPECT_EQ(events[0].payload, R"({"id":"e1","user_id":"u1","lock":{"id":"L"}})");
    EXPECT_EQ(events[0].meta.id, "e1");
    EXPECT_EQ(events[0].meta.user_id, "u1");
    EXPECT_EQ(events[1].meta.id, "e2");
    EXPECT_EQ(events[1].meta.user_id, "");
    EXPECT_EQ(events[2].payload, R"({"id":"e3","user_id":"u3"})") << "a non-string argument is kept as JSON text";
    EXPECT_EQ(events[2].meta.id, "e3");
    EXPECT_EQ(events[2].meta.user_id, "u3");
    EXPECT_EQ(events[3].payload, "not JSON at all");
    EXPECT_EQ(events[3].meta.id, "");
    for (const Event& e : events) {
        EXPECT_EQ(e.meta.kind, "incident");
        EXPECT_EQ(e.meta.site_id, "S1");
        EXPECT_EQ(e.meta.source, "ks");
        EXPECT_EQ(e.meta.received_at, context.clock().now());
    }

    // Shutdown: a SignalR Close, then a WebSocket close with 1000.
    ASSERT_FALSE(hub.records.empty());
    EXPECT_EQ(hub.records.back(), R"({"type":7})");
    EXPECT_EQ(hub.close_code, close_code::normal);
    EXPECT_EQ(context.metric_registry.counters["connect_attempts"].value(), 1u);
    EXPECT_EQ(context.metric_registry.gauges["connected"].value(), 0);
    EXPECT_FALSE(context.logger.contains("secret-token-value"));
}

TEST(SignalrSourceEvents, MessagePackPayloadsAndMetadataThenAMessagePackGoodbye) {
    // The handshake answer and the messages in one binary frame, as ASP.NET Core may send them.
    std::string frame = handshake_response();
    messagepack::append_invocation(frame, "ReceiveMessage", R"({"id":"e1","user_id":"u1","text":"\u00e9 \"q\""})");
    messagepack::append_ping(frame);
    messagepack::append_invocation(frame, "SomethingElse", R"({"id":"ignored"})");
    messagepack::append_invocation(frame, "receivemessage", R"({"id":"e2"})");
    OneShotHub hub(frame, true);

    testing::FakeContext context("ks");
    Value config =
        testing::node_config(SignalrSource::describe(), R"({"url": "ws://127.0.0.1:)" + std::to_string(hub.port()) +
                                                            R"(/v1/hub/entries?site_id=S2", "ping_interval_s": 0.05,
                                          "protocol": "messagepack"})");
    SignalrSource source;
    source.configure(ConfigView(config), context);
    std::thread runner([&] { source.run(); });
    const bool pinged = wait_until([&] { return hub.pinged.load(); }, 10s);
    context.stop_requested = true;
    runner.join();
    ASSERT_TRUE(pinged) << hub.error;
    ASSERT_TRUE(wait_until([&] { return hub.finished.load(); }, 5s)) << hub.error;

    EXPECT_EQ(hub.handshake, R"({"protocol":"messagepack","version":1})");
    const auto& events = context.emitted[""];
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].payload, R"({"id":"e1","user_id":"u1","text":"\u00e9 \"q\""})");
    EXPECT_EQ(events[0].meta.id, "e1");
    EXPECT_EQ(events[0].meta.user_id, "u1");
    EXPECT_EQ(events[1].payload, R"({"id":"e2"})");
    EXPECT_EQ(events[1].meta.id, "e2");
    for (const Event& e : events) {
        EXPECT_EQ(e.meta.kind, "entry");
        EXPECT_EQ(e.meta.site_id, "S2");
    }
    // Pings while open, then a MessagePack Close and a WebSocket close with 1000.
    ASSERT_FALSE(hub.messagepack_types.empty());
    EXPECT_EQ(hub.messagepack_types.front(), message_type::ping);
    EXPECT_EQ(hub.messagepack_types.back(), message_type::close);
    EXPECT_EQ(hub.close_code, close_code::normal);
    EXPECT_EQ(context.metric_registry.counters["protocol_errors"].value(), 0u);
}

}  // namespace
}  // namespace hubflow::signalr
