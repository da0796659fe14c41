#include "runtime/runtime.h"

#include <algorithm>
#include <set>
#include <shared_mutex>
#include <utility>

#include "buffer/disk_buffer.h"
#include "runtime/batch_recycler.h"

namespace hubflow::core {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

namespace {

// The host's side of one batch given to an acknowledging sink: counts each event the sink settles in the node's
// account, and passes the settlement on to the batch's ticket when somebody tracks it. Every batch gets one,
// tracked or not, since the account needs what the sink says either way. Frees itself with the batch's last
// event, as a Ticket does.
class Settlement final : public detail::DeliveryTicket {
public:
    // A node's settlements that are not settled yet. A sink may leave events unsettled when it stops (they were
    // not delivered); once its component is gone nobody can settle them, and lose_all() ends them instead of
    // letting them leak.
    class Open {
    public:
        Settlement* open(NodeMetrics& metrics, Ticket* ticket, std::size_t events) {
            auto* s = new Settlement(this, metrics, ticket, events);
            std::lock_guard lock(mutex_);
            s->next_ = first_;
            if (first_) first_->prev_ = s;
            first_ = s;
            return s;
        }
        // Only once no sink can settle any more.
        void lose_all() {
            Settlement* s = nullptr;
            {
                std::lock_guard lock(mutex_);
                s = std::exchange(first_, nullptr);
                for (Settlement* t = s; t; t = t->next_)
                    t->open_ = nullptr;
            }
            while (s) {
                Settlement* next = s->next_;
                s->resolve(s->pending_.load(std::memory_order_acquire), Resolution::lost);  // frees s
                s = next;
            }
        }

    private:
        friend class Settlement;
        void close(Settlement* s) {
            std::lock_guard lock(mutex_);
            if (s->prev_)
                s->prev_->next_ = s->next_;
            else
                first_ = s->next_;
            if (s->next_) s->next_->prev_ = s->prev_;
        }
        std::mutex mutex_;
        Settlement* first_ = nullptr;
    };

    void resolve(std::size_t events, Resolution how) override {
        switch (how) {
            case Resolution::delivered:
                metrics_.finished.add(events);
                break;
            case Resolution::refused:
                metrics_.refused.add(events);
                break;
            case Resolution::lost:
                metrics_.lost.add(events);
                break;
        }
        if (ticket_) ticket_->resolve(events, how);
        if (pending_.fetch_sub(events, std::memory_order_acq_rel) != events) return;
        if (open_) open_->close(this);
        delete this;
    }

private:
    Settlement(Open* open, NodeMetrics& metrics, Ticket* ticket, std::size_t events)
        : open_(open), metrics_(metrics), ticket_(ticket), pending_(events) {}
    ~Settlement() = default;
    Open* open_;  // null once lose_all() took it
    Settlement* prev_ = nullptr;
    Settlement* next_ = nullptr;
    NodeMetrics& metrics_;
    Ticket* const ticket_;
    std::atomic<std::size_t> pending_;
};

}  // namespace

struct Runtime::Node {
    const NodeSpec spec;  // a copy: a reload replaces the pipeline, not the nodes that stay
    NodeLogger logger;
    NodeMetrics metrics;
    std::unique_ptr<NodeContext> context;
    std::unique_ptr<Component> component;
    Source* source = nullptr;
    Filter* filter = nullptr;
    Sink* sink = nullptr;
    AcknowledgingSink* acknowledging_sink = nullptr;  // SDK 1.2 sinks that settle batches themselves
    Settlement::Open settlements;                     // an acknowledging sink's batches not settled yet
    std::unique_ptr<NodeInput> input;
    std::set<std::string> declared_outputs = {""};
    // Where this node's batches go. Read by the node's own thread in emit() and finish(), changed by a reload:
    // both under routes_mutex.
    std::shared_mutex routes_mutex;
    std::map<std::string, std::vector<Edge*>, std::less<>> outputs;  // by output name
    std::vector<NodeInput*> downstream;                              // distinct inputs this node produces into
    // Set when the runtime stops or a reload retires the node: a source returns, a disk buffer stops handing out
    // its backlog once upstream is done (what is left waits on disk for whoever takes the name next).
    std::atomic<bool> draining{false};
    bool retired = false;  // replaced or removed by a reload; under nodes_mutex_
    // The ticket of the input batch a filter is processing: what it emits meanwhile is derived from it.
    // Touched only by the node's own thread.
    Ticket* current_input = nullptr;
    // While a filter processes an input batch: the distinct batches it emitted, whose events carry that input on
    // (see consume()). Held, not just remembered, so that no new batch can take a released one's address.
    // Touched only by the node's own thread.
    bool in_process = false;
    std::vector<SharedBatch> carried;
    std::size_t carried_events = 0;
    DiskBuffer* disk_buffer = nullptr;                                  // the input, when it is a disk buffer
    std::map<std::string, std::unique_ptr<Counter>, std::less<>> sent;  // by declared output, fixed after build()
    std::atomic<std::int64_t> last_progress_ns{0};                      // steady clock, 0 = never
    std::atomic<bool> failed{false};
    std::atomic<bool> finished{false};
    TapPoint tap;  // samples of what the node emits, for the admin server
    std::thread thread;
    // Error-log rate limiting, touched only by the node's own thread.
    steady::time_point last_error_log{};
    std::uint64_t suppressed_errors = 0;

