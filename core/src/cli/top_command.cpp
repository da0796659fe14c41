// `hubflow top`: a terminal view of a running instance, read from its admin server's /api/v1/graph. Rates are
// the difference between two reads a second apart, so even --once reads twice.

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/URI.h>
#include <Poco/Util/Application.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <sstream>

#include "cli/commands.h"
#include "hubflow/json_parse.h"

namespace hubflow::core {

namespace {

using App = Poco::Util::Application;

struct TopError : std::runtime_error {
    TopError(const std::string& what, int code) : std::runtime_error(what), code(code) {}
    int code;
};

struct NodeRow {
    std::string name, kind, type, state, queue;
    double fill = -1;  // memory buffer fill, -1 when there is none
    std::uint64_t received = 0, sent = 0, errors = 0, discarded = 0;
    std::int64_t in_flight = 0;  // received and neither finished nor discarded yet
};

struct Snapshot {
    std::string phase;
    std::vector<NodeRow> nodes;
    std::chrono::steady_clock::time_point at;
};

std::uint64_t count(const Value* v) {
    return v && v->is_number() ? static_cast<std::uint64_t>(v->as_double()) : 0;
}

std::string text(const Value* v) {
    return v && v->is_string() ? v->as_string() : "";
}

Snapshot read_graph(const Poco::URI& base, const std::string& token) {
    const std::string where = base.toString();
    std::string body;
    int status = 0;
    try {
        Poco::Net::HTTPClientSession session(base.getHost(), base.getPort());
        session.setTimeout(Poco::Timespan(5, 0));
        std::string path = base.getPath();
        while (!path.empty() && path.back() == '/')
            path.pop_back();
        Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, path + "/api/v1/graph",
                                       Poco::Net::HTTPMessage::HTTP_1_1);
        if (!token.empty()) request.set("Authorization", "Bearer " + token);
        session.sendRequest(request);
        Poco::Net::HTTPResponse response;
        std::istream& in = session.receiveResponse(response);
        std::ostringstream out;
        out << in.rdbuf();
        body = out.str();
        status = response.getStatus();
    } catch (const Poco::Net::ConnectionRefusedException&) {
        throw TopError("nothing listens at " + where +
                           " (connection refused); is hubflow running with \"admin\": {\"listen\": ...} in its "
                           "pipeline file? (--admin URL names another address)",
                       App::EXIT_UNAVAILABLE);
    } catch (const Poco::Exception& e) {
        throw TopError("cannot read " + where + "/api/v1/graph: " + e.displayText(), App::EXIT_UNAVAILABLE);
    }
    if (status == 401)
        throw TopError(where + " wants the admin token: pass --token-env VAR naming the variable that holds it" +
                           (token.empty() ? "" : " (the token given was refused)"),
                       App::EXIT_NOPERM);
    if (status != 200)
        throw TopError(where + "/api/v1/graph answered HTTP " + std::to_string(status) + ": " + body,
                       App::EXIT_UNAVAILABLE);
    Value doc;
    try {
        doc = parse_json(body);
    } catch (const std::exception& e) {
        throw TopError(where + "/api/v1/graph did not answer JSON (" + e.what() + "); is that a hubflow admin server?",
                       App::EXIT_PROTOCOL);
    }
    Snapshot s;
    s.at = std::chrono::steady_clock::now();
    s.phase = text(doc.find("phase"));
    const Value* nodes = doc.find("nodes");
    if (!nodes || !nodes->is_array())
        throw TopError(where + "/api/v1/graph has no \"nodes\" list; is that a hubflow admin server?",
                       App::EXIT_PROTOCOL);
    for (const Value& n : nodes->as_array()) {
        NodeRow row;
        row.name = text(n.find("name"));
        row.kind = text(n.find("kind"));
        row.type = text(n.find("type"));
        row.state = text(n.find("state"));
        row.received = count(n.find("received"));
        row.errors = count(n.find("errors"));
        row.discarded = count(n.find("discarded"));
        if (const Value* f = n.find("in_flight"); f && f->is_number())
            row.in_flight = static_cast<std::int64_t>(f->as_double());
        if (const Value* sent = n.find("sent"); sent && sent->is_object())
            for (const auto& [output, v] : sent->as_object())
                row.sent += count(&v);
        if (const Value* b = n.find("buffer"); b && b->is_object()) {
            const std::uint64_t events = count(b->find("events"));
            if (text(b->find("type")) == "disk") {
                row.queue = "disk " + std::to_string(events);
            } else {
                row.fill = b->find("fill") && b->find("fill")->is_number() ? b->find("fill")->as_double() : 0;
                row.queue = std::to_string(events) + "/" + std::to_string(count(b->find("capacity")));
            }
        }
        s.nodes.push_back(std::move(row));
    }
    return s;
}

std::string human(double v) {
    char buf[32];
    if (v >= 1e9)
        std::snprintf(buf, sizeof buf, "%.1fG", v / 1e9);
    else if (v >= 1e6)
        std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
    else if (v >= 1e4)
        std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
    else
        std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
}

std::string pad(const std::string& s, std::size_t width, bool right = false) {
    if (s.size() >= width) return s + " ";
    const std::string space(width - s.size(), ' ');
    return (right ? space + s : s + space) + " ";
}

// One table. `colour` adds ANSI colours to the queue fill (green, yellow, red) and to failed or stalled nodes.
std::string render(const Snapshot& now, const Snapshot* before, const std::string& where, bool colour) {
    std::map<std::string, const NodeRow*> previous;
    if (before)
        for (const auto& n : before->nodes)
            previous[n.name] = &n;
    const double dt = before ? std::chrono::duration<double>(now.at - before->at).count() : 0;
    std::size_t name_w = 4, type_w = 4;
    for (const auto& n : now.nodes) {
        name_w = std::max(name_w, n.name.size());
        type_w = std::max(type_w, n.type.size());
    }
    std::ostringstream out;
    out << "hubflow top - " << where << " - phase " << now.phase << " - " << now.nodes.size() << " nodes\n\n";
    out << pad("NODE", name_w) << pad("KIND", 6) << pad("TYPE", type_w) << pad("IN/s", 8, true) << pad("OUT/s", 8, true)
        << pad("RECEIVED", 10, true) << pad("SENT", 10, true) << pad("INFLIGHT", 8, true) << pad("QUEUE", 14, true)
        << pad("FILL", 5, true) << pad("ERRORS", 7, true) << pad("DISCARDED", 9, true) << "STATE\n";
    for (const auto& n : now.nodes) {
        std::string in = "-", outr = "-";
        if (auto it = previous.find(n.name); it != previous.end() && dt > 0) {
            in = human(static_cast<double>(n.received - std::min(n.received, it->second->received)) / dt);
            outr = human(static_cast<double>(n.sent - std::min(n.sent, it->second->sent)) / dt);
        }
        if (n.kind == "source") in = "";
        std::string fill = n.fill < 0 ? "" : std::to_string(std::lround(n.fill * 100)) + "%";
        const char* fill_colour = n.fill >= 0.8 ? "\x1b[31m" : n.fill >= 0.5 ? "\x1b[33m" : "\x1b[32m";
        out << pad(n.name, name_w) << pad(n.kind, 6) << pad(n.type, type_w) << pad(in, 8, true) << pad(outr, 8, true)
            << pad(n.kind == "source" ? "" : human(static_cast<double>(n.received)), 10, true)
            << pad(human(static_cast<double>(n.sent)), 10, true)
            << pad(n.kind == "source" ? "" : std::to_string(n.in_flight), 8, true) << pad(n.queue, 14, true);
        if (colour && n.fill >= 0)
            out << fill_colour << pad(fill, 5, true) << "\x1b[0m";
        else
            out << pad(fill, 5, true);
        out << pad(std::to_string(n.errors), 7, true) << pad(std::to_string(n.discarded), 9, true);
        const bool trouble = n.state != "ok" && n.state != "finished";
        out << (colour && trouble ? "\x1b[31m" + n.state + "\x1b[0m" : n.state) << "\n";
    }
    return out.str();
}

// Waits up to a second for SIGINT or SIGTERM (blocked in every thread, see main); true when one came.
bool interrupted_within_a_second() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    timespec wait{1, 0};
    return sigtimedwait(&set, nullptr, &wait) > 0;
}

}  // namespace

