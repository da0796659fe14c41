#include "dead_letters.h"

#include <chrono>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "hubflow/config.h"
#include "webhook_sink.h"

namespace hubflow::webhook {

namespace {

DeadLetterWriter make_writer(const std::string& path, const std::string& key, Context& context) {
    try {
        return DeadLetterWriter(path, context);
    } catch (const std::invalid_argument& e) {
        throw ConfigError(key, e.what());
    }
}

}  // namespace

DeadLetters::DeadLetters(const std::string& path, const std::string& key, Context& context)
    : writer_(make_writer(path, key, context)) {}

void DeadLetters::start() {
    writer_.open();
}

void DeadLetters::stop() {
    writer_.close();
}

void DeadLetters::write(const Request& request, int status, const std::string& error, const std::string& response,
                        std::uint64_t attempts) {
    // The system clock, not the node's: this runs on sender threads, and a test's manual clock is only for
    // the node's own thread.
    const auto now = std::chrono::system_clock::now();
    DeadLetterRecord head;
    head.add_time("at", now);
    if (status > 0)
        head.add_integer("status", status);
    else
        head.add_null("status");
    head.add_string("error", error)
        .add_string("response", response)
        .add_integer("attempts", static_cast<std::int64_t>(attempts))
        .add_string("webhook_id", request.id);

    std::vector<std::string> records;
    records.reserve(request.count());
    for (const auto& [offset, length] : request.events)
        records.push_back(head.with_json("event", std::string_view(request.body).substr(offset, length)));
    writer_.write(records, now);
}

}  // namespace hubflow::webhook
