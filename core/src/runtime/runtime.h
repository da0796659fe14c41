#pragma once
// Runs a validated pipeline: one thread per node, bounded queues between them.
//
// Shutdown is a cascade: request_stop() tells sources to return; a source that returns closes its side of
// the downstream queues; a filter or sink whose producers are all done drains its queue, flushes and closes
// its own outputs. run() returns when every node has finished, or when the grace period after
// request_stop() runs out.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/pipeline.h"
#include "hubflow/component.h"
#include "plugins/component_registry.h"
#include "runtime/batch_queue.h"
#include "runtime/delivery_tracking.h"
#include "runtime/log.h"
#include "runtime/node_input.h"
#include "runtime/node_metrics.h"

namespace hubflow::core {

class DiskBuffer;

class SystemClock final : public Clock {
public:
    std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }
    std::chrono::steady_clock::time_point monotonic() const override { return std::chrono::steady_clock::now(); }
};

struct RunResult {
    std::vector<std::string> failed_nodes;  // nodes that threw or reported failure
    std::vector<std::string> unfinished;    // nodes still busy when the grace period ran out
    bool ok() const { return failed_nodes.empty() && unfinished.empty(); }
};

class Runtime {
public:
    Runtime(const PipelineSpec& spec, const ComponentRegistry& registry, LogSink& log, const Clock* clock = nullptr);
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    // Creates and configures every component and wires the queues. Errors are logged with the node's name;
    // false when any node could not be built.
    bool build();

    // Starts the nodes and blocks until the graph is finished (see above). Call once, after build().
    RunResult run();

    // After run() returned with unfinished nodes: waits for them to end, so the Runtime may be destroyed.
    bool wait_until_finished(std::chrono::milliseconds timeout);

    // Thread-safe and idempotent; from a signal-handling thread, for instance.
    void request_stop();
    bool stop_requested() const { return stopping_.load(); }

    // Metrics of a node by name, nullptr when there is no such node. Valid for the Runtime's life.
    const NodeMetrics* metrics(const std::string& node) const;
    std::vector<std::string> node_names() const;

private:
    struct Node;
    class NodeContext;
    void run_source(Node& node);
    void run_consumer(Node& node);
    void consume(Node& node, const SharedBatch& batch, Ticket* ticket);
    std::unique_ptr<NodeInput> make_input(Node& node);
    void finish(Node& node);
    void report_error(Node& node, const std::string& what, const std::exception* e);
    void report_drops(Node& node, std::uint64_t& reported, std::chrono::steady_clock::time_point& last_report);

    const PipelineSpec& spec_;
    const ComponentRegistry& registry_;
    LogSink& log_;
    SystemClock system_clock_;
    const Clock& clock_;
    std::vector<std::unique_ptr<Node>> nodes_;

    std::atomic<bool> stopping_{false};
    std::mutex mutex_;
    std::condition_variable changed_;  // a node finished, or stop was requested
    std::size_t running_ = 0;
};

}  // namespace hubflow::core
