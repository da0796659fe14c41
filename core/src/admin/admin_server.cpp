#include "admin/admin_server.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/URI.h>

#include <cstdlib>
#include <thread>

#include "admin/exposition.h"
#include "admin/graph_json.h"
#include "admin/process_stats.h"
#include "admin/tap_stream.h"
#include "admin/ui_page.h"
#include "hubflow/json.h"

namespace hubflow::core {

namespace {

using Poco::Net::HTTPResponse;

// Compares without an early exit, so the time taken does not tell how much of a guess was right.
bool same_secret(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (std::size_t i = 0; i < a.size(); ++i)
        diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
    return diff == 0;
}

void send(Poco::Net::HTTPServerResponse& response, HTTPResponse::HTTPStatus status, std::string_view type,
          const std::string& body) {
    response.setStatus(status);
    response.setContentType(std::string(type));
    response.set("Cache-Control", "no-store");
    response.setContentLength(static_cast<std::streamsize>(body.size()));
    response.send() << body;
}

std::string json_error(std::string_view message) {
    std::string out = "{\"error\":";
    append_json_string(out, message);
    return out + "}\n";
}

}  // namespace

class AdminServer::Handler final : public Poco::Net::HTTPRequestHandler {
public:
    explicit Handler(AdminServer& server) : server_(server) {}

    void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
        const std::string path = Poco::URI(request.getURI()).getPath();
        const bool get = request.getMethod() == "GET" || request.getMethod() == "HEAD";
        static const char* const known[] = {"/livez",      "/readyz", "/metrics",      "/api/v1/graph",
                                            "/api/v1/tap", "/ui",     "/api/v1/reload"};
        bool is_known = false;
        for (const char* k : known)
            is_known |= path == k;
        if (!is_known) {
            send(response, HTTPResponse::HTTP_NOT_FOUND, "application/json",
                 json_error("no such path; the admin server serves /livez, /readyz, /metrics, /api/v1/graph, "
                            "/api/v1/tap, /ui, /api/v1/reload"));
            return;
        }
        if (path == "/api/v1/reload") {
            if (request.getMethod() != "POST") {
                response.set("Allow", "POST");
                send(response, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "application/json",
                     json_error("/api/v1/reload answers POST only"));
                return;
            }
            if (refused(request, response)) return;
            serve_reload(response);
            return;
        }
        if (!get) {
            response.set("Allow", "GET, HEAD");
            send(response, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "application/json",
                 json_error(path + " answers GET only"));
            return;
        }
        if (path == "/livez") {
            send(response, HTTPResponse::HTTP_OK, "text/plain; charset=utf-8", "ok\n");
            return;
        }
        if (path == "/ui") {
            // The page loads nothing from elsewhere, and this keeps it so.
            response.set("Content-Security-Policy",
                         "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; "
                         "style-src 'unsafe-inline'; img-src data:");
            send(response, HTTPResponse::HTTP_OK, "text/html; charset=utf-8", std::string(ui_page()));
            return;
        }
        const auto now = std::chrono::steady_clock::now();
        if (path == "/readyz") {
            Readiness r = evaluate_readiness(server_.runtime_.status(), now, server_.spec_.stall_after);
            send(response, r.ready ? HTTPResponse::HTTP_OK : HTTPResponse::HTTP_SERVICE_UNAVAILABLE, "application/json",
                 r.json + "\n");
            return;
        }
        if (refused(request, response)) return;
        if (path == "/api/v1/tap") {
            TapServer tap{server_.spec_, server_.runtime_, server_.stopping_, server_.open_taps_};
            serve_tap(request, response, tap);
            return;
        }
        if (path == "/metrics") {
            const ExpositionFormat format = negotiate_exposition(request.get("Accept", ""));
            send(response, HTTPResponse::HTTP_OK, content_type(format),
                 render_metrics(server_.runtime_.status(), read_process_stats(server_.started_), format));
            return;
        }
        send(response, HTTPResponse::HTTP_OK, "application/json",
             render_graph(server_.runtime_.status(), now, server_.spec_.stall_after) + "\n");
    }

private:
    // Answers once the new graph runs: 200 applied, 400 invalid (every problem listed, nothing changed),
    // 409 while another reload runs, 503 when the graph is starting or stopping.
    void serve_reload(Poco::Net::HTTPServerResponse& response) {
        if (!server_.reload_) {
            send(response, HTTPResponse::HTTP_SERVICE_UNAVAILABLE, "application/json",
                 json_error("this instance cannot reload"));
            return;
        }
        const ReloadReport r = server_.reload_();
        std::string body = "{\"applied\":";
        body += r.outcome == ReloadReport::Outcome::applied ? "true" : "false";
        body += ",\"summary\":";
        append_json_string(body, r.summary());
        const auto list = [&](const char* name, const std::vector<std::string>& items) {
            body += ",\"";
            body += name;
            body += "\":[";
            for (std::size_t i = 0; i < items.size(); ++i) {
                if (i) body += ',';
                append_json_string(body, items[i]);
            }
            body += ']';
        };
        list("kept", r.kept);
        list("changed", r.changed);
        list("removed", r.removed);
        list("added", r.added);
        list("problems", r.problems);
        body += "}\n";
        const auto status = r.outcome == ReloadReport::Outcome::applied   ? HTTPResponse::HTTP_OK
                            : r.outcome == ReloadReport::Outcome::invalid ? HTTPResponse::HTTP_BAD_REQUEST
                            : r.outcome == ReloadReport::Outcome::busy    ? HTTPResponse::HTTP_CONFLICT
                                                                          : HTTPResponse::HTTP_SERVICE_UNAVAILABLE;
        send(response, status, "application/json", body);
    }

