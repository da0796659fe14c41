#pragma once
// The `generator` source: synthetic Salto KS entries and incidents for demos, tests and benchmarks.
// The events themselves come from KsEventFactory; this class adds configuration, pacing and metrics.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "hubflow/component.h"
#include "ks_event_factory.h"

namespace hubflow::generator {

class GeneratorSource final : public Source {
public:
    static ComponentDescription describe();
    void configure(const ConfigView& config, Context& context) override;
    // Settles the seed and start time (choosing and logging them when not configured) and builds the sites.
    void start() override;
    void run() override;

    // Events per batch at the configured rate: small at low rates so events leave when they are due instead
    // of in bunches, at most `batch_size`.
    std::int64_t effective_batch_size() const;

private:
    Context* context_ = nullptr;
    KsEventFactoryOptions options_;
    std::int64_t count_ = 0;  // 0 = unlimited
    double rate_ = 0;         // events per second; 0 = as fast as possible
    std::int64_t batch_size_ = 512;
    std::uint64_t seed_ = 0;  // 0 = choose one in start()
    std::optional<std::chrono::system_clock::time_point> start_time_;
    std::unique_ptr<KsEventFactory> factory_;
    Counter* entries_ = nullptr;
    Counter* incidents_ = nullptr;
    Counter* duplicates_ = nullptr;
};

}  // namespace hubflow::generator