    Node(const NodeSpec& s, LogSink& sink) : spec(s), logger(sink, s.name) {}

    std::vector<NodeInput*> downstream_now() {
        std::shared_lock lock(routes_mutex);
        return downstream;
    }
};

class Runtime::NodeContext final : public Context, private BatchOrigin {
public:
    NodeContext(Runtime& runtime, Node& node)
        : runtime_(runtime), node_(node), recycler_(std::make_shared<BatchRecycler>()) {}

    // After this no listener is called again: the components are about to go.
    void close_tracking() { closed_.store(true); }

    const std::string& node_name() const override { return node_.spec.name; }
    Logger& log() override { return node_.logger; }
    Metrics& metrics() override { return node_.metrics; }
    const Clock& clock() const override { return runtime_.clock_; }

    int listening_socket(const std::string& address) override {
        return runtime_.listeners_.acquire(node_.spec.name, address);
    }

    fs::path data_dir() override {
        fs::path dir = runtime_.data_dir_ / node_.spec.name;
        fs::create_directories(dir);
        return dir;
    }

    void emit(EventBatch&& batch, std::string_view output) override {
        if (batch.empty()) return;
        auto now = runtime_.clock_.now();
        for (auto& e : batch) {
            if (e.meta.source.empty()) e.meta.source = node_.spec.name;
            if (e.meta.received_at.time_since_epoch().count() == 0) e.meta.received_at = now;
        }
        emit(recycler_->share(std::move(batch)), output);
    }

    EventBatch reusable_batch(std::size_t size) override { return recycler_->take(size); }

    void emit(SharedBatch batch, std::string_view output) override {
        if (!batch || batch->empty()) return;
        if (!node_.declared_outputs.count(std::string(output))) {
            // A filter's throw loses the input batch, which accounts for it; a source has no input.
            if (node_.spec.kind == ComponentKind::source) node_.metrics.lost.add(batch->size());
            throw std::logic_error("emit() to undeclared output '" + std::string(output) + "'");
        }
        node_.metrics.emitted.add(batch->size());
        if (node_.in_process && std::none_of(node_.carried.begin(), node_.carried.end(),
                                             [&](const SharedBatch& b) { return b == batch; })) {
            node_.carried_events += batch->size();
            node_.carried.push_back(batch);
        }
        if (node_.tap.active()) node_.tap.offer(batch, output);
        if (auto sent = node_.sent.find(output); sent != node_.sent.end()) sent->second->add(batch->size());
        // A filter's output is part of its input's journey; a tracking source starts a journey of its own.
        Ticket* parent = node_.current_input;
        Ticket* own_root = nullptr;
        if (!parent && listener_) parent = own_root = Ticket::root(*this, ++emitted_batches_);
        {
            std::shared_lock routes(node_.routes_mutex);
            auto it = node_.outputs.find(output);
            if (it != node_.outputs.end())
                for (Edge* edge : it->second) {
                    edge->events.add(batch->size());
                    edge->to->push(batch, parent ? parent->child() : nullptr);
                }
        }
        done(own_root);  // the emitter's hold: with nobody downstream the batch ends here
    }

    bool track_deliveries(DeliveryListener& listener) override {
        if (node_.spec.kind != ComponentKind::source) return false;
        lost_batches_ = &node_.metrics.counter("lost_batches", "emitted batches of which an event was lost downstream");
        listener_ = &listener;
        return true;
    }

    void fail(std::string_view reason) override {
        if (node_.failed.exchange(true)) return;
        node_.metrics.errors.add();
        node_.logger.error("failed: ", reason, "; the node stops and its input is dropped (counted)");
        if (node_.input) node_.input->discard();
    }

    bool stopping() const override { return runtime_.stopping_.load() || node_.failed.load() || node_.draining.load(); }

