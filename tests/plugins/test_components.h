#pragma once
// Test-only components, loaded as a real plugin by integration tests:
//   memory  (source): emits the configured payloads, optionally forever until shutdown
//   capture (sink):   writes every event with its metadata as one JSON line; can be told to fail or be slow

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "hubflow/component.h"

namespace hubflow::test {

class MemorySource final : public Source {
public:
    static ComponentDescription describe();
    void configure(const ConfigView& config, Context& context) override;
    void run() override;

private:
    Context* context_ = nullptr;
    std::vector<std::string> payloads_;
    std::int64_t repeat_ = 1;
    std::int64_t batch_size_ = 100;
    std::string kind_;
    std::string site_id_;
    bool until_stopped_ = false;
    std::int64_t throw_after_ = -1;
};

class CaptureSink final : public Sink {
public:
    static ComponentDescription describe();
    void configure(const ConfigView& config, Context& context) override;
    void start() override;
    void write(const EventBatch& batch) override;
    void flush() override;
    void stop() override;

private:
    Context* context_ = nullptr;
    std::string path_;
    std::string fail_on_;
    std::string fail_with_;
    bool fail_start_ = false;
    std::chrono::milliseconds delay_{0};
    std::FILE* file_ = nullptr;
};

}  // namespace hubflow::test
