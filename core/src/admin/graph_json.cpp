#include "admin/graph_json.h"

#include "hubflow/json.h"

namespace hubflow::core {

namespace {

const char* phase_name(RuntimeStatus::Phase p) {
    switch (p) {
        case RuntimeStatus::Phase::starting:
            return "starting";
        case RuntimeStatus::Phase::running:
            return "running";
        case RuntimeStatus::Phase::draining:
            return "draining";
        case RuntimeStatus::Phase::finished:
            return "finished";
    }
    return "unknown";
}

// Why a node is not healthy; empty when it is.
std::string trouble(const RuntimeStatus::Node& n, std::chrono::steady_clock::time_point now,
                    std::chrono::milliseconds stall_after) {
    if (n.failed) return "failed";
    if (n.kind != ComponentKind::source && n.queued_events > 0 && !n.finished) {
        const auto since = n.last_progress == std::chrono::steady_clock::time_point{} ? stall_after + stall_after
                                                                                      : now - n.last_progress;
        if (since >= stall_after)
            return "stalled: " + std::to_string(n.queued_events) + " events waiting and nothing handled for " +
                   std::to_string(
                       std::chrono::duration_cast<std::chrono::seconds>(
                           std::min<std::chrono::steady_clock::duration>(since, std::chrono::hours(24 * 365)))
                           .count()) +
                   " s";
    }
    return "";
}

void key(std::string& out, std::string_view k) {
    append_json_string(out, k);
    out += ':';
}

}  // namespace

std::string render_graph(const RuntimeStatus& status, std::chrono::steady_clock::time_point now,
                         std::chrono::milliseconds stall_after) {
    std::string out = "{";
    key(out, "phase");
    append_json_string(out, phase_name(status.phase));
    out += ',';
    key(out, "nodes");
    out += '[';
    for (std::size_t i = 0; i < status.nodes.size(); ++i) {
        const auto& n = status.nodes[i];
        if (i) out += ',';
        out += '{';
        key(out, "name");
        append_json_string(out, n.name);
        out += ',';
        key(out, "kind");
        append_json_string(out, kind_name(n.kind));
        out += ',';
        key(out, "type");
        append_json_string(out, n.type);
        out += ',';
        key(out, "inputs");
        out += '[';
        for (std::size_t j = 0; j < n.inputs.size(); ++j) {
            if (j) out += ',';
            append_json_string(out, n.inputs[j]);
        }
        out += "],";
        if (!n.buffer_type.empty()) {
            key(out, "buffer");
            out += '{';
            key(out, "type");
            append_json_string(out, n.buffer_type);
            out += ",\"events\":" + std::to_string(n.queued_events) +
                   ",\"capacity\":" + std::to_string(n.queue_capacity) + ",\"fill\":";
            const double fill =
                n.queue_capacity ? static_cast<double>(n.queued_events) / static_cast<double>(n.queue_capacity) : 0.0;
            out += std::to_string(std::min(fill, 1.0));
            out += "},";
        }
        const NodeMetrics::Account& a = n.account;
        if (n.kind != ComponentKind::source)
            out += "\"received\":" + std::to_string(a.received) + ",\"finished\":" + std::to_string(a.finished) +
                   ",\"in_flight\":" + std::to_string(a.in_flight) + ',';
        out += "\"emitted\":" + std::to_string(n.emitted);
        out += ",\"sent\":{";
        bool first = true;
        for (const auto& [output, count] : n.sent) {
            if (!first) out += ',';
            first = false;
            key(out, output);
            out += std::to_string(count);
        }
        out += "},\"discarded\":" + std::to_string(a.discarded());
        out += ",\"discarded_by_reason\":{\"filtered\":" + std::to_string(a.filtered) +
               ",\"queue_full\":" + std::to_string(a.queue_full) + ",\"node_failed\":" + std::to_string(a.node_failed) +
               ",\"refused\":" + std::to_string(a.refused) + '}';
        out += ",\"errors\":" + std::to_string(n.errors);
        out += ",\"failed\":";
        out += n.failed ? "true" : "false";
        out += ',';
        key(out, "state");
        const std::string why = trouble(n, now, stall_after);
        append_json_string(out, n.finished ? "finished" : why.empty() ? "ok" : why);
        out += '}';
    }
    out += "],";
    key(out, "edges");
    out += '[';
    for (std::size_t i = 0; i < status.edges.size(); ++i) {
        const auto& e = status.edges[i];
        if (i) out += ',';
        out += '{';
        key(out, "from");
        append_json_string(out, e.from);
        out += ',';
        key(out, "output");
        append_json_string(out, e.output);
        out += ',';
        key(out, "to");
        append_json_string(out, e.to);
        out += ",\"events\":" + std::to_string(e.events) + '}';
    }
    out += "]}";
    return out;
}

Readiness evaluate_readiness(const RuntimeStatus& status, std::chrono::steady_clock::time_point now,
                             std::chrono::milliseconds stall_after) {
    Readiness r;
    r.ready = status.phase == RuntimeStatus::Phase::running;
    std::string nodes;
    for (const auto& n : status.nodes) {
        const std::string why = trouble(n, now, stall_after);
        if (!why.empty()) r.ready = false;
        if (!nodes.empty()) nodes += ',';
        nodes += '{';
        key(nodes, "name");
        append_json_string(nodes, n.name);
        nodes += ",\"ok\":";
        nodes += why.empty() ? "true" : "false";
        if (!why.empty()) {
            nodes += ',';
            key(nodes, "reason");
            append_json_string(nodes, why);
        }
        nodes += '}';
    }
    r.json = std::string("{\"ready\":") + (r.ready ? "true" : "false") + ",\"phase\":";
    append_json_string(r.json, phase_name(status.phase));
    r.json += ",\"nodes\":[" + nodes + "]}";
    return r;
}

}  // namespace hubflow::core