    bool wait_for(std::chrono::nanoseconds duration) override {
        std::unique_lock lock(runtime_.mutex_);
        return !runtime_.changed_.wait_for(lock, duration, [&] { return stopping(); });
    }

private:
    void batch_ended(std::uint64_t number, BatchOutcome outcome) override {
        if (outcome == BatchOutcome::lost) lost_batches_->add();
        if (!closed_.load()) listener_->batch_ended(number, outcome);
    }

    Runtime& runtime_;
    Node& node_;
    std::shared_ptr<BatchRecycler> recycler_;
    DeliveryListener* listener_ = nullptr;
    Counter* lost_batches_ = nullptr;
    std::uint64_t emitted_batches_ = 0;  // tracked batches numbered so far; the node's thread only
    std::atomic<bool> closed_{false};
};

Runtime::Runtime(const PipelineSpec& spec, const ComponentRegistry& registry, LogSink& log, const Clock* clock)
    : spec_(spec),
      registry_(registry),
      log_(log),
      clock_(clock ? *clock : system_clock_),
      data_dir_(spec.data_dir),
      grace_period_(spec.grace_period) {}

Runtime::~Runtime() {
    request_stop();
    for (auto& n : nodes_)
        if (n->thread.joinable()) n->thread.join();
    for (auto& n : nodes_)
        if (n->context) n->context->close_tracking();
    // Components go before the queues and contexts they may reference.
    for (auto& n : nodes_)
        n->component.reset();
    // What a sink took and never settled was not delivered; with the sink gone, it is settled lost now.
    for (auto& n : nodes_)
        n->settlements.lose_all();
    // Whatever is still queued is settled lost while every origin (a disk buffer elsewhere) still exists.
    for (auto& n : nodes_)
        if (n->input) n->input->discard();
}

const NodeMetrics* Runtime::metrics(const std::string& node) const {
    std::lock_guard lock(nodes_mutex_);
    for (const auto& n : nodes_)
        if (n->spec.name == node && !n->retired) return &n->metrics;
    return nullptr;
}

RuntimeStatus Runtime::status() const {
    RuntimeStatus out;
    out.phase = phase_.load();
    std::lock_guard lock(nodes_mutex_);
    for (const auto& n : nodes_) {
        if (n->retired) continue;
        RuntimeStatus::Node s;
        s.name = n->spec.name;
        s.kind = n->spec.kind;
        s.type = n->spec.type;
        for (const auto& in : n->spec.inputs)
            s.inputs.push_back(in.text());
        if (n->input) {
            s.buffer_type = n->spec.buffer.type == BufferType::disk ? "disk" : "memory";
            s.queued_events = n->input->queued_events();
            s.queue_capacity = n->spec.buffer.type == BufferType::disk ? 0 : n->spec.buffer_max_events;
        }
        s.failed = n->failed.load();
        s.finished = n->finished.load();
        if (auto ns = n->last_progress_ns.load(std::memory_order_relaxed))
            s.last_progress = steady::time_point(steady::duration(ns));
        s.account = n->metrics.account();
        for (const auto& [output, counter] : n->sent)
            s.sent[output] = counter->value();
        s.emitted = n->metrics.emitted.value();
        s.errors = n->metrics.errors.value();
        s.tap_dropped = n->tap.dropped();
        s.component = n->metrics.component_samples();
        s.processing = n->metrics.processing.snapshot();
        out.nodes.push_back(std::move(s));
    }
    for (const auto& e : edges_)
        if (!e->retired) out.edges.push_back({e->from, e->output, e->to_name, e->events.value()});
    return out;
}

TapPoint* Runtime::tap(const std::string& node) const {
    std::lock_guard lock(nodes_mutex_);
    for (const auto& n : nodes_)
        if (n->spec.name == node && !n->retired) return &n->tap;
    return nullptr;
}

std::vector<std::string> Runtime::node_names() const {
    std::vector<std::string> out;
    std::lock_guard lock(nodes_mutex_);
    for (const auto& n : nodes_)
        if (!n->retired) out.push_back(n->spec.name);
    return out;
}

std::unique_ptr<NodeInput> Runtime::make_input(Node& node) {
    if (node.spec.buffer.type == BufferType::memory)
        return std::make_unique<BatchQueue>(node.spec.buffer_max_events, node.spec.when_full,
                                            node.metrics.input_discarded, &node.metrics.input_discarded_full);
    DiskBuffer::Options options;
    options.dir = data_dir_ / node.spec.name / "buffer";
    options.max_bytes = node.spec.buffer.max_bytes;
    options.fsync_interval = node.spec.buffer.fsync_interval;
    options.when_full = node.spec.when_full;
    options.dropped_full = &node.metrics.input_discarded_full;
    Node* n = &node;
    auto buffer =
        std::make_unique<DiskBuffer>(options, node.logger, node.metrics, node.metrics.input_discarded, node.draining,
                                     [n](const std::string& reason) { n->context->fail(reason); });
    node.disk_buffer = buffer.get();
    return buffer;
}

std::unique_ptr<Runtime::Node> Runtime::create_node(const NodeSpec& spec, std::string& error) {
    auto node = std::make_unique<Node>(spec, log_);
    node->context = std::make_unique<NodeContext>(*this, *node);
    const ComponentEntry* entry = registry_.find(spec.type);
    try {
        if (!entry) throw std::runtime_error("unknown component type '" + spec.type + "'");
        node->component = entry->create();
        node->source = dynamic_cast<Source*>(node->component.get());
        node->filter = dynamic_cast<Filter*>(node->component.get());
        node->sink = dynamic_cast<Sink*>(node->component.get());
        // Null for a sink built against SDK 1.0/1.1, whose classes cannot derive from AcknowledgingSink.
        node->acknowledging_sink = dynamic_cast<AcknowledgingSink*>(node->component.get());
        node->component->configure(ConfigView(node->spec.config), *node->context);
        if (node->filter)
            for (const auto& o : node->filter->outputs())
                node->declared_outputs.insert(o);
        for (const auto& o : node->declared_outputs)
            node->sent.emplace(o, std::make_unique<Counter>());
    } catch (const std::exception& e) {
        error = std::string("cannot be built: ") + e.what();
        node->component.reset();
    }
    if (spec.kind != ComponentKind::source) node->input = make_input(*node);
    return node;
}

void Runtime::connect(Node& from, const std::string& output, Node& to) {
    auto edge = std::make_unique<Edge>();
    edge->from = from.spec.name;
    edge->output = output;
    edge->to_name = to.spec.name;
    edge->to = to.input.get();
    {
        std::unique_lock routes(from.routes_mutex);
        from.outputs[output].push_back(edge.get());
        auto& down = from.downstream;
        if (std::find(down.begin(), down.end(), to.input.get()) == down.end()) {
            down.push_back(to.input.get());
            to.input->add_producer();
        }
    }
    std::lock_guard lock(nodes_mutex_);
    edges_.push_back(std::move(edge));
}

bool Runtime::build() {
    bool ok = true;
    std::map<std::string, Node*> by_name;
    for (const auto& spec : spec_.nodes) {
        std::string error;
        auto node = create_node(spec, error);
        if (!error.empty()) {
            log_.write(LogLevel::error, spec.name, error);
            ok = false;
        }
        by_name[spec.name] = node.get();
        std::lock_guard lock(nodes_mutex_);
        nodes_.push_back(std::move(node));
    }
    for (auto& node : nodes_)
        for (const auto& in : node->spec.inputs)
            connect(*by_name.at(in.node), in.output, *node);
    return ok;
}

void Runtime::report_error(Node& node, const std::string& what, const std::exception* e) {
    node.metrics.errors.add();
    auto now = steady::now();
    if (now - node.last_error_log < std::chrono::seconds(1)) {
        ++node.suppressed_errors;
        return;
    }
    std::string more = node.suppressed_errors
                           ? " (" + std::to_string(node.suppressed_errors) + " similar errors in the last second)"
                           : "";
    node.suppressed_errors = 0;
    node.last_error_log = now;
    node.logger.error(what, ": ", e ? e->what() : "unknown exception", more);
}

void Runtime::report_drops(Node& node, std::uint64_t& reported, steady::time_point& last_report) {
    // What the node lost or its input dropped; what a filter or sink discards on purpose is not news.
    const NodeMetrics::Account a = node.metrics.account();
    const std::uint64_t dropped = a.queue_full + a.node_failed;
    if (dropped == reported) return;
    auto now = steady::now();
    if (now - last_report < std::chrono::seconds(1)) return;
    node.logger.warn("dropped ", dropped - reported, " events; ", dropped, " in all: ", a.queue_full,
                     " refused by the full input (when_full is drop_newest), ", a.node_failed,
                     node.failed ? " lost (the node has failed)" : " lost (the node threw, or its sink lost them)");
    reported = dropped;
    last_report = now;
}

void Runtime::finish(Node& node) {
    for (NodeInput* q : node.downstream_now())
        q->producer_done();
    // Notify under the lock: once a waiter sees running_ drop, this thread no longer touches the runtime.
    std::lock_guard lock(mutex_);
    node.finished = true;
    --running_;
    changed_.notify_all();
}

bool Runtime::wait_until_finished(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return running_ == 0; });
}

