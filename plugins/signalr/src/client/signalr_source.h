#pragma once
// The `signalr` source: consumes KS Event Streaming hubs (or any ASP.NET Core SignalR hub) over WebSockets
// with negotiation skipped, and emits every invocation of the configured client method as an event.

#include <memory>

#include "client/hub_client.h"
#include "hubflow/component.h"

namespace hubflow::signalr {

class SignalrSource final : public Source {
public:
    static ComponentDescription describe();
    void configure(const ConfigView& config, Context& context) override;
    void run() override;

private:
    Context* context_ = nullptr;
    HubClientSettings settings_;
    TokenSettings tokens_;
    DeliveryOutcomes outcomes_;  // with backfill: outlives the node's thread, as the host asks of a listener
};

}  // namespace hubflow::signalr
