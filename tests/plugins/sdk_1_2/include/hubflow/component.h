#pragma once
// The three component interfaces. A plugin implements them and declares them with HUBFLOW_PLUGIN
// (hubflow/plugin.h).
//
// Life of a component, all calls from host threads:
//   default constructor  -> must not throw, do no I/O
//   configure(config, context)  -> read settings, throw ConfigError naming the key; no I/O, since
//                                  `hubflow validate` calls it too
//   start()               -> acquire resources (open files, bind sockets); throw to refuse
//   ... work: Source::run, Filter::process, Sink::write/tick, on the node's own thread ...
//   flush() at end of input, then stop()
// stop() is called once the node's thread ends, also when start() threw or the node failed, so it must cope
// with resources that were never acquired.
// Exceptions thrown from any of these are caught by the host, logged with the node's name and counted.

#include <string>
#include <vector>

#include "hubflow/config.h"
#include "hubflow/context.h"
#include "hubflow/delivery.h"
#include "hubflow/event.h"
#include "hubflow/schema.h"

namespace hubflow {

class Component {
public:
    virtual ~Component() = default;
    virtual void configure(const ConfigView& config, Context& context) = 0;
    virtual void start() {}
    virtual void stop() {}
};

class Source : public Component {
public:
    // Produce events with context.emit() until there are no more or context.stopping() is true, then return.
    // Runs on a thread of its own.
    virtual void run() = 0;
};

class Filter : public Component {
public:
    // Named outputs besides the default one, known after configure(); downstream nodes read them as
    // "node.output".
    virtual std::vector<std::string> outputs() const { return {}; }
    // Handle one batch; emit results through the context. Runs on the node's thread.
    virtual void process(const SharedBatch& batch) = 0;
    // End of input: emit anything held back.
    virtual void flush() {}
};

class Sink : public Component {
public:
    // Deliver one batch. Return only when the sink has taken responsibility for the events (written,
    // buffered within its limits, or handed to a library that reports delivery). The host counts the batch as
    // delivered when this returns and as lost when it throws; a sink that can say more derives from
    // AcknowledgingSink instead.
    virtual void write(const EventBatch& batch) = 0;
    // Called about every tick_interval() when no batch arrives, and between batches when due: time-based
    // work such as an fsync interval or a once-a-second report.
    virtual void tick() {}
    virtual std::chrono::milliseconds tick_interval() const { return std::chrono::milliseconds(250); }
    // End of input: make everything accepted durable or delivered, within the host's grace period.
    virtual void flush() {}
};

// SDK 1.2. A sink that reports delivery itself, through a BatchAck per batch (hubflow/delivery.h), instead of
// by returning from write(): the file sink once its fsync policy has synced the events, a broker producer on
// the delivery report, an HTTP sink on a 2xx. The host joins these reports across fan-out and tells the
// producing source when each batch is finished.
//
// Threads and life: deliver() runs on the node's thread as Sink::write does; `ack` may be settled from any
// thread, during or after deliver(). The batch itself is valid only during the call: copy what outlives it.
// flush() should settle everything it manages to deliver before returning; what is still unsettled when
// stop() returns counts as not delivered (sent again after a restart), never as delivered.
// Bound what is taken and not yet settled (in flight) by the sink's own limits, blocking in deliver() when the
// bound is reached: that is how backpressure reaches the source.
class AcknowledgingSink : public Sink {
public:
    virtual void deliver(const EventBatch& batch, BatchAck ack) = 0;

    // The host calls deliver(); a call through the plain Sink interface (a test driving the component
    // directly, say) tracks nothing.
    void write(const EventBatch& batch) final { deliver(batch, BatchAck{}); }
};

}  // namespace hubflow
