#include "dead_letters.h"

#include <string_view>

#include "file_sink.h"
#include "hubflow/config.h"
#include "hubflow/json.h"
#include "hubflow/json_parse.h"
#include "webhook_sink.h"

namespace hubflow::webhook {

// The node's context as the embedded file sink sees it: everything passes through, except that its metric
// names get a "dead_letter_" prefix (its "bytes_written" is not the bytes the webhook sent).
class DeadLetters::PrefixedContext final : public Context {
public:
    explicit PrefixedContext(Context& inner) : inner_(inner), metrics_(inner.metrics()) {}
    const std::string& node_name() const override { return inner_.node_name(); }
    Logger& log() override { return inner_.log(); }
    Metrics& metrics() override { return metrics_; }
    const Clock& clock() const override { return inner_.clock(); }
    std::filesystem::path data_dir() override { return inner_.data_dir(); }
    void emit(EventBatch&& batch, std::string_view output) override { inner_.emit(std::move(batch), output); }
    void emit(SharedBatch batch, std::string_view output) override { inner_.emit(std::move(batch), output); }
    void fail(std::string_view reason) override { inner_.fail(reason); }
    bool stopping() const override { return inner_.stopping(); }
    bool wait_for(std::chrono::nanoseconds duration) override { return inner_.wait_for(duration); }

private:
    struct Prefixed final : Metrics {
        explicit Prefixed(Metrics& inner) : inner(inner) {}
        Counter& counter(std::string_view name, std::string_view help) override {
            return inner.counter("dead_letter_" + std::string(name), help);
        }
        Gauge& gauge(std::string_view name, std::string_view help) override {
            return inner.gauge("dead_letter_" + std::string(name), help);
        }
        Metrics& inner;
    };
    Context& inner_;
    Prefixed metrics_;
};

DeadLetters::DeadLetters(const std::string& path, const std::string& key, Context& context)
    : context_(std::make_unique<PrefixedContext>(context)), file_(std::make_unique<file::FileSink>()) {
    std::string json = "{\"path\":";
    append_json_string(json, path);
    json += ",\"fsync\":\"batch\"}";
    const Value config = parse_json(json);
    try {
        file_->configure(ConfigView(config), *context_);
    } catch (const ConfigError& e) {
        throw ConfigError(key, e.detail());
    }
}

DeadLetters::~DeadLetters() = default;

void DeadLetters::start() {
    std::lock_guard lock(mutex_);
    file_->start();
}

void DeadLetters::stop() {
    std::lock_guard lock(mutex_);
    file_->stop();
}

void DeadLetters::write(const Request& request, int status, const std::string& error, const std::string& response,
                        std::uint64_t attempts) {
    // The system clock, not the node's: this runs on sender threads, and a test's manual clock is only for
    // the node's own thread.
    const auto now = std::chrono::system_clock::now();
    std::string head = "{\"at\":\"" + format_utc(now) + "\",\"status\":";
    head += status > 0 ? std::to_string(status) : "null";
    head += ",\"error\":";
    append_json_string(head, error);
    head += ",\"response\":";
    append_json_string(head, response);
    head += ",\"attempts\":" + std::to_string(attempts) + ",\"webhook_id\":";
    append_json_string(head, request.id);
    head += ",\"event\":";

    EventBatch records(request.count());
    for (std::size_t i = 0; i < request.count(); ++i) {
        const auto [offset, length] = request.events[i];
        Event& record = records[i];
        record.payload.reserve(head.size() + length + 1);
        record.payload = head;
        record.payload.append(request.body, offset, length);
        record.payload += '}';
        record.meta.received_at = now;
    }
    std::lock_guard lock(mutex_);
    file_->write(records);
}

}  // namespace hubflow::webhook