    // Answers 401 when the request lacks the admin token; true when it did.
    bool refused(const Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) const {
        if (authorized(request)) return false;
        response.set("WWW-Authenticate", "Bearer realm=\"hubflow admin\"");
        send(response, HTTPResponse::HTTP_UNAUTHORIZED, "application/json",
             json_error("a valid bearer token is required"));
        return true;
    }

    bool authorized(const Poco::Net::HTTPServerRequest& request) const {
        if (server_.token_.empty()) return true;
        const std::string header = request.get("Authorization", "");
        static const std::string bearer = "Bearer ";
        return header.size() > bearer.size() && header.compare(0, bearer.size(), bearer) == 0 &&
               same_secret(header.substr(bearer.size()), server_.token_);
    }

    AdminServer& server_;
};

class AdminServer::Factory final : public Poco::Net::HTTPRequestHandlerFactory {
public:
    explicit Factory(AdminServer& server) : server_(server) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
        return new Handler(server_);
    }

private:
    AdminServer& server_;
};

AdminServer::AdminServer(const AdminSpec& spec, const Runtime& runtime, LogSink& log)
    : spec_(spec), runtime_(runtime), log_(log), started_(std::chrono::system_clock::now()) {}

AdminServer::~AdminServer() {
    stop();
}

void AdminServer::start() {
    if (!spec_.token_env.empty()) {
        const char* value = std::getenv(spec_.token_env.c_str());
        if (!value || !*value)
            throw std::runtime_error("admin: the environment variable " + spec_.token_env +
                                     " named by token_env is not set or empty");
        token_ = value;
    }
    Poco::Net::ServerSocket socket;
    try {
        socket.bind(Poco::Net::SocketAddress(spec_.listen), true);
        socket.listen(64);
    } catch (const Poco::Exception& e) {
        throw std::runtime_error("admin: cannot listen on " + spec_.listen + ": " + e.displayText());
    }
    port_ = socket.address().port();
    auto* params = new Poco::Net::HTTPServerParams;
    // Each connection holds a thread while it is open; a client that never sends or never reads gives its
    // thread back after the timeout. The pipeline's threads are never involved either way.
    params->setMaxThreads(8);
    params->setMaxQueued(64);
    params->setKeepAlive(true);
    params->setKeepAliveTimeout(Poco::Timespan(5, 0));
    params->setTimeout(Poco::Timespan(5, 0));
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), socket, params);
    server_->start();
    log_.write(LogLevel::info, "",
               "admin server listening on " + socket.address().host().toString() + ":" + std::to_string(port_) +
                   (token_.empty() ? "" : " (bearer token required)"));
}

void AdminServer::stop() {
    if (!server_) return;
    // Open taps must detach from the runtime's nodes before the runtime goes. One that waits for events notices
    // `stopping_` within 200 ms and sends its closing line; one stuck writing to a client that does not read
    // fails its write once stopAll() shuts the connections down. Poco does not join its handler threads.
    stopping_ = true;
    auto wait_for_taps = [&](std::chrono::milliseconds most) {
        const auto deadline = std::chrono::steady_clock::now() + most;
        while (open_taps_.load() > 0 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
    };
    wait_for_taps(std::chrono::milliseconds(1000));
    server_->stopAll(true);
    wait_for_taps(std::chrono::milliseconds(3000));
    server_.reset();
}

}  // namespace hubflow::core
