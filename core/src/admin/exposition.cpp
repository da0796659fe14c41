#include "admin/exposition.h"

#include <cstdio>
#include <map>
#include <vector>

#include "hubflow/version.h"

namespace hubflow::core {

namespace {

std::string escape_label(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string escape_help(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

// Metric names allow [a-zA-Z0-9_:]; a component's own names are lowercase with underscores by the SDK's rule,
// this only guards against one that is not.
std::string metric_name(std::string_view v) {
    std::string out(v);
    for (char& c : out)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) c = '_';
    return out;
}

std::string number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

using Labels = std::vector<std::pair<std::string, std::string>>;

class Writer {
public:
    explicit Writer(ExpositionFormat f) : format_(f) {}

    // type: counter, gauge, histogram, info. For a counter `family` is the name without _total.
    void sample(const std::string& family, const char* type, const std::string& help, const std::string& suffix,
                const Labels& labels, const std::string& value) {
        auto [it, fresh] = index_.emplace(family, families_.size());
        if (fresh) families_.push_back({family, type, help, {}});
        std::string line = family + suffix;
        if (!labels.empty()) {
            line += '{';
            for (std::size_t i = 0; i < labels.size(); ++i) {
                if (i) line += ',';
                line += labels[i].first + "=\"" + escape_label(labels[i].second) + '"';
            }
            line += '}';
        }
        line += ' ' + value;
        families_[it->second].lines.push_back(std::move(line));
    }
    void counter(const std::string& family, const std::string& help, const Labels& labels, std::uint64_t v) {
        sample(family, "counter", help, "_total", labels, std::to_string(v));
    }
    void gauge(const std::string& family, const std::string& help, const Labels& labels, double v) {
        sample(family, "gauge", help, "", labels, number(v));
    }

    std::string text() const {
        std::string out;
        const bool om = format_ == ExpositionFormat::openmetrics;
        for (const auto& f : families_) {
            std::string type = f.type;
            std::string name = f.name;
            // Prometheus 0.0.4 names the family by its sample name; OpenMetrics by the name without suffix.
            if (!om && type == "counter") name += "_total";
            if (!om && type == "info") {
                name += "_info";
                type = "gauge";
            }
            out.append("# HELP ").append(name).append(1, ' ').append(escape_help(f.help)).append(1, '\n');
            out.append("# TYPE ").append(name).append(1, ' ').append(type).append(1, '\n');
            for (const auto& l : f.lines) {
                out += l;
                out += '\n';
            }
        }
        if (om) out += "# EOF\n";
        return out;
    }

private:
    struct Family {
        std::string name, type, help;
        std::vector<std::string> lines;
    };
    ExpositionFormat format_;
    std::vector<Family> families_;
    std::map<std::string, std::size_t> index_;
};

}  // namespace

ExpositionFormat negotiate_exposition(std::string_view accept) {
    return accept.find("application/openmetrics-text") != std::string_view::npos ? ExpositionFormat::openmetrics
                                                                                 : ExpositionFormat::prometheus_text;
}

std::string_view content_type(ExpositionFormat format) {
    return format == ExpositionFormat::openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                                   : "text/plain; version=0.0.4; charset=utf-8";
}

std::string render_metrics(const RuntimeStatus& status, const ProcessStats& process, ExpositionFormat format) {
    Writer w(format);
    for (const auto& n : status.nodes) {
        const Labels id = {{"component_id", n.name}, {"component_kind", kind_name(n.kind)}, {"component_type", n.type}};
        auto with = [&](std::string key, std::string value) {
            Labels l = id;
            l.emplace_back(std::move(key), std::move(value));
            return l;
        };
        // The account of a filter or sink (NodeMetrics): received = finished + discarded + in flight, in one
        // reading, so the equation holds in every scrape.
        const NodeMetrics::Account& a = n.account;
        const bool consumer = n.kind != ComponentKind::source;
        if (consumer) {
            w.counter("hubflow_component_received_events",
                      "events that reached a component: taken from its input, or dropped by the input instead", id,
                      a.received);
            w.counter("hubflow_component_finished_events",
                      "events a component is done with: carried on by a filter (once, however many outputs), "
                      "delivered by a sink",
                      id, a.finished);
        }
        for (const auto& [output, sent] : n.sent)
            w.counter(
                "hubflow_component_sent_events",
                "events a component emitted on an output, or a sink took without error (output \"\" is the default)",
                with("output", output), sent);
        // Vector's `intentional` label too: what configuration asked for (a filter's drop, drop_newest) against
        // what went wrong.
        const auto discarded = [&](const char* reason, bool intentional, std::uint64_t v) {
            Labels l = with("reason", reason);
            l.emplace_back("intentional", intentional ? "true" : "false");
            w.counter("hubflow_component_discarded_events",
                      "events a component or its input discarded: filtered (a filter dropped them on purpose), "
                      "queue_full (a full input under when_full drop_newest), node_failed (the node failed or threw "
                      "holding them, or a sink lost them), refused (a sink refused them for good)",
                      l, v);
        };
        if (consumer) {
            discarded("filtered", true, a.filtered);
            discarded("queue_full", true, a.queue_full);
        }
        discarded("node_failed", false, a.node_failed);
        if (consumer) {
            discarded("refused", false, a.refused);
            w.gauge("hubflow_component_in_flight_events",
                    "events a component received and has neither finished nor discarded yet", id,
                    static_cast<double>(a.in_flight));
        }
        w.counter("hubflow_component_errors", "errors a component reported or threw", id, n.errors);
        if (n.kind != ComponentKind::source) {
            const std::string hist = "hubflow_component_processing_seconds";
            const std::string help = "time a component spent in process() or write() per batch";
            for (std::size_t i = 0; i < ProcessingTime::bounds.size(); ++i)
                w.sample(hist, "histogram", help, "_bucket", with("le", number(ProcessingTime::bounds[i])),
                         std::to_string(n.processing.cumulative[i]));
            w.sample(hist, "histogram", help, "_bucket", with("le", "+Inf"), std::to_string(n.processing.count));
            w.sample(hist, "histogram", help, "_sum", id, number(n.processing.sum_seconds));
            w.sample(hist, "histogram", help, "_count", id, std::to_string(n.processing.count));
            w.gauge("hubflow_buffer_events", "events waiting in a component's input buffer",
                    with("buffer_type", n.buffer_type), static_cast<double>(n.queued_events));
            if (n.queue_capacity)
                w.gauge("hubflow_buffer_max_events", "capacity of a memory input buffer, in events", id,
                        static_cast<double>(n.queue_capacity));
        }
        w.gauge("hubflow_component_failed", "1 when the component has failed and stopped", id, n.failed ? 1 : 0);
        w.counter("hubflow_tap_dropped_events", "samples of a component's output a tap reader could not take in time",
                  id, n.tap_dropped);
        for (const auto& s : n.component) {
            const bool buffer = s.name.rfind("buffer_", 0) == 0;
            std::string family = metric_name(buffer ? "hubflow_" + s.name : "hubflow_" + n.type + "_" + s.name);
            const std::string help = s.help.empty() ? s.name : s.help;
            if (s.counter) {
                if (family.size() > 6 && family.compare(family.size() - 6, 6, "_total") == 0)
                    family.resize(family.size() - 6);
                w.counter(family, help, id, static_cast<std::uint64_t>(s.value));
            } else {
                w.gauge(family, help, id, static_cast<double>(s.value));
            }
        }
    }
    for (const auto& e : status.edges)
        w.counter("hubflow_edge_events", "events pushed along an edge of the graph",
                  {{"from", e.from}, {"output", e.output}, {"to", e.to}}, e.events);

    w.gauge("hubflow_process_resident_memory_bytes", "resident set size of the host process", {},
            static_cast<double>(process.resident_bytes));
    w.sample("hubflow_process_cpu_seconds", "counter", "user and system CPU time of the host process", "_total", {},
             number(process.cpu_seconds));
    w.gauge("hubflow_process_open_fds", "open file descriptors", {}, static_cast<double>(process.open_fds));
    w.gauge("hubflow_process_max_fds", "the open file descriptor limit", {}, static_cast<double>(process.max_fds));
    w.gauge("hubflow_process_start_time_seconds", "when the host process started, since the epoch", {},
            process.start_time_seconds);
    const char* phase = status.phase == RuntimeStatus::Phase::starting   ? "starting"
                        : status.phase == RuntimeStatus::Phase::running  ? "running"
                        : status.phase == RuntimeStatus::Phase::draining ? "draining"
                                                                         : "finished";
    w.sample("hubflow_build", "info", "version of the host and of its plugin SDK", "_info",
             {{"version", HUBFLOW_VERSION_STRING},
              {"sdk", std::to_string(HUBFLOW_SDK_VERSION_MAJOR) + "." + std::to_string(HUBFLOW_SDK_VERSION_MINOR)}},
             "1");
    w.gauge("hubflow_graph_running", "1 while the graph runs (not starting, draining or finished)", {{"phase", phase}},
            status.phase == RuntimeStatus::Phase::running ? 1 : 0);
    return w.text();
}

}  // namespace hubflow::core
