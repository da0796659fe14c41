#include "test_components.h"

#include <stdexcept>
#include <thread>

#include "hubflow/json.h"

namespace hubflow::test {

ComponentDescription MemorySource::describe() {
    return {"memory",
            ComponentKind::source,
            "test source: emits the configured payloads",
            {{.name = "payloads", .type = FieldType::strings, .default_json = R"(["{}"])", .doc = "payloads to emit"},
             {.name = "repeat", .type = FieldType::integer, .default_json = "1", .doc = "times to emit the list"},
             {.name = "batch_size", .type = FieldType::integer, .default_json = "100", .doc = "events per batch"},
             {.name = "kind", .type = FieldType::string, .default_json = R"("entry")", .doc = "metadata kind"},
             {.name = "site_id", .type = FieldType::string, .default_json = R"("")", .doc = "metadata site_id"},
             {.name = "until_stopped",
              .type = FieldType::boolean,
              .default_json = "false",
              .doc = "after the payloads, keep running until shutdown"},
             {.name = "throw_after",
              .type = FieldType::integer,
              .default_json = "-1",
              .doc = "throw from run() after this many events (-1 = never)"}}};
}

void MemorySource::configure(const ConfigView& config, Context& context) {
    context_ = &context;
    payloads_ = config.strings("payloads");
    repeat_ = config.integer_in("repeat", 0, 1'000'000'000);
    batch_size_ = config.integer_in("batch_size", 1, 1'000'000);
    kind_ = config.string("kind");
    site_id_ = config.string("site_id");
    until_stopped_ = config.boolean("until_stopped");
    throw_after_ = config.integer("throw_after");
}

void MemorySource::run() {
    EventBatch batch;
    std::int64_t sent = 0;
    for (std::int64_t r = 0; r < repeat_ && !context_->stopping(); ++r) {
        for (std::size_t i = 0; i < payloads_.size(); ++i) {
            if (throw_after_ >= 0 && sent == throw_after_) {
                context_->emit(std::move(batch));
                throw std::runtime_error("memory source told to throw after " + std::to_string(sent) + " events");
            }
            Event e;
            e.payload = payloads_[i];
            e.meta.kind = kind_;
            e.meta.site_id = site_id_;
            e.meta.id = std::to_string(sent);
            batch.push_back(std::move(e));
            ++sent;
            if (static_cast<std::int64_t>(batch.size()) >= batch_size_) {
                context_->emit(std::move(batch));
                batch = {};
            }
        }
    }
    context_->emit(std::move(batch));
    if (until_stopped_)
        while (context_->wait_for(std::chrono::seconds(1))) {
        }
}

ComponentDescription CaptureSink::describe() {
    return {
        "capture",
        ComponentKind::sink,
        "test sink: writes events with metadata as JSON lines",
        {{.name = "path", .type = FieldType::string, .required = true, .doc = "output file", .claim = Claim::file_path},
         {.name = "fail_on",
          .type = FieldType::string,
          .default_json = R"("")",
          .doc = "write() throws for a batch holding a payload containing this text"},
         {.name = "fail_with",
          .type = FieldType::string,
          .default_json = R"("")",
          .doc = "call context.fail() with this reason for a batch holding fail_on"},
         {.name = "fail_start", .type = FieldType::boolean, .default_json = "false", .doc = "start() throws"},
         {.name = "delay_ms", .type = FieldType::integer, .default_json = "0", .doc = "pause per batch"}}};
}

void CaptureSink::configure(const ConfigView& config, Context& context) {
    context_ = &context;
    path_ = config.string("path");
    fail_on_ = config.string("fail_on");
    fail_with_ = config.string("fail_with");
    fail_start_ = config.boolean("fail_start");
    delay_ = std::chrono::milliseconds(config.integer_in("delay_ms", 0, 60'000));
}

void CaptureSink::start() {
    if (fail_start_) throw std::runtime_error("capture sink told to fail at start");
    file_ = std::fopen(path_.c_str(), "a");
    if (!file_) throw std::runtime_error("cannot open " + path_);
}

void CaptureSink::write(const EventBatch& batch) {
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    std::string out;
    for (const auto& e : batch) {
        if (!fail_on_.empty() && e.payload.find(fail_on_) != std::string::npos) {
            if (!fail_with_.empty()) {
                context_->fail(fail_with_);
                return;
            }
            throw std::runtime_error("capture sink told to fail on '" + fail_on_ + "'");
        }
        out += "{\"source\":";
        append_json_string(out, e.meta.source);
        out += ",\"kind\":";
        append_json_string(out, e.meta.kind);
        out += ",\"site_id\":";
        append_json_string(out, e.meta.site_id);
        out += ",\"id\":";
        append_json_string(out, e.meta.id);
        out += ",\"payload\":";
        append_json_string(out, e.payload);
        out += "}\n";
    }
    std::fwrite(out.data(), 1, out.size(), file_);
}

void CaptureSink::flush() {
    if (file_) std::fflush(file_);
}

void CaptureSink::stop() {
    if (file_) std::fclose(file_);
    file_ = nullptr;
}

}  // namespace hubflow::test
