#pragma once
// The JSON documents of /api/v1/graph and /readyz. Pure functions of a status snapshot.

#include <chrono>
#include <string>

#include "runtime/runtime.h"

namespace hubflow::core {

// {"phase": "...", "nodes": [{"name", "kind", "type", "inputs", "buffer": {"type", "events", "capacity",
//  "fill"}, "received", "finished", "in_flight" (not for a source), "emitted", "sent": {output: n},
//  "discarded", "discarded_by_reason": {"filtered", "queue_full", "node_failed", "refused"}, "errors", "failed",
//  "state"}], "edges": [{"from", "output", "to", "events"}]}
std::string render_graph(const RuntimeStatus& status, std::chrono::steady_clock::time_point now,
                         std::chrono::milliseconds stall_after);

struct Readiness {
    bool ready = false;
    std::string json;  // {"ready": bool, "phase": "...", "nodes": [{"name", "ok", "reason"}]}
};
Readiness evaluate_readiness(const RuntimeStatus& status, std::chrono::steady_clock::time_point now,
                             std::chrono::milliseconds stall_after);

}  // namespace hubflow::core