void Runtime::run_source(Node& node) {
    if (!node.failed) {
        try {
            node.source->run();
        } catch (const std::exception& e) {
            node.failed = true;
            report_error(node, "source failed", &e);
        } catch (...) {
            node.failed = true;
            report_error(node, "source failed", nullptr);
        }
    }
    try {
        node.component->stop();
    } catch (const std::exception& e) {
        report_error(node, "stop() threw", &e);
    }
    finish(node);
}

// Hands one batch to the node, settles the node's part of its ticket, and counts how the batch's events ended
// (NodeMetrics):
// - a plain sink has delivered them when write() returns, and lost them when it throws or fails;
// - an acknowledging sink settles each event itself (delivered, refused or lost), through a Settlement, while the
//   host holds one obligation of its own on the ticket until deliver() returns. Events a sink neither settles
//   nor gives up on stay in flight, which is the truth: nobody knows what became of them;
// - a filter is finished with an input batch when process() returns. Per event the host cannot see which input
//   became which output, so it counts per batch: as many of the batch's events as the filter emitted while
//   processing it are finished (carried on), the rest were dropped on purpose (filtered). A batch emitted to
//   several outputs is counted once, and a filter that emits more than it took (one event split into several,
//   or an event copied into the batches of several outputs, as a route does) has finished with all of them; a
//   filter that throws or fails loses what it did not emit. A filter that held events back to emit them later
//   (none here does) would show them as filtered.
void Runtime::consume(Node& node, const SharedBatch& batch, Ticket* ticket) {
    const std::size_t events = batch->size();
    bool threw = false;
    const auto started = steady::now();
    try {
        if (node.acknowledging_sink) {
            if (ticket) ticket->add(events);
            BatchAck ack = events ? BatchAck(node.settlements.open(node.metrics, ticket, events)) : BatchAck{};
            node.acknowledging_sink->deliver(*batch, ack);
        } else if (node.sink) {
            node.sink->write(*batch);
        } else {
            node.current_input = ticket;
            node.in_process = true;
            node.filter->process(batch);
        }
    } catch (const std::exception& e) {
        threw = true;
        report_error(node,
                     node.sink ? "write() threw; the batch is dropped (counted)"
                               : "process() threw; the batch is dropped (counted)",
                     &e);
    } catch (...) {
        threw = true;
        report_error(node, "threw a non-standard exception; the batch is dropped (counted)", nullptr);
    }
    node.current_input = nullptr;
    const auto ended = steady::now();
    node.metrics.processing.observe(ended - started);
    node.last_progress_ns.store(ended.time_since_epoch().count(), std::memory_order_relaxed);
    // A node that gives up inside write() has not delivered this batch.
    const bool lost = threw || node.failed;
    if (node.filter) {
        const std::size_t carried = std::min(events, node.carried_events);
        node.in_process = false;
        node.carried.clear();
        node.carried_events = 0;
        node.metrics.finished.add(carried);
        (lost ? node.metrics.lost : node.metrics.filtered).add(events - carried);
    } else if (!node.acknowledging_sink) {
        (lost ? node.metrics.lost : node.metrics.finished).add(events);
    }
    // What a sink took without throwing; `finished` says what it has delivered so far.
    if (!lost && node.sink)
        if (auto sent = node.sent.find(""); sent != node.sent.end()) sent->second->add(events);
    if (lost)
        lose(ticket);
    else
        done(ticket);
}

