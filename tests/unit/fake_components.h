#pragma once
// In-process components for core unit tests. They record what they see in a Recorder shared by the test.

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "config/pipeline.h"
#include "hubflow/component.h"

namespace hubflow::testing_core {

// A pipeline from JSON text, validated against `registry`; the test fails when the text has a problem.
inline core::PipelineSpec valid_pipeline(const std::string& text, const core::ComponentRegistry& registry) {
    core::Diagnostics diags("test.json");
    auto doc = core::parse_pipeline_text(
        text, [](const std::string&) { return std::nullopt; }, diags);
    EXPECT_TRUE(doc.has_value());
    if (!doc) return {};
    core::PipelineSpec spec = core::validate_pipeline(*doc, registry, diags);
    EXPECT_TRUE(diags.empty()) << diags.to_string();
    return spec;
}

// What the fake sinks received, by node name. Tests wait on it with deadlines.
struct Recorder {
    std::mutex mutex;
    std::condition_variable changed;
    std::map<std::string, std::vector<Event>> received;

    void add(const std::string& node, const EventBatch& batch) {
        {
            std::lock_guard lock(mutex);
            auto& v = received[node];
            v.insert(v.end(), batch.begin(), batch.end());
        }
        changed.notify_all();
    }
    std::size_t count(const std::string& node) {
        std::lock_guard lock(mutex);
        return received[node].size();
    }
    template <typename Pred>
    bool wait_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, timeout, [&] { return pred(received); });
    }
};

inline Recorder* recorder = nullptr;  // set by each test fixture; the components are created by the host

class TickerSource final : public Source {
public:
    static ComponentDescription describe() {
        return {
            "ticker",
            ComponentKind::source,
            "emits `count` numbered events",
            {{.name = "count", .type = FieldType::integer, .default_json = "10", .doc = "events to emit"},
             {.name = "batch", .type = FieldType::integer, .default_json = "4", .doc = "events per batch"},
             {.name = "forever", .type = FieldType::boolean, .default_json = "false", .doc = "then idle until stop"},
             {.name = "label", .type = FieldType::string, .default_json = R"("t")", .doc = "payload prefix"}}};
    }
    void configure(const ConfigView& c, Context& ctx) override {
        ctx_ = &ctx;
        count_ = c.integer_in("count", 0, 10'000'000);
        batch_ = c.integer_in("batch", 1, 100'000);
        forever_ = c.boolean("forever");
        label_ = c.string("label");
    }
    void run() override {
        EventBatch b;
        for (std::int64_t i = 0; i < count_ && !ctx_->stopping(); ++i) {
            Event e;
            e.payload = "{\"n\":" + std::to_string(i) + ",\"label\":\"" + label_ + "\"}";
            e.meta.id = label_ + std::to_string(i);
            e.meta.kind = i % 2 ? "incident" : "entry";
            b.push_back(std::move(e));
            if (static_cast<std::int64_t>(b.size()) == batch_) ctx_->emit(std::exchange(b, {}));
        }
        ctx_->emit(std::move(b));
        if (forever_)
            while (ctx_->wait_for(std::chrono::seconds(5))) {
            }
    }

private:
    Context* ctx_ = nullptr;
    std::int64_t count_ = 0, batch_ = 1;
    bool forever_ = false;
    std::string label_;
};

// Sends entries to output "entries", incidents to "incidents", and anything else to the default output.
class SplitFilter final : public Filter {
public:
    static ComponentDescription describe() {
        return {"split",
                ComponentKind::filter,
                "routes by kind",
                {{.name = "outputs",
                  .type = FieldType::strings,
                  .default_json = R"(["entries","incidents"])",
                  .doc = "named outputs"}}};
    }
    void configure(const ConfigView& c, Context& ctx) override {
        ctx_ = &ctx;
        outputs_ = c.strings("outputs");
        for (const auto& o : outputs_)
            if (o == "bad") throw c.error("outputs", "'bad' is not a valid output name");
    }
    std::vector<std::string> outputs() const override { return outputs_; }
    void process(const SharedBatch& batch) override {
        EventBatch entries, incidents;
        for (const auto& e : *batch)
            (e.meta.kind == "entry" ? entries : incidents).push_back(e);
        ctx_->emit(std::move(entries), "entries");
        ctx_->emit(std::move(incidents), "incidents");
    }

private:
    Context* ctx_ = nullptr;
    std::vector<std::string> outputs_;
};

class PassFilter final : public Filter {
public:
    static ComponentDescription describe() { return {"pass", ComponentKind::filter, "passes batches on", {}}; }
    void configure(const ConfigView&, Context& ctx) override { ctx_ = &ctx; }
    void process(const SharedBatch& batch) override { ctx_->emit(batch); }

private:
    Context* ctx_ = nullptr;
};

class StoreSink final : public Sink {
public:
    static ComponentDescription describe() {
        return {"store",
                ComponentKind::sink,
                "records events",
                {{.name = "path",
                  .type = FieldType::string,
                  .default_json = R"("")",
                  .doc = "claimed file",
                  .claim = Claim::file_path},
                 {.name = "listen",
                  .type = FieldType::string,
                  .default_json = R"("")",
                  .doc = "claimed address",
                  .claim = Claim::listen_address},
                 {.name = "level", .type = FieldType::integer, .default_json = "3", .doc = "a number"},
                 {.name = "opts",
                  .type = FieldType::object,
                  .doc = "nested options",
                  .fields = {{.name = "depth", .type = FieldType::integer, .required = true, .doc = "depth"}}},
                 {.name = "throw_on", .type = FieldType::string, .default_json = R"("")", .doc = "throw on payload"},
                 {.name = "fail_on", .type = FieldType::string, .default_json = R"("")", .doc = "fail() on payload"},
                 {.name = "block",
                  .type = FieldType::boolean,
                  .default_json = "false",
                  .doc = "write() waits until released"},
                 {.name = "fail_start", .type = FieldType::boolean, .default_json = "false", .doc = "start() throws"}}};
    }
    void configure(const ConfigView& c, Context& ctx) override {
        ctx_ = &ctx;
        throw_on_ = c.string("throw_on");
        fail_on_ = c.string("fail_on");
        block_ = c.boolean("block");
        fail_start_ = c.boolean("fail_start");
    }
    void start() override {
        if (fail_start_) throw std::runtime_error("store told not to start");
    }
    void write(const EventBatch& batch) override {
        for (const auto& e : batch) {
            if (!throw_on_.empty() && e.payload.find(throw_on_) != std::string::npos)
                throw std::runtime_error("store told to throw");
            if (!fail_on_.empty() && e.payload.find(fail_on_) != std::string::npos) {
                ctx_->fail("store told to fail");
                return;
            }
        }
        if (block_) {
            std::unique_lock lock(gate_mutex);
            gate.wait(lock, [] { return released.load(); });
        }
        recorder->add(ctx_->node_name(), batch);
    }
    void flush() override { flushed.fetch_add(1); }

    static inline std::mutex gate_mutex;
    static inline std::condition_variable gate;
    static inline std::atomic<bool> released{true};
    static inline std::atomic<int> flushed{0};

private:
    Context* ctx_ = nullptr;
    std::string throw_on_, fail_on_;
    bool block_ = false;
    bool fail_start_ = false;
};

}  // namespace hubflow::testing_core
