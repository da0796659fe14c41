#pragma once
// The admin HTTP server (top-level `"admin": {"listen": "127.0.0.1:9610"}`), on Poco's HTTPServer with a few
// threads of its own, so nothing it does (a slow scraper, many clients) touches the pipeline's threads:
// it only reads Runtime::status(), whose figures are atomics.
//
//   GET /livez            200 while the process serves requests at all; never looks at the sinks
//   GET /readyz           200 when the graph runs and every node is healthy; 503 while it starts or drains, or
//                         when a node failed or is stalled (input waiting, nothing handled for stall_after_s),
//                         with a JSON body naming each node and why
//   GET /metrics          Prometheus text 0.0.4, or OpenMetrics 1.0 when Accept asks for it (exposition.h)
//   GET /api/v1/graph     nodes, edges and live counters as JSON (graph_json.h)
//   GET /api/v1/tap       NDJSON samples of the events leaving a node, with `"tap": true` only (tap_stream.h)
//   GET /ui               the live pipeline page (ui_page.h); static, so it needs no token: it asks for one and
//                         sends it with its own requests
//   POST /api/v1/reload   re-reads the pipeline file and applies it (Runtime::reload); answers once the new graph
//                         runs: 200, 400 listing every problem (nothing changed), 409 during another reload
// Anything else is 404, a known path with another method 405. With `token_env`, every path but /livez,
// /readyz and /ui needs `Authorization: Bearer <token>` (401 otherwise; the token is never logged). Configuration
// refuses a non-loopback address without a token unless allow_remote is set.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "config/pipeline.h"
#include "runtime/log.h"
#include "runtime/runtime.h"

namespace Poco::Net {
class HTTPServer;
}

namespace hubflow::core {

class AdminServer {
public:
    AdminServer(const AdminSpec& spec, const Runtime& runtime, LogSink& log);
    ~AdminServer();
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    // Binds and starts serving. Throws with a sentence naming the address when it cannot bind, or when the
    // token variable is named but empty.
    void start();
    void stop();
    // POST /api/v1/reload calls this (reads and validates the pipeline file, then Runtime::reload). Set before
    // start(); without it the endpoint answers 503.
    void set_reload(std::function<ReloadReport()> reload) { reload_ = std::move(reload); }
    std::uint16_t port() const { return port_; }

private:
    class Handler;
    class Factory;

    std::function<ReloadReport()> reload_;
    const AdminSpec spec_;
    const Runtime& runtime_;
    LogSink& log_;
    std::string token_;
    const std::chrono::system_clock::time_point started_;
    std::unique_ptr<Poco::Net::HTTPServer> server_;
    std::uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};  // tells open taps to end
    std::atomic<int> open_taps_{0};
};

}  // namespace hubflow::core
