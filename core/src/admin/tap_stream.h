#pragma once
// The NDJSON lines of /api/v1/tap: one object per event, and a closing line with the counts.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/pipeline.h"
#include "hubflow/event.h"
#include "runtime/runtime.h"

namespace Poco::Net {
class HTTPServerRequest;
class HTTPServerResponse;
}  // namespace Poco::Net

namespace hubflow::core {

// {"node", "output", "kind", "site_id", "user_id", "id", "source", "received_at", "payload": <the payload as
// raw JSON>} and a newline. A payload that is not JSON goes as a string under "payload_text" instead, so every
// line stays one JSON object.
void append_tap_line(std::string& out, std::string_view node, std::string_view output, const Event& event);

struct TapSummary {
    std::string reason;  // "limit", "finished" (the pipeline ended), "stopping" (the admin server stops)
    std::uint64_t events = 0, dropped = 0, skipped = 0;
};
// {"end": true, "reason", "events", "dropped", "skipped"} and a newline.
std::string tap_end_line(const TapSummary& summary);

// GET /api/v1/tap?node=N&limit=100&rate=100 on an admin thread, once the token was checked: streams NDJSON
// (chunked) until `limit` events were sent, the client went away, the pipeline finished or `stopping` was set.
// 403 when the tap is off, 404 naming the known nodes for an unknown one, 400 for a bad parameter, 429 when
// max_taps are open already. At most `rate` events a second (default 100, at most 1000), `limit` at most 10000.
struct TapServer {
    const AdminSpec& spec;
    const Runtime& runtime;
    const std::atomic<bool>& stopping;
    std::atomic<int>& open;  // taps streaming now
    int max_taps = 4;        // each holds one of the admin server's threads while it streams
};
void serve_tap(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response, TapServer& server);

}  // namespace hubflow::core
