#pragma once
// The `signalr` source's connections: one per hub URL, all in one epoll loop on the source's thread (so events
// are emitted where they are read, with no queue or lock between). Each connection runs
//   connect -> TLS -> HTTP upgrade -> SignalR handshake -> open -> (dropped) -> backoff -> connect ...
// for ever by default. Every interval without a connection is logged and counted when it ends.

#include <Poco/Net/Context.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "client/backfill.h"
#include "client/hub_endpoint.h"
#include "client/token_provider.h"
#include "hubflow/context.h"
#include "protocol/hub_protocol.h"

namespace hubflow::signalr {

struct HubClientSettings {
    std::vector<HubEndpoint> endpoints;
    std::string method = "ReceiveMessage";
    HubProtocol protocol = HubProtocol::json;
    std::string kind;  // overrides the kind taken from each URL's path
    bool token_in_query = false;
    std::chrono::milliseconds reconnect_initial{1'000};
    std::chrono::milliseconds reconnect_max{30'000};
    std::chrono::milliseconds config_error_delay{60'000};  // after a 403 or a 404
    std::uint32_t max_attempts = 0;                        // consecutive failures before giving up; 0 = never
    std::chrono::milliseconds ping_interval{15'000};
    std::chrono::milliseconds server_timeout{30'000};
    std::chrono::milliseconds handshake_timeout{15'000};
    std::size_t max_message_bytes = std::size_t{1} << 20;
    std::string ca_file;
    bool insecure = false;
    BackfillSettings backfill;
};

class HubClient {
public:
    HubClient(HubClientSettings settings, TokenSettings tokens, Context& context);
    ~HubClient();
    HubClient(const HubClient&) = delete;
    HubClient& operator=(const HubClient&) = delete;

    // Runs until the host stops (then sends every open hub a Close message and a WebSocket close), or until
    // a connection gives up after max_attempts (then reports the failure through the context).
    void run();

    struct Connection;  // hub_client.cpp

private:
    HubClientSettings settings_;
    Context& context_;
    Poco::Net::Context::Ptr tls_;
    std::unique_ptr<TokenProvider> tokens_;
    std::vector<std::unique_ptr<Connection>> connections_;
};

}  // namespace hubflow::signalr