void Runtime::run_consumer(Node& node) {
    std::uint64_t reported_drops = 0;
    steady::time_point last_drop_report{};
    auto tick_interval = node.sink ? node.sink->tick_interval() : std::chrono::milliseconds(500);
    auto next_tick = steady::now() + tick_interval;
    SharedBatch batch;
    Ticket* ticket = nullptr;
    for (;;) {
        auto result = node.input->pop(batch, ticket, next_tick);
        if (result == NodeInput::Pop::end) break;
        if (result == NodeInput::Pop::batch) {
            node.metrics.taken.add(batch->size());
            if (node.failed) {
                node.metrics.lost.add(batch->size());
                lose(ticket);
            } else {
                consume(node, batch, ticket);
            }
            batch.reset();
            ticket = nullptr;
        }
        if (steady::now() >= next_tick) {
            next_tick = steady::now() + tick_interval;
            report_drops(node, reported_drops, last_drop_report);
            if (node.sink && !node.failed) {
                try {
                    node.sink->tick();
                } catch (const std::exception& e) {
                    report_error(node, "tick() threw", &e);
                }
            }
        }
    }
    if (!node.failed) {
        try {
            if (node.sink)
                node.sink->flush();
            else
                node.filter->flush();
        } catch (const std::exception& e) {
            report_error(node, "flush() threw", &e);
        }
    }
    try {
        node.component->stop();
    } catch (const std::exception& e) {
        report_error(node, "stop() threw", &e);
    }
    report_drops(node, reported_drops, last_drop_report = {});
    finish(node);
}

