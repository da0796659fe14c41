#include "admin/tap_stream.h"

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/URI.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <optional>

#include "hubflow/json.h"
#include "hubflow/json_parse.h"

namespace hubflow::core {

namespace {

void field(std::string& out, std::string_view key, std::string_view value) {
    out += ',';
    append_json_string(out, key);
    out += ':';
    append_json_string(out, value);
}

bool is_json(std::string_view text) {
    try {
        parse_json(text);
        return true;
    } catch (const std::exception&) {
        return false;
    }
}

}  // namespace

void append_tap_line(std::string& out, std::string_view node, std::string_view output, const Event& event) {
    out += "{\"node\":";
    append_json_string(out, node);
    field(out, "output", output);
    const Metadata& m = event.meta;
    for (auto [key, value] : {std::pair<std::string_view, const std::string*>{"kind", &m.kind},
                              {"site_id", &m.site_id},
                              {"user_id", &m.user_id},
                              {"id", &m.id},
                              {"source", &m.source}})
        if (!value->empty()) field(out, key, *value);
    if (m.received_at.time_since_epoch().count() != 0) field(out, "received_at", format_utc(m.received_at));
    if (is_json(event.payload)) {
        out += ",\"payload\":";
        // Raw line breaks can only be whitespace between tokens in valid JSON (inside a string they are
        // invalid), so turning them into spaces keeps the value and the one-object-per-line framing.
        const std::size_t at = out.size();
        out += event.payload;
        for (std::size_t i = at; i < out.size(); ++i)
            if (out[i] == '\n' || out[i] == '\r') out[i] = ' ';
    } else {
        field(out, "payload_text", event.payload);
    }
    out += "}\n";
}

std::string tap_end_line(const TapSummary& s) {
    std::string out = "{\"end\":true,\"reason\":";
    append_json_string(out, s.reason);
    out += ",\"events\":" + std::to_string(s.events) + ",\"dropped\":" + std::to_string(s.dropped) +
           ",\"skipped\":" + std::to_string(s.skipped) + "}\n";
    return out;
}

namespace {

using Poco::Net::HTTPResponse;

void answer(Poco::Net::HTTPServerResponse& response, HTTPResponse::HTTPStatus status, std::string_view message) {
    std::string body = "{\"error\":";
    append_json_string(body, message);
    body += "}\n";
    response.setStatus(status);
    response.setContentType("application/json");
    response.set("Cache-Control", "no-store");
    response.setContentLength(static_cast<std::streamsize>(body.size()));
    response.send() << body;
}

// A whole number in [min, max], or nullopt.
std::optional<std::uint64_t> bounded(const std::string& text, std::uint64_t min, std::uint64_t max) {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v < min || v > max) return std::nullopt;
    return v;
}

// True once the client closed its side: a peek that reads end-of-stream. Only a write would notice otherwise,
// and a tap on a quiet node writes nothing for a long time.
bool client_gone(Poco::Net::HTTPServerRequest& request) {
    auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&request);
    if (!impl) return false;
    char c;
    const auto n = ::recv(impl->socket().impl()->sockfd(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

}  // namespace

void serve_tap(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response, TapServer& server) {
    if (request.getMethod() != "GET") {
        response.set("Allow", "GET");
        return answer(response, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "/api/v1/tap answers GET only");
    }
    if (!server.spec.tap) {
        answer(response, HTTPResponse::HTTP_FORBIDDEN,
               "the tap is off: events hold personal data, so it needs \"admin\": {\"tap\": true} in the pipeline "
               "file");
        return;
    }
    std::string node;
    std::uint64_t limit = 100, rate = 100;
    for (const auto& [key, value] : Poco::URI(request.getURI()).getQueryParameters()) {
        if (key == "node") {
            node = value;
        } else if (key == "limit") {
            auto v = bounded(value, 1, 10000);
            if (!v)
                return answer(response, HTTPResponse::HTTP_BAD_REQUEST, "limit must be a whole number from 1 to 10000");
            limit = *v;
        } else if (key == "rate") {
            auto v = bounded(value, 1, 1000);
            if (!v)
                return answer(response, HTTPResponse::HTTP_BAD_REQUEST, "rate must be a whole number from 1 to 1000");
            rate = *v;
        } else {
            return answer(response, HTTPResponse::HTTP_BAD_REQUEST,
                          "unknown parameter '" + key + "'; the tap takes node, limit and rate");
        }
    }
    std::string known;
    for (const auto& n : server.runtime.node_names())
        known += (known.empty() ? "" : ", ") + n;
    if (node.empty())
        return answer(response, HTTPResponse::HTTP_BAD_REQUEST, "name the node to tap: ?node=NAME; nodes: " + known);
    TapPoint* point = server.runtime.tap(node);
    if (!point)
        return answer(response, HTTPResponse::HTTP_NOT_FOUND, "no node '" + node + "'; the nodes are: " + known);
    int open = server.open.load();
    do {
        if (open >= server.max_taps)
            return answer(response, HTTPResponse::HTTP_TOO_MANY_REQUESTS,
                          std::to_string(server.max_taps) + " taps are open already; close one first");
    } while (!server.open.compare_exchange_weak(open, open + 1));

    auto reader = std::make_shared<TapSubscription>(limit, static_cast<std::uint32_t>(rate),
                                                    static_cast<std::uint32_t>(std::min<std::uint64_t>(limit, 1000)));
    point->attach(reader);
    struct Leave {
        TapPoint* point;
        const TapSubscription* reader;
        std::atomic<int>& open;
        ~Leave() {
            point->detach(reader);
            open.fetch_sub(1);
        }
    } leave{point, reader.get(), server.open};

    response.setStatus(HTTPResponse::HTTP_OK);
    response.setContentType("application/x-ndjson");
    response.set("Cache-Control", "no-store");
    response.set("X-Content-Type-Options", "nosniff");
    response.setChunkedTransferEncoding(true);
    response.setKeepAlive(false);
    std::ostream& out = response.send();
    out.flush();  // the status line now, so curl shows the stream has begun before the first event
    TapSummary summary;
    std::string lines;
    try {
        for (;;) {
            // Read the state first, so that what was queued before the graph finished (or the server began to
            // stop) is still taken, without waiting, and sent below.
            const bool finished = server.runtime.phase() == RuntimeStatus::Phase::finished;
            const bool stopping = server.stopping.load();
            lines.clear();
            for (const TapItem& item : reader->take(std::chrono::milliseconds(finished || stopping ? 0 : 200)))
                for (const Event& event : item.events) {
                    append_tap_line(lines, node, item.output, event);
                    ++summary.events;
                }
            if (!lines.empty()) {
                out << lines;
                out.flush();
                if (!out.good()) return;  // the client went away; nobody to tell
            }
            if (summary.events >= limit) {
                summary.reason = "limit";
                break;
            }
            if (finished || stopping) {
                // The server stops after the graph finished, or alone (the program is leaving early).
                summary.reason =
                    finished || server.runtime.phase() == RuntimeStatus::Phase::finished ? "finished" : "stopping";
                break;
            }
            if (client_gone(request)) return;
        }
        summary.dropped = reader->dropped();
        summary.skipped = reader->skipped();
        out << tap_end_line(summary);
        out.flush();
    } catch (const std::exception&) {
        // A write to a client that went away: the stream just ends.
    }
}

}  // namespace hubflow::core
