#pragma once
// Events and batches: the unit of data that flows through a pipeline.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace hubflow {

// What the host and components know about an event without parsing its payload. Empty string = unknown.
struct Metadata {
    std::string kind;                                     // "entry", "incident", ...
    std::string site_id;                                  // KS site the event belongs to
    std::string user_id;                                  // KS user, when the event concerns one
    std::string id;                                       // the event's own id, when it has one
    std::string source;                                   // name of the pipeline node that produced the event
    std::chrono::system_clock::time_point received_at{};  // when it entered the pipeline
};

// One event: the JSON text as received, plus metadata.
struct Event {
    std::string payload;
    Metadata meta;
};

// Events travel in batches. Once emitted a batch is immutable and shared by every downstream node (fan-out
// costs a reference count, not a copy), so consumers see it as const.
using EventBatch = std::vector<Event>;
using SharedBatch = std::shared_ptr<const EventBatch>;

}  // namespace hubflow
