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
#include "runtime/listeners.h"
#include "runtime/log.h"
#include "runtime/node_input.h"
#include "runtime/node_metrics.h"
#include "runtime/tap.h"

namespace hubflow::core {

class DiskBuffer;

class SystemClock final : public Clock {
public:
    std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }
    std::chrono::steady_clock::time_point monotonic() const override { return std::chrono::steady_clock::now(); }
};

// What the admin server reads of a running graph. Taken from any thread while the graph runs.
struct RuntimeStatus {
    enum class Phase { starting, running, draining, finished };
    struct Node {
        std::string name;
        ComponentKind kind = ComponentKind::source;
        std::string type;
        std::vector<std::string> inputs;  // "node" or "node.output"
        std::string buffer_type;          // "memory" or "disk"; empty for a source
        std::size_t queued_events = 0;    // waiting in the input (memory queue, or stored in a disk buffer)
        std::size_t queue_capacity = 0;   // max_events of a memory buffer; 0 for a disk buffer or a source
        bool failed = false;
        bool finished = false;
        std::chrono::steady_clock::time_point last_progress{};  // last batch handled; {} = none yet
        std::map<std::string, std::uint64_t> sent;  // by output ("" = default); for a sink: taken without error
        NodeMetrics::Account account;               // received, finished, discarded by reason, in flight
        std::uint64_t emitted = 0;                  // the sum of `sent` for a source or filter
        std::uint64_t errors = 0;
        std::uint64_t tap_dropped = 0;  // samples a tap reader could not take in time
        std::vector<NodeMetrics::Sample> component;
        ProcessingTime::Snapshot processing;
    };
    struct Edge {
        std::string from, output, to;
        std::uint64_t events = 0;
    };
    Phase phase = Phase::starting;
    std::vector<Node> nodes;
    std::vector<Edge> edges;
};

// What a reload did (Runtime::reload).
struct ReloadReport {
    enum class Outcome { applied, invalid, busy, not_running };
    Outcome outcome = Outcome::invalid;
    std::vector<std::string> problems;  // invalid: why nothing changed; applied: what did not go as planned
    std::vector<std::string> kept, changed, removed, added;
    std::string summary() const;
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

    // Applies a validated pipeline as a diff by node name, while run() runs (from a signal-handling thread or
    // the admin server). Unchanged nodes keep running with their queues, buffers, sockets and counters.
    // Changed and removed nodes stop taking input, drain what they hold into their outputs within the grace
    // period, and finish; a disk buffer's backlog stays on disk and is taken over by the successor of the same
    // name (a renamed node is a new node: its old buffer stays where it is). New nodes start. Nothing changes
    // when a new node cannot be built. Returns once the new graph runs. One reload at a time: a second call
    // meanwhile answers `busy`. data_dir and grace_period_s keep their values until a restart.
    ReloadReport reload(const PipelineSpec& next);
    bool stop_requested() const { return stopping_.load(); }

    // Metrics of a node by name, nullptr when there is no such node. Valid for the Runtime's life.
    const NodeMetrics* metrics(const std::string& node) const;
    std::vector<std::string> node_names() const;

    // The tap of a node by name (/api/v1/tap), nullptr when there is no such node. Valid for the Runtime's life.
    TapPoint* tap(const std::string& node) const;

    // A consistent-enough snapshot for the admin server: every figure is read atomically, not all at once.
    RuntimeStatus status() const;
    RuntimeStatus::Phase phase() const { return phase_.load(std::memory_order_relaxed); }

private:
    struct Edge {
        std::string from, output, to_name;
        NodeInput* to = nullptr;
        Counter events;        // pushed along this edge
        bool retired = false;  // cut by a reload; under nodes_mutex_
    };
    struct Node;
    class NodeContext;
    void run_source(Node& node);
    void run_consumer(Node& node);
    void consume(Node& node, const SharedBatch& batch, Ticket* ticket);
    std::unique_ptr<NodeInput> make_input(Node& node);
    // Creates and configures a node and its input; `error` says why it could not be built.
    std::unique_ptr<Node> create_node(const NodeSpec& spec, std::string& error);
    void connect(Node& from, const std::string& output, Node& to);
    void start_nodes(const std::vector<std::unique_ptr<Node>>& nodes);
    void finish(Node& node);
    void report_error(Node& node, const std::string& what, const std::exception* e);
    void report_drops(Node& node, std::uint64_t& reported, std::chrono::steady_clock::time_point& last_report);

    const PipelineSpec& spec_;
    const ComponentRegistry& registry_;
    LogSink& log_;
    SystemClock system_clock_;
    const Clock& clock_;
    const std::filesystem::path data_dir_;
    const std::chrono::milliseconds grace_period_;
    Listeners listeners_;  // the nodes' listening sockets, kept across reloads
    // Nodes and edges are only ever added (a reload marks the ones it replaces retired), so threads may keep
    // pointers to them; the lists themselves change under nodes_mutex_.
    mutable std::mutex nodes_mutex_;
    std::vector<std::unique_ptr<Node>> nodes_;
    std::vector<std::unique_ptr<Edge>> edges_;
    std::mutex reload_mutex_;  // one reload at a time, and none while run() takes the graph apart

    std::atomic<bool> stopping_{false};
    std::atomic<RuntimeStatus::Phase> phase_{RuntimeStatus::Phase::starting};
    std::mutex mutex_;
    std::condition_variable changed_;  // a node finished, or stop was requested
    std::size_t running_ = 0;
};

}  // namespace hubflow::core
