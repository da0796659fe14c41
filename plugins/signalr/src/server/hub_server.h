#pragma once
// The KS-compatible SignalR hub server: WebSockets with negotiation skipped, JSON or MessagePack hub protocol,
// events pushed to every connection whose hub, site and user match.
//
// Threading: epoll loops, each on a thread of its own, own their connections outright (no locks on a
// connection). The front loop accepts, reads the upgrade request, verifies the token and runs the SignalR
// handshake; then it hands the connection to one of `io_threads` delivery loops, round robin. broadcast() runs
// on the sink's thread: it serialises each event into its WebSocket frame once per protocol in use and posts
// the shared, immutable bytes to every delivery loop, which queue them on the matching connections.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <Poco/Net/Context.h>

#include "auth/roles.h"
#include "auth/token_verifier.h"
#include "hubflow/context.h"
#include "hubflow/event.h"

namespace hubflow::signalr {

class HistoryEndpoint;

struct HubServerSettings {
    std::string listen = "127.0.0.1:5000";
    std::chrono::milliseconds handshake_timeout{15'000};
    std::chrono::milliseconds ping_interval{15'000};
    std::chrono::milliseconds client_timeout{30'000};
    std::size_t max_message_bytes = std::size_t{32} * 1024;
    std::size_t max_buffered_bytes = std::size_t{4} * 1024 * 1024;
    int io_threads = 1;
    std::string method = "ReceiveMessage";
    std::string tls_cert;  // PEM certificate chain; empty = plain ws://
    std::string tls_key;   // PEM private key
};

// Counters the server keeps (owned by the node's metrics).
struct HubServerMetrics {
    Gauge* connections = nullptr;
    Counter* accepted = nullptr;
    Counter* refused = nullptr;  // 4xx answered to an upgrade request
    Counter* deliveries = nullptr;
    Counter* slow_clients_closed = nullptr;
    Counter* protocol_errors = nullptr;
};

class HubServer {
public:
    HubServer(HubServerSettings settings, std::shared_ptr<TokenVerifier> verifier, std::shared_ptr<RoleDirectory> roles,
              Logger& log, HubServerMetrics metrics);
    ~HubServer();
    HubServer(const HubServer&) = delete;
    HubServer& operator=(const HubServer&) = delete;

    // Before start(): also answer GET /v1.1/sites/{site}/entries and /incidents on this listener.
    void serve_history(std::shared_ptr<HistoryEndpoint> history) { history_ = std::move(history); }

    // Starts the loops on `listen_fd` (a listening socket it then owns), or binds settings.listen itself when
    // it is -1; throws std::runtime_error naming the address when it cannot listen.
    void start(int listen_fd = -1);
    bool tls() const { return !tls_.isNull(); }
    // The address actually bound ("127.0.0.1:41234" when the port was 0).
    std::string bound_address() const { return bound_address_; }

    // Pushes each entry or incident of the batch to its subscribers. Events of other kinds, or without a
    // site, match no hub and are skipped.
    void broadcast(const EventBatch& batch);

    // Sends every client a Close with allowReconnect (so official clients reconnect), closes the sockets and
    // joins the loops.
    void stop();

    std::size_t connection_count() const;

    class Loop;  // one epoll loop (hub_server.cpp)

private:
    HubServerSettings settings_;
    std::shared_ptr<TokenVerifier> verifier_;
    std::shared_ptr<RoleDirectory> roles_;
    Logger& log_;
    HubServerMetrics metrics_;
    std::shared_ptr<HistoryEndpoint> history_;
    // Frames with the subscription key(s) they go to.
    using Broadcast = std::vector<std::pair<std::string, std::shared_ptr<const std::string>>>;
    void post_broadcast(Broadcast items, std::size_t bytes);
    // Called by a delivery loop when it acknowledges broadcast bytes.
    void release_broadcast_bytes(std::size_t bytes);

    std::unique_ptr<Loop> front_;
    std::vector<std::unique_ptr<Loop>> loops_;  // delivery loops
    // Broadcast bytes posted to the delivery loops and not yet acknowledged, summed over the loops.
    std::mutex broadcast_mutex_;
    std::condition_variable broadcast_room_;
    std::size_t broadcast_bytes_in_flight_ = 0;
    std::size_t broadcast_window_ = 0;  // per loop
    // Connections subscribed with the MessagePack protocol, over all loops.
    std::atomic<std::size_t> messagepack_subscribers_{0};
    Poco::Net::Context::Ptr tls_;
    int listen_fd_ = -1;
    std::string bound_address_;
    bool started_ = false;
};

}  // namespace hubflow::signalr
