#pragma once
// The `signalr_hub` sink: hubflow as the KS Event Streaming service. Events that reach it are pushed to the
// SignalR clients subscribed to their hub (kind), site and user.

#include <memory>

#include "history/file_history_store.h"
#include "history/history_endpoint.h"
#include "hubflow/component.h"
#include "server/hub_server.h"

namespace hubflow::signalr {

class HubSink final : public Sink {
public:
    static ComponentDescription describe();
    void configure(const ConfigView& config, Context& context) override;
    void start() override;
    void write(const EventBatch& batch) override;
    void stop() override;

    // For tests: the address bound after start().
    std::string bound_address() const { return server_ ? server_->bound_address() : ""; }

private:
    void record(const EventBatch& batch);

    Context* context_ = nullptr;
    HubServerSettings settings_;
    AuthSettings auth_;
    std::string roles_file_;
    std::string roles_claim_;
    std::unique_ptr<HubServer> server_;
    // The history, when configured: written before each batch is broadcast.
    bool history_enabled_ = false;
    FileHistorySettings history_settings_;
    HistoryEndpointSettings endpoint_settings_;
    std::shared_ptr<HistoryStore> history_;
    Counter* history_appended_ = nullptr;
    // Reused by write(), views into the batch being written.
    std::vector<HistoryRecord> records_;
    std::vector<std::string_view> sites_;  // site of each of records_
    std::vector<std::size_t> order_;
    std::vector<HistoryRecord> group_;
};

}  // namespace hubflow::signalr
