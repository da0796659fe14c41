#pragma once
// Host services as a component sees them. The host creates one Context per node and keeps it alive for the
// node's whole life; a component may keep the reference it receives in configure(). No singletons: a
// component reaches the host only through here.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

#include "hubflow/delivery.h"
#include "hubflow/event.h"

namespace hubflow {

enum class LogLevel { debug, info, warn, error };

// Messages are prefixed with the node's name by the host. Never pass secrets or tokens here.
// Thread-safe.
class Logger {
public:
    virtual ~Logger() = default;
    virtual void write(LogLevel level, std::string_view message) = 0;
    virtual bool enabled(LogLevel level) const = 0;

    template <typename... Parts>
    void debug(const Parts&... parts) {
        log(LogLevel::debug, parts...);
    }
    template <typename... Parts>
    void info(const Parts&... parts) {
        log(LogLevel::info, parts...);
    }
    template <typename... Parts>
    void warn(const Parts&... parts) {
        log(LogLevel::warn, parts...);
    }
    template <typename... Parts>
    void error(const Parts&... parts) {
        log(LogLevel::error, parts...);
    }

private:
    template <typename... Parts>
    void log(LogLevel level, const Parts&... parts) {
        if (!enabled(level)) return;
        std::ostringstream text;
        (text << ... << parts);
        write(level, text.str());
    }
};

// A monotonically increasing count. Lock-free; safe from any thread.
class Counter {
public:
    void add(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down (connections open, bytes buffered).
class Gauge {
public:
    void set(std::int64_t v) { value_.store(v, std::memory_order_relaxed); }
    void add(std::int64_t d) { value_.fetch_add(d, std::memory_order_relaxed); }
    std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::int64_t> value_{0};
};

// Per-node metrics. The host already keeps the common ones for every node (events received, emitted,
// dropped, errors); components add their own. The returned references stay valid for the node's life, so
// look them up once, not per event. Names are lowercase with underscores.
class Metrics {
public:
    virtual ~Metrics() = default;
    virtual Counter& counter(std::string_view name, std::string_view help) = 0;
    virtual Gauge& gauge(std::string_view name, std::string_view help) = 0;
};

// Time as the host sees it; tests substitute their own.
class Clock {
public:
    virtual ~Clock() = default;
    virtual std::chrono::system_clock::time_point now() const = 0;
    virtual std::chrono::steady_clock::time_point monotonic() const = 0;
};

class Context {
public:
    virtual ~Context() = default;

    virtual const std::string& node_name() const = 0;
    virtual Logger& log() = 0;
    virtual Metrics& metrics() = 0;
    virtual const Clock& clock() const = 0;

    // This node's own directory for state that must survive a restart; created on first use.
    virtual std::filesystem::path data_dir() = 0;

    // Hand events to the nodes downstream, on the default output or a named one. May block while a
    // downstream queue is full (backpressure). Sets metadata.source to this node's name when it is empty.
    // Callable only from the thread that runs the component (Source::run, Filter::process).
    virtual void emit(EventBatch&& batch, std::string_view output = {}) = 0;
    virtual void emit(SharedBatch batch, std::string_view output = {}) = 0;

    // A batch of `size` events for the caller to overwrite and emit, made from the storage of batches this node
    // emitted earlier and every consumer has released. Its events hold stale payloads and metadata (source and
    // received_at are cleared), so assigning to their strings reuses memory instead of allocating: in steady
    // state a source that fills batches this way allocates nothing per event, and no memory travels from the
    // thread that frees it back through the allocator to the thread that allocates it.
    virtual EventBatch reusable_batch(std::size_t size) { return EventBatch(size); }

    // Report that this node cannot go on. The host logs it with the node's name, stops calling the node
    // and keeps running the rest of the graph (events for the node are then counted as dropped).
    virtual void fail(std::string_view reason) = 0;

    // True once the host is shutting down; sources return from run() when they see it.
    virtual bool stopping() const = 0;
    // Sleep up to `duration`; returns early, with false, when the host starts shutting down.
    virtual bool wait_for(std::chrono::nanoseconds duration) = 0;

    // ---- SDK 1.2: appended, so the virtual functions above keep the slots plugins built for 1.0 and 1.1 use.

    // Asks the host to tell `listener` how each batch this node emits from now on ends (hubflow/delivery.h).
    // Batches are numbered by the caller's own count: the n-th non-empty batch emitted after this call (either
    // emit() overload, any output) is number n, starting at 1; empty batches are ignored and get no number.
    // Call it from configure() or start(); `listener` must outlive the node's thread. Returns false when the
    // host cannot track deliveries (a test context, say): the node then knows nothing beyond emit() returning
    // and should keep its older, weaker behaviour.
    virtual bool track_deliveries(DeliveryListener& listener) {
        (void)listener;
        return false;
    }
};

}  // namespace hubflow