int command_top(const CliOptions& options) {
    const std::string url = options.top_admin.empty() ? "http://127.0.0.1:9610" : options.top_admin;
    Poco::URI base;
    try {
        base = Poco::URI(url.find("://") == std::string::npos ? "http://" + url : url);
    } catch (const Poco::Exception& e) {
        std::cerr << "hubflow top: --admin '" << url << "' is not a URL: " << e.displayText() << "\n";
        return App::EXIT_USAGE;
    }
    if (base.getScheme() != "http" || base.getHost().empty()) {
        std::cerr << "hubflow top: --admin '" << url << "' must be http://HOST:PORT (the admin server speaks plain "
                  << "HTTP on loopback; put TLS in front for remote access)\n";
        return App::EXIT_USAGE;
    }
    std::string token;
    if (!options.top_token_env.empty()) {
        const char* value = std::getenv(options.top_token_env.c_str());
        if (!value || !*value) {
            std::cerr << "hubflow top: the environment variable " << options.top_token_env
                      << " named by --token-env is not set or empty\n";
            return App::EXIT_USAGE;
        }
        token = value;
    }
    std::string where = base.getScheme() + "://" + base.getHost() + ":" + std::to_string(base.getPort()) +
                        (base.getPath() == "/" ? "" : base.getPath());
    try {
        Snapshot before = read_graph(base, token);
        if (options.top_once) {
            if (interrupted_within_a_second()) return App::EXIT_OK;
            const Snapshot now = read_graph(base, token);
            std::cout << render(now, &before, where, false);
            return App::EXIT_OK;
        }
        // The alternate screen keeps the user's scrollback as it was; each frame redraws from the top.
        std::cout << "\x1b[?1049h\x1b[?25l" << render(before, nullptr, where, true) << std::flush;
        int code = App::EXIT_OK;
        while (!interrupted_within_a_second()) {
            try {
                const Snapshot now = read_graph(base, token);
                std::cout << "\x1b[H\x1b[2J" << render(now, &before, where, true) << std::flush;
                before = now;
            } catch (const TopError& e) {
                std::cout << "\x1b[?25h\x1b[?1049l" << std::flush;
                std::cerr << "hubflow top: " << e.what() << "\n";
                code = e.code;
                return code;
            }
        }
        std::cout << "\x1b[?25h\x1b[?1049l" << std::flush;
        return code;
    } catch (const TopError& e) {
        std::cerr << "hubflow top: " << e.what() << "\n";
        return e.code;
    }
}

}  // namespace hubflow::core