RunResult Runtime::run() {
    {
        std::lock_guard lock(mutex_);
        running_ = nodes_.size();
    }
    start_nodes(nodes_);
    if (!stopping_) phase_ = RuntimeStatus::Phase::running;

    RunResult result;
    {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return running_ == 0 || stopping_.load(); });
        if (running_ > 0) {
            auto deadline = steady::now() + grace_period_;
            changed_.wait_until(lock, deadline, [&] { return running_ == 0; });
        }
    }
    // No reload may change the graph while it is taken apart.
    std::lock_guard no_reload(reload_mutex_);
    phase_ = RuntimeStatus::Phase::finished;
    for (auto& node : nodes_) {
        if (node->retired) continue;
        if (node->failed) result.failed_nodes.push_back(node->spec.name);
        if (!node->finished) result.unfinished.push_back(node->spec.name);
    }
    if (result.unfinished.empty()) {
        for (auto& node : nodes_)
            if (node->thread.joinable()) node->thread.join();
    } else {
        std::string names;
        for (const auto& n : result.unfinished)
            names += (names.empty() ? "" : ", ") + n;
        log_.write(LogLevel::error, "",
                   "grace period of " + std::to_string(grace_period_.count()) + " ms ran out; still busy: " + names);
        for (auto& node : nodes_) {
            if (!node->thread.joinable()) continue;
            if (node->finished)
                node->thread.join();
            else
                node->thread.detach();  // the process is about to exit; see the CLI
        }
    }
    for (auto& node : nodes_) {
        if (node->retired) continue;  // its line was logged when the reload retired it
        std::string line;
        for (const auto& s : node->metrics.snapshot())
            line += (line.empty() ? "" : " ") + s.name + "=" + std::to_string(s.value);
        node->logger.info(line);
    }
    return result;
}

// Opens disk buffers first (a node whose buffer cannot be opened fails alone), then starts components sinks first and
// sources last, so nothing is emitted into a node that is not ready, then gives each node its thread. A node that
// cannot start fails alone.
void Runtime::start_nodes(const std::vector<std::unique_ptr<Node>>& nodes) {
    for (auto& node : nodes) {
        if (!node->disk_buffer || !node->component) continue;
        try {
            node->disk_buffer->open();
        } catch (const std::exception& e) {
            node->failed = true;
            node->metrics.errors.add();
            node->logger.error("cannot open its disk buffer: ", e.what(),
                               "; the node does not run, what its buffer holds stays on disk");
            node->input->discard();
        }
    }
    for (ComponentKind kind : {ComponentKind::sink, ComponentKind::filter, ComponentKind::source}) {
        for (auto& node : nodes) {
            if (node->spec.kind != kind || !node->component || node->failed) continue;
            try {
                node->component->start();
            } catch (const std::exception& e) {
                node->failed = true;
                node->metrics.errors.add();
                node->logger.error("cannot start: ", e.what(), "; the rest of the pipeline runs without it");
                if (node->input) node->input->discard();
            }
        }
    }
    for (auto& node : nodes) {
        Node* n = node.get();
        if (!n->component) {
            n->failed = true;
            if (n->input) n->input->discard();
        }
        if (n->spec.kind == ComponentKind::source) {
            n->thread = std::thread([this, n] {
                if (n->component)
                    run_source(*n);
                else
                    finish(*n);
            });
        } else {
            n->thread = std::thread([this, n] { run_consumer(*n); });
        }
    }
}

namespace {

bool same_value(const Value& a, const Value& b) {
    if (a.type() != b.type()) return false;
    switch (a.type()) {
        case Value::Type::null:
            return true;
        case Value::Type::boolean:
            return a.as_bool() == b.as_bool();
        case Value::Type::number:
            return a.is_integer() == b.is_integer() &&
                   (a.is_integer() ? a.as_int() == b.as_int() : a.as_double() == b.as_double());
        case Value::Type::string:
            return a.as_string() == b.as_string();
        case Value::Type::array:
            return std::equal(a.as_array().begin(), a.as_array().end(), b.as_array().begin(), b.as_array().end(),
                              same_value);
        case Value::Type::object:
            return std::equal(
                a.as_object().begin(), a.as_object().end(), b.as_object().begin(), b.as_object().end(),
                [](const auto& x, const auto& y) { return x.first == y.first && same_value(x.second, y.second); });
    }
    return false;
}

// Whether a reload may keep the running node as it is: the same component with the same settings, reading
// the same inputs through the same kind of buffer.
bool same_node(const NodeSpec& a, const NodeSpec& b) {
    if (a.kind != b.kind || a.type != b.type || a.inputs.size() != b.inputs.size() ||
        a.buffer_max_events != b.buffer_max_events || a.when_full != b.when_full || a.buffer.type != b.buffer.type ||
        a.buffer.max_bytes != b.buffer.max_bytes || a.buffer.fsync_interval != b.buffer.fsync_interval)
        return false;
    for (std::size_t i = 0; i < a.inputs.size(); ++i)
        if (a.inputs[i].text() != b.inputs[i].text()) return false;
    return same_value(a.config, b.config);
}

std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names)
        out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? "none" : out;
}

}  // namespace

