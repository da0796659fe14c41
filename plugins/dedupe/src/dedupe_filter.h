#pragma once
// The `dedupe` filter: drops events already seen. The key is a list of field paths (default `id`), or every
// payload field except a list; keys are remembered in a bounded LRU (`cache_size`), optionally within a time
// window (`max_age_s`), optionally persisted in the node's data directory across restarts.

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "hubflow/component.h"
#include "hubflow/json.h"
#include "seen_cache.h"

namespace hubflow::dedupe {

class DedupeFilter final : public Filter {
public:
    static ComponentDescription describe();
    void configure(const ConfigView& config, Context& context) override;
    void start() override;
    void process(const SharedBatch& batch) override;
    void flush() override;
    void stop() override;

    // The text an event's key is hashed from; false when the event has none of the key fields (such events
    // are passed on: there is nothing to compare them by).
    bool key_of(const Event& event, std::string& out) const;

private:
    void save();  // when persisting and the cache changed since the last save; errors are logged
    void update_gauges();

    Context* context_ = nullptr;
    std::vector<FieldPath> fields_;
    std::vector<std::vector<std::string>> ignored_;  // ignore mode: payload paths left out of the key
    std::size_t cache_size_ = 5000;
    std::chrono::milliseconds max_age_{0};
    bool persist_ = false;
    std::chrono::milliseconds persist_interval_{10'000};
    std::chrono::steady_clock::time_point last_save_{};
    std::unique_ptr<SeenCache> cache_;
    std::filesystem::path cache_file_;
    bool dirty_ = false;
    std::string scratch_;                // the key text of one event, reused
    std::vector<unsigned char> keep_;    // per event of a batch: 0 drop, 1 keep, 2 keep (no key); reused
    std::vector<std::uint64_t> hashes_;  // per event of a batch, reused
    Counter* dropped_ = nullptr;
    Counter* keyless_ = nullptr;
    Gauge* cached_ = nullptr;
    Gauge* cache_bytes_ = nullptr;
};

}  // namespace hubflow::dedupe
