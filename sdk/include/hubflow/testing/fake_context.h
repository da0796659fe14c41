#pragma once
// Test doubles for plugin authors: drive a component in a unit test without a host.
//
//   hubflow::testing::FakeContext context("my_node");
//   MySink sink;
//   hubflow::Value config = hubflow::testing::node_config(MySink::describe(), R"({"path": "x"})");
//   sink.configure(hubflow::ConfigView(config), context);
//   ... context.emitted, context.logs, context.clock.advance(...) ...

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "hubflow/context.h"
#include "hubflow/delivery.h"

namespace hubflow::testing {

class ManualClock : public Clock {
public:
    std::chrono::system_clock::time_point now() const override { return wall_; }
    std::chrono::steady_clock::time_point monotonic() const override { return steady_; }
    void advance(std::chrono::nanoseconds d) {
        wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
        steady_ += d;
    }
    void set_wall(std::chrono::system_clock::time_point t) { wall_ = t; }

private:
    std::chrono::system_clock::time_point wall_{std::chrono::seconds(1'800'000'000)};
    std::chrono::steady_clock::time_point steady_{};
};

class MemoryLogger : public Logger {
public:
    void write(LogLevel level, std::string_view message) override {
        std::lock_guard lock(mutex_);
        lines.emplace_back(level, std::string(message));
    }
    bool enabled(LogLevel) const override { return true; }
    bool contains(std::string_view text) const {
        std::lock_guard lock(mutex_);
        for (const auto& [level, line] : lines)
            if (line.find(text) != std::string::npos) return true;
        return false;
    }
    std::vector<std::pair<LogLevel, std::string>> lines;

private:
    mutable std::mutex mutex_;
};

class MemoryMetrics : public Metrics {
public:
    Counter& counter(std::string_view name, std::string_view) override { return counters[std::string(name)]; }
    Gauge& gauge(std::string_view name, std::string_view) override { return gauges[std::string(name)]; }
    std::map<std::string, Counter, std::less<>> counters;
    std::map<std::string, Gauge, std::less<>> gauges;
};

// A ticket that records how a sink settled a batch, for sink tests: pass ack() to AcknowledgingSink::deliver()
// and wait for settled() to reach the batch's size. Unlike the host's tickets it stays usable after the last
// event, so one recorder may follow several batches.
class AckRecorder final : public detail::DeliveryTicket {
public:
    BatchAck ack() { return BatchAck(this); }
    void resolve(std::size_t events, Resolution how) override {
        {
            std::lock_guard lock(mutex_);
            (how == Resolution::delivered ? delivered_ : how == Resolution::refused ? refused_ : lost_) += events;
        }
        changed_.notify_all();
    }
    std::size_t delivered() const { return read(delivered_); }
    std::size_t refused() const { return read(refused_); }
    std::size_t lost() const { return read(lost_); }
    std::size_t settled() const {
        std::lock_guard lock(mutex_);
        return delivered_ + refused_ + lost_;
    }
    // Waits until at least `events` are settled; false when `timeout` passes first.
    bool wait_settled(std::size_t events, std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return delivered_ + refused_ + lost_ >= events; });
    }

private:
    std::size_t read(const std::size_t& value) const {
        std::lock_guard lock(mutex_);
        return value;
    }
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::size_t delivered_ = 0, refused_ = 0, lost_ = 0;
};

class FakeContext : public Context {
public:
    explicit FakeContext(std::string name, std::filesystem::path data_dir = {})
        : name_(std::move(name)), data_dir_(std::move(data_dir)) {}

    const std::string& node_name() const override { return name_; }
    Logger& log() override { return logger; }
    Metrics& metrics() override { return metric_registry; }
    const Clock& clock() const override { return clock_; }
    std::filesystem::path data_dir() override {
        if (data_dir_.empty()) data_dir_ = std::filesystem::temp_directory_path() / ("hubflow-fake-" + name_);
        std::filesystem::create_directories(data_dir_);
        return data_dir_;
    }
    // Stamps metadata as the host does, then records the events by output.
    void emit(EventBatch&& batch, std::string_view output = {}) override {
        for (auto& e : batch) {
            if (e.meta.source.empty()) e.meta.source = name_;
            if (e.meta.received_at.time_since_epoch().count() == 0) e.meta.received_at = clock_.now();
        }
        emit(std::make_shared<const EventBatch>(std::move(batch)), output);
    }
    void emit(SharedBatch batch, std::string_view output = {}) override {
        std::lock_guard lock(mutex_);
        if (!batch || batch->empty()) return;
        ++emitted_batches;
        for (const auto& e : *batch)
            emitted[std::string(output)].push_back(e);
    }
    // With `tracks_deliveries` set before configure(): tracking as the host does it, except that batches end
    // only when the test says so with end_batch(). Off by default, like a host that cannot track.
    bool track_deliveries(DeliveryListener& l) override {
        if (!tracks_deliveries) return false;
        listener = &l;
        return true;
    }
    void end_batch(std::uint64_t number, BatchOutcome outcome = BatchOutcome::finished) {
        if (listener) listener->batch_ended(number, outcome);
    }
    void fail(std::string_view reason) override {
        std::lock_guard lock(mutex_);
        failures.emplace_back(reason);
    }
    bool stopping() const override { return stop_requested.load(); }
    bool wait_for(std::chrono::nanoseconds d) override {
        clock_.advance(d);
        return !stop_requested.load();
    }

    ManualClock& clock_control() { return clock_; }

    MemoryLogger logger;
    MemoryMetrics metric_registry;
    std::map<std::string, std::vector<Event>> emitted;  // by output ("" = default)
    std::vector<std::string> failures;
    std::atomic<bool> stop_requested{false};  // settable from another thread
    bool tracks_deliveries = false;
    std::atomic<std::uint64_t> emitted_batches{0};  // non-empty batches, the numbers track_deliveries() counts
    DeliveryListener* listener = nullptr;

private:
    std::string name_;
    std::filesystem::path data_dir_;
    ManualClock clock_;
    std::mutex mutex_;
};

}  // namespace hubflow::testing