std::string ReloadReport::summary() const {
    switch (outcome) {
        case Outcome::busy:
            return "a reload is already in progress";
        case Outcome::not_running:
            return "the pipeline is not running (starting or stopping)";
        case Outcome::invalid: {
            std::string out = "the new pipeline was not applied; nothing changed:";
            for (const auto& p : problems)
                out += "\n  " + p;
            return out;
        }
        case Outcome::applied:
            break;
    }
    std::string out = "reloaded: kept " + joined(kept) + "; replaced " + joined(changed) + "; removed " +
                      joined(removed) + "; added " + joined(added);
    for (const auto& p : problems)
        out += "; " + p;
    return out;
}

ReloadReport Runtime::reload(const PipelineSpec& next) {
    ReloadReport report;
    std::unique_lock busy(reload_mutex_, std::try_to_lock);
    if (!busy.owns_lock()) {
        report.outcome = ReloadReport::Outcome::busy;
        return report;
    }
    if (stopping_ || phase_ != RuntimeStatus::Phase::running) {
        report.outcome = ReloadReport::Outcome::not_running;
        return report;
    }

    // The running graph by name, and what the new file asks for.
    std::map<std::string, Node*> live;
    {
        std::lock_guard lock(nodes_mutex_);
        for (auto& n : nodes_)
            if (!n->retired) live[n->spec.name] = n.get();
    }
    std::map<std::string, const NodeSpec*> wanted;
    for (const auto& spec : next.nodes)
        wanted[spec.name] = &spec;
    std::vector<Node*> retiring;
    for (auto& [name, node] : live) {
        auto it = wanted.find(name);
        if (it == wanted.end()) {
            report.removed.push_back(name);
            retiring.push_back(node);
        } else if (!same_node(node->spec, *it->second)) {
            report.changed.push_back(name);
            retiring.push_back(node);
        } else {
            report.kept.push_back(name);
        }
    }
    for (const auto& name : report.removed) {
        std::error_code ec;
        if (fs::exists(data_dir_ / name, ec))
            report.problems.push_back("the state of removed node '" + name + "' stays in " +
                                      (data_dir_ / name).string() + " (a node of that name takes it over)");
    }
    if (next.data_dir != data_dir_)
        report.problems.push_back("data_dir stays " + data_dir_.string() + " until a restart");

    // Build every new node first: if one cannot be built, nothing changes.
    std::vector<std::unique_ptr<Node>> fresh;
    std::map<std::string, Node*> by_name;  // the graph after the reload
    for (const auto& spec : next.nodes) {
        auto it = live.find(spec.name);
        if (it != live.end() && std::find(retiring.begin(), retiring.end(), it->second) == retiring.end()) {
            by_name[spec.name] = it->second;
            continue;
        }
        if (it == live.end()) report.added.push_back(spec.name);
        std::string error;
        auto node = create_node(spec, error);
        if (!error.empty()) report.problems.push_back("node '" + spec.name + "' " + error);
        by_name[spec.name] = node.get();
        fresh.push_back(std::move(node));
    }
    if (!report.problems.empty() && std::any_of(report.problems.begin(), report.problems.end(), [](const auto& p) {
            return p.find("cannot be built") != std::string::npos;
        })) {
        report.outcome = ReloadReport::Outcome::invalid;
        return report;
    }
    const auto is_retiring = [&](const Node* n) {
        return std::find(retiring.begin(), retiring.end(), n) != retiring.end();
    };
    const auto is_fresh = [&](const Node* n) {
        return std::any_of(fresh.begin(), fresh.end(), [&](const auto& f) { return f.get() == n; });
    };

    // Wire the new graph while the old one still runs. Edges between nodes that do not run yet are made at
    // once; a running producer switches from its retiring consumers to their successors in one step under its
    // routes lock, so no batch goes to both or to neither. Every consumer gets its new producers before it
    // loses an old one, so no input sees "all producers done" in between.
    std::map<Node*, std::vector<std::pair<std::string, Node*>>> switches;  // running producer -> new edges
    for (auto& node : fresh)
        for (const auto& in : node->spec.inputs) {
            Node* from = by_name.at(in.node);
            if (is_fresh(from))
                connect(*from, in.output, *node);
            else
                switches[from].emplace_back(in.output, node.get());
        }
    for (const auto& name : report.kept) {
        Node* kept = by_name.at(name);
        for (const auto& in : kept->spec.inputs) {
            Node* from = by_name.at(in.node);
            if (is_fresh(from)) connect(*from, in.output, *kept);  // a replaced producer's successor
        }
    }
    for (auto& [name, producer] : live) {
        if (is_retiring(producer)) continue;
        std::vector<NodeInput*> cut;
        std::vector<std::unique_ptr<Edge>> made;
        {
            std::unique_lock routes(producer->routes_mutex);
            for (auto& [output, edges] : producer->outputs)
                std::erase_if(edges, [&](Edge* e) {
                    const bool gone = std::any_of(retiring.begin(), retiring.end(),
                                                  [&](Node* r) { return r->input && e->to == r->input.get(); });
                    if (gone) e->retired = true;
                    return gone;
                });
            auto& down = producer->downstream;
            for (Node* r : retiring) {
                auto at = r->input ? std::find(down.begin(), down.end(), r->input.get()) : down.end();
                if (at == down.end()) continue;
                down.erase(at);
                cut.push_back(r->input.get());
            }
            for (auto& [output, to] : switches[producer]) {
                auto edge = std::make_unique<Edge>();
                edge->from = producer->spec.name;
                edge->output = output;
                edge->to_name = to->spec.name;
                edge->to = to->input.get();
                producer->outputs[output].push_back(edge.get());
                if (std::find(down.begin(), down.end(), to->input.get()) == down.end()) {
                    down.push_back(to->input.get());
                    to->input->add_producer();
                }
                made.push_back(std::move(edge));
            }
        }
        for (NodeInput* in : cut)
            in->producer_done();
        std::lock_guard lock(nodes_mutex_);
        for (auto& e : made)
            edges_.push_back(std::move(e));
    }
    {
        std::lock_guard lock(mutex_);
        running_ += fresh.size();
        // Retire: sources return, consumers drain what they hold into their outputs, within the grace period.
        for (Node* r : retiring)
            r->draining = true;
    }
    changed_.notify_all();
    const auto deadline = steady::now() + grace_period_;
    for (Node* r : retiring) {
        std::unique_lock lock(mutex_);
        changed_.wait_until(lock, deadline, [&] { return r->finished.load(); });
    }
    for (Node* r : retiring) {
        if (!r->finished) {
            report.problems.push_back("node '" + r->spec.name + "' had not drained within the grace period; " +
                                      std::to_string(r->input ? r->input->queued_events() : 0) +
                                      " events were still in its input (undelivered)");
            if (r->input) r->input->discard();
            continue;
        }
        if (r->thread.joinable()) r->thread.join();
        std::string line;
        for (const auto& sample : r->metrics.snapshot())
            line += (line.empty() ? "" : " ") + sample.name + "=" + std::to_string(sample.value);
        r->logger.info("retired by a reload: ", line);
        // Let go of the buffer's files before a successor of the same name opens them.
        if (r->disk_buffer) r->disk_buffer->close();
    }
    // A successor whose predecessor did not let go of its disk buffer must not open the same files.
    for (auto& node : fresh) {
        auto old = live.find(node->spec.name);
        if (old != live.end() && !old->second->finished && node->disk_buffer) {
            node->component.reset();
            report.problems.push_back("node '" + node->spec.name +
                                      "' does not start: its predecessor still holds the disk buffer");
        }
    }
    {
        std::lock_guard lock(nodes_mutex_);
        for (Node* r : retiring) {
            r->retired = true;
            std::shared_lock routes(r->routes_mutex);
            for (auto& [output, edges] : r->outputs)
                for (Edge* e : edges)
                    e->retired = true;
        }
    }
    start_nodes(fresh);
    {
        std::lock_guard lock(nodes_mutex_);
        for (auto& node : fresh)
            nodes_.push_back(std::move(node));
        // Sockets of removed and renamed nodes close now; a successor has taken over its predecessor's.
        std::set<std::string> running;
        for (auto& n : nodes_)
            if (!n->retired) running.insert(n->spec.name);
        listeners_.keep_only(running);
    }
    report.outcome = ReloadReport::Outcome::applied;
    log_.write(LogLevel::info, "", report.summary());
    return report;
}

void Runtime::request_stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        if (phase_ != RuntimeStatus::Phase::finished) phase_ = RuntimeStatus::Phase::draining;
    }
    {
        std::lock_guard lock(nodes_mutex_);
        for (auto& n : nodes_)
            n->draining = true;
    }
    changed_.notify_all();
}

}  // namespace hubflow::core
