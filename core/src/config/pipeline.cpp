#include "config/pipeline.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "hubflow/config.h"
#include "hubflow/json_parse.h"

namespace hubflow::core {

namespace fs = std::filesystem;

const NodeSpec* PipelineSpec::find(const std::string& name) const {
    for (const auto& n : nodes)
        if (n.name == name) return &n;
    return nullptr;
}

std::optional<Value> parse_pipeline_text(std::string_view text, const Environment& env, Diagnostics& diags) {
    Value doc;
    try {
        doc = parse_json(text);
    } catch (const JsonSyntaxError& e) {
        diags.add("", "", e.position(), std::string("malformed JSON: ") + e.what());
        return std::nullopt;
    }
    expand_environment(doc, env, diags);
    return doc;
}

std::optional<Value> read_pipeline_document(const std::string& file, const Environment& env, Diagnostics& diags) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        diags.add("", "", {}, "cannot read the file");
        return std::nullopt;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse_pipeline_text(text.str(), env, diags);
}

std::vector<std::string> plugin_paths_of(const Value& document) {
    std::vector<std::string> out;
    if (const Value* paths = document.find("plugin_paths"); paths && paths->is_array())
        for (const auto& p : paths->as_array())
            if (p.is_string()) out.push_back(p.as_string());
    return out;
}

namespace {

std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::string suggestion(const std::string& key, const std::vector<std::string>& candidates) {
    std::string best;
    std::size_t best_distance = 3;
    for (const auto& c : candidates) {
        std::size_t d = edit_distance(key, c);
        if (d < best_distance) {
            best_distance = d;
            best = c;
        }
    }
    return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
    std::string out;
    for (const auto& i : items)
        out += (out.empty() ? "" : sep) + i;
    return out;
}

bool valid_node_name(const std::string& name) {
    if (name.empty()) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; });
}

bool type_matches(const Value& v, FieldType type) {
    switch (type) {
        case FieldType::string:
            return v.is_string();
        case FieldType::integer:
            return v.is_integer();
        case FieldType::number:
            return v.is_number();
        case FieldType::boolean:
            return v.is_bool();
        case FieldType::strings:
            return v.is_array() &&
                   std::all_of(v.as_array().begin(), v.as_array().end(), [](const Value& i) { return i.is_string(); });
        case FieldType::object:
        case FieldType::map:
            return v.is_object();
        case FieldType::any:
            return true;
    }
    return false;
}

std::string describe_value(const Value& v) {
    if (v.is_number()) return v.is_integer() ? "an integer" : "a fraction";
    if (v.is_array()) return "an array";
    if (v.is_object()) return "an object";
    if (v.is_string()) return "a string";
    if (v.is_bool()) return "true/false";
    return "null";
}

std::string expected_text(FieldType t) {
    switch (t) {
        case FieldType::string:
            return "a string";
        case FieldType::integer:
            return "an integer";
        case FieldType::number:
            return "a number";
        case FieldType::boolean:
            return "true or false";
        case FieldType::strings:
            return "a list of strings";
        case FieldType::object:
        case FieldType::map:
            return "an object";
        case FieldType::any:
            return "any value";
    }
    return "?";
}

struct ClaimUse {
    Claim claim;
    std::string value;
    std::string node;
    std::string key;
    SourcePosition position;
};

// Checks `object` against `fields` and fills in defaults. Problems go to diags with the node and key path.
void check_fields(Value& object, const std::vector<ConfigField>& fields, const std::string& prefix,
                  const std::string& node, const std::vector<std::string>& extra_allowed, Diagnostics& diags,
                  std::vector<ClaimUse>& claims) {
    auto path = [&](const std::string& k) { return prefix.empty() ? k : prefix + "." + k; };
    std::vector<std::string> known = extra_allowed;
    for (const auto& f : fields)
        known.push_back(f.name);

    for (const auto& [key, value] : object.as_object()) {
        if (std::find(known.begin(), known.end(), key) != known.end()) continue;
        std::vector<std::string> names;
        for (const auto& f : fields)
            names.push_back(f.name);
        diags.add(node, path(key), value.position,
                  "unknown key" + suggestion(key, known) + (names.empty() ? "" : "; known keys: " + join(names)));
    }

    for (const auto& field : fields) {
        Value* v = object.find(field.name);
        if (v && v->is_null()) v = nullptr;
        if (!v) {
            if (!field.default_json.empty()) {
                Value def;
                try {
                    def = parse_json(field.default_json);
                } catch (const JsonSyntaxError&) {
                    diags.add(node, path(field.name), {}, "the component's schema has an invalid default");
                    continue;
                }
                def.position = object.position;
                if (Value* existing = object.find(field.name))
                    *existing = std::move(def);
                else
                    object.as_object().emplace_back(field.name, std::move(def));
            } else if (field.required) {
                diags.add(node, path(field.name), object.position,
                          "missing required key (" + expected_text(field.type) + ": " + field.doc + ")");
            }
            continue;
        }
        if (!type_matches(*v, field.type)) {
            std::string found = describe_value(*v);
            if (field.type == FieldType::strings && v->is_array()) found = "an array with a non-string item";
            diags.add(node, path(field.name), v->position,
                      "expected " + expected_text(field.type) + ", found " + found);
            continue;
        }
        if (field.type == FieldType::object) check_fields(*v, field.fields, path(field.name), node, {}, diags, claims);
        if (field.claim != Claim::none && v->is_string())
            claims.push_back({field.claim, v->as_string(), node, path(field.name), v->position});
    }
}

// Components see the validation run through this context: they may log and look at names, but must not emit.
class ValidationContext final : public Context {
public:
    ValidationContext(std::string name, fs::path data_dir) : name_(std::move(name)), data_dir_(std::move(data_dir)) {}
    const std::string& node_name() const override { return name_; }
    Logger& log() override { return logger_; }
    Metrics& metrics() override { return metrics_; }
    const Clock& clock() const override { return clock_; }
    fs::path data_dir() override { return data_dir_ / name_; }
    void emit(EventBatch&&, std::string_view) override { throw std::logic_error("emit() called during configure()"); }
    void emit(SharedBatch, std::string_view) override { throw std::logic_error("emit() called during configure()"); }
    void fail(std::string_view) override {}
    bool stopping() const override { return true; }
    bool wait_for(std::chrono::nanoseconds) override { return false; }

private:
    struct QuietLogger : Logger {
        void write(LogLevel, std::string_view) override {}
        bool enabled(LogLevel) const override { return false; }
    } logger_;
    struct Scratch : Metrics {
        Counter& counter(std::string_view, std::string_view) override { return counter_; }
        Gauge& gauge(std::string_view, std::string_view) override { return gauge_; }
        Counter counter_;
        Gauge gauge_;
    } metrics_;
    struct SystemClock : Clock {
        std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }
        std::chrono::steady_clock::time_point monotonic() const override { return std::chrono::steady_clock::now(); }
    } clock_;
    std::string name_;
    fs::path data_dir_;
};

std::string normalized_file(const std::string& path) {
    std::error_code ec;
    fs::path p = fs::absolute(path, ec);
    return (ec ? fs::path(path) : p).lexically_normal().string();
}

// host:port -> (host, port); host "" / "0.0.0.0" / "::" / "[::]" means every address.
std::pair<std::string, std::string> split_listen(const std::string& address) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) return {"", address};
    std::string host = address.substr(0, colon);
    if (host == "0.0.0.0" || host == "::" || host == "[::]" || host == "*") host.clear();
    if (host == "localhost") host = "127.0.0.1";
    return {host, address.substr(colon + 1)};
}

void check_claims(const std::vector<ClaimUse>& claims, Diagnostics& diags) {
    for (std::size_t i = 0; i < claims.size(); ++i) {
        for (std::size_t j = 0; j < i; ++j) {
            const auto& a = claims[j];
            const auto& b = claims[i];
            if (a.claim != b.claim || a.node == b.node) continue;
            bool clash = false;
            if (a.claim == Claim::file_path) {
                clash = normalized_file(a.value) == normalized_file(b.value);
            } else {
                auto [ha, pa] = split_listen(a.value);
                auto [hb, pb] = split_listen(b.value);
                clash = pa == pb && pa != "0" && (ha == hb || ha.empty() || hb.empty());
            }
            if (clash)
                diags.add(b.node, b.key, b.position,
                          std::string(b.claim == Claim::file_path ? "file" : "listen address") + " '" + b.value +
                              "' is already claimed by node '" + a.node + "' (key '" + a.key +
                              "'); two nodes cannot share it");
        }
    }
}

}  // namespace

namespace {

bool loopback_host(const std::string& host) {
    return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

void read_admin(const Value& v, AdminSpec& admin, Diagnostics& diags) {
    if (!v.is_object()) {
        diags.add("", "admin", v.position, "expected an object {listen, token_env, allow_remote, tap, stall_after_s}");
        return;
    }
    static const std::vector<std::string> keys = {"listen", "token_env", "allow_remote", "tap", "stall_after_s"};
    for (const auto& [key, value] : v.as_object()) {
        const std::string where = "admin." + key;
        if (key == "listen" && value.is_string()) {
            admin.listen = value.as_string();
            auto colon = admin.listen.rfind(':');
            bool port_ok = colon != std::string::npos && colon + 1 < admin.listen.size() &&
                           admin.listen.find_first_not_of("0123456789", colon + 1) == std::string::npos &&
                           admin.listen.size() - colon - 1 <= 5 && std::stoi(admin.listen.substr(colon + 1)) <= 65535;
            if (!port_ok) diags.add("", where, value.position, "expected HOST:PORT, such as 127.0.0.1:9610");
        } else if (key == "token_env" && value.is_string() && !value.as_string().empty()) {
            admin.token_env = value.as_string();
        } else if (key == "allow_remote" && value.is_bool()) {
            admin.allow_remote = value.as_bool();
        } else if (key == "tap" && value.is_bool()) {
            admin.tap = value.as_bool();
        } else if (key == "stall_after_s" && value.is_number() && value.as_double() > 0) {
            admin.stall_after = std::chrono::milliseconds(static_cast<std::int64_t>(value.as_double() * 1000));
        } else if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
            diags.add("", where, value.position, "unknown key; known keys: " + join(keys));
        } else {
            diags.add("", where, value.position,
                      key == "listen" || key == "token_env" ? "expected a non-empty string"
                      : key == "stall_after_s"              ? "expected a positive number of seconds"
                                                            : "expected true or false");
        }
    }
    if (admin.listen.empty()) {
        diags.add("", "admin.listen", v.position, "the admin server needs an address, such as 127.0.0.1:9610");
        return;
    }
    const std::string host = admin.listen.substr(0, admin.listen.rfind(':'));
    if (!loopback_host(host) && admin.token_env.empty() && !admin.allow_remote)
        diags.add("", "admin.listen", v.position,
                  "'" + host +
                      "' is not a loopback address: set token_env (a bearer token the admin server "
                      "requires) or allow_remote: true");
}

}  // namespace

PipelineSpec validate_pipeline(const Value& document, const ComponentRegistry& registry, Diagnostics& diags) {
    PipelineSpec spec;
    spec.file = diags.file();
    if (!document.is_object()) {
        diags.add("", "", document.position, "the pipeline file must be a JSON object with sources, filters and sinks");
        return spec;
    }

    static const std::vector<std::string> top_keys = {"sources",        "filters",      "sinks",       "data_dir",
                                                      "grace_period_s", "plugin_paths", "description", "admin"};
    for (const auto& [key, value] : document.as_object()) {
        if (std::find(top_keys.begin(), top_keys.end(), key) == top_keys.end())
            diags.add("", key, value.position,
                      "unknown top-level key" + suggestion(key, top_keys) + "; known keys: " + join(top_keys));
    }
    if (const Value* v = document.find("data_dir")) {
        if (v->is_string())
            spec.data_dir = v->as_string();
        else
            diags.add("", "data_dir", v->position, "expected a string, found " + describe_value(*v));
    }
    if (const Value* v = document.find("grace_period_s")) {
        if (v->is_number() && v->as_double() >= 0)
            spec.grace_period = std::chrono::milliseconds(static_cast<std::int64_t>(v->as_double() * 1000));
        else
            diags.add("", "grace_period_s", v->position, "expected a number of seconds (0 or more)");
    }
    if (const Value* v = document.find("plugin_paths")) {
        if (type_matches(*v, FieldType::strings))
            spec.plugin_paths = plugin_paths_of(document);
        else
            diags.add("", "plugin_paths", v->position, "expected a list of strings");
    }

    if (const Value* v = document.find("admin")) read_admin(*v, spec.admin, diags);

    std::vector<ClaimUse> claims;
    std::set<std::string> names;
    const std::pair<const char*, ComponentKind> sections[] = {
        {"sources", ComponentKind::source}, {"filters", ComponentKind::filter}, {"sinks", ComponentKind::sink}};
    for (const auto& [section, kind] : sections) {
        const Value* nodes = document.find(section);
        if (!nodes) continue;
        if (!nodes->is_object()) {
            diags.add("", section, nodes->position, "expected an object of named nodes");
            continue;
        }
        for (const auto& [name, node] : nodes->as_object()) {
            if (!valid_node_name(name)) {
                diags.add(name, "", node.position,
                          "node names may use only letters, digits, '_' and '-' ('.' selects a routed output)");
                continue;
            }
            if (!names.insert(name).second) {
                diags.add(name, "", node.position, "another node already has this name");
                continue;
            }
            if (!node.is_object()) {
                diags.add(name, "", node.position, "expected an object with at least a \"type\"");
                continue;
            }
            NodeSpec n;
            n.name = name;
            n.kind = kind;
            n.position = node.position;
            n.config = Value(Value::Object{});
            n.config.position = node.position;
            for (const auto& [key, value] : node.as_object())
                if (key != "type" && key != "inputs" && key != "buffer") n.config.as_object().emplace_back(key, value);

            const Value* type = node.find("type");
            if (!type) {
                diags.add(name, "type", node.position, "missing required key (the component type)");
            } else if (!type->is_string()) {
                diags.add(name, "type", type->position, "expected a string, found " + describe_value(*type));
            } else {
                n.type = type->as_string();
            }

            const Value* inputs = node.find("inputs");
            if (kind == ComponentKind::source) {
                if (inputs) diags.add(name, "inputs", inputs->position, "a source has no inputs");
            } else if (!inputs) {
                diags.add(name, "inputs", node.position,
                          std::string("missing required key: a ") + kind_name(kind) + " needs at least one input");
            } else if (!type_matches(*inputs, FieldType::strings)) {
                diags.add(name, "inputs", inputs->position, "expected a list of node names");
            } else if (inputs->as_array().empty()) {
                diags.add(name, "inputs", inputs->position,
                          std::string("a ") + kind_name(kind) + " needs at least one input");
            } else {
                for (const auto& in : inputs->as_array()) {
                    const std::string& text = in.as_string();
                    auto dot = text.find('.');
                    InputRef ref{text.substr(0, dot), dot == std::string::npos ? "" : text.substr(dot + 1),
                                 in.position};
                    n.inputs.push_back(ref);
                }
            }

            if (const Value* buffer = node.find("buffer")) {
                if (kind == ComponentKind::source) {
                    diags.add(name, "buffer", buffer->position, "a source has no input buffer");
                } else if (!buffer->is_object()) {
                    diags.add(name, "buffer", buffer->position,
                              "expected an object {type, max_events, when_full, max_bytes, fsync}");
                } else {
                    const auto positive = [&](const std::string& key, const Value& value, std::int64_t max, auto& out) {
                        if (value.is_integer() && value.as_int() > 0 && value.as_int() <= max)
                            out = static_cast<std::remove_reference_t<decltype(out)>>(value.as_int());
                        else
                            diags.add(name, "buffer." + key, value.position,
                                      "expected an integer from 1 to " + std::to_string(max));
                    };
                    bool disk_only_key = false;
                    for (const auto& [key, value] : buffer->as_object()) {
                        if (key == "type") {
                            if (value.is_string() && value.as_string() == "memory")
                                n.buffer.type = BufferType::memory;
                            else if (value.is_string() && value.as_string() == "disk")
                                n.buffer.type = BufferType::disk;
                            else
                                diags.add(name, "buffer.type", value.position, "must be \"memory\" or \"disk\"");
                        } else if (key == "max_events") {
                            positive(key, value, std::int64_t{1} << 40, n.buffer_max_events);
                        } else if (key == "max_bytes") {
                            disk_only_key = true;
                            positive(key, value, std::int64_t{1} << 50, n.buffer.max_bytes);
                            if (n.buffer.max_bytes < BufferSpec::min_max_bytes)
                                diags.add(name, "buffer.max_bytes", value.position,
                                          "must be at least " + std::to_string(BufferSpec::min_max_bytes) + " (1 MiB)");
                        } else if (key == "fsync") {
                            disk_only_key = true;
                            if (value.is_string() && value.as_string() == "batch")
                                n.buffer.fsync_interval = std::chrono::milliseconds(0);
                            else if (value.is_string() && value.as_string() == "interval")
                                n.buffer.fsync_interval = std::chrono::milliseconds(
                                    n.buffer.fsync_interval.count() ? n.buffer.fsync_interval.count() : 1000);
                            else
                                diags.add(name, "buffer.fsync", value.position, "must be \"batch\" or \"interval\"");
                        } else if (key == "fsync_interval_ms") {
                            disk_only_key = true;
                            std::int64_t ms = 0;
                            positive(key, value, 3'600'000, ms);
                            n.buffer.interval_ms_set = ms;
                        } else if (key == "when_full") {
                            if (value.is_string() && value.as_string() == "block")
                                n.when_full = WhenFull::block;
                            else if (value.is_string() && value.as_string() == "drop_newest")
                                n.when_full = WhenFull::drop_newest;
                            else
                                diags.add(name, "buffer.when_full", value.position,
                                          "must be \"block\" or \"drop_newest\"");
                        } else {
                            diags.add(name, "buffer." + key, value.position,
                                      "unknown key; known keys: type, max_events, when_full, max_bytes, fsync, "
                                      "fsync_interval_ms");
                        }
                    }
                    if (n.buffer.interval_ms_set) {
                        if (n.buffer.fsync_interval.count() == 0)
                            diags.add(name, "buffer.fsync_interval_ms", buffer->position,
                                      "only with \"fsync\": \"interval\"");
                        else
                            n.buffer.fsync_interval = std::chrono::milliseconds(n.buffer.interval_ms_set);
                    }
                    if (disk_only_key && n.buffer.type != BufferType::disk)
                        diags.add(name, "buffer", buffer->position,
                                  "max_bytes, fsync and fsync_interval_ms are settings of \"type\": \"disk\"");
                }
            }

            if (!n.type.empty()) {
                const ComponentEntry* entry = registry.find(n.type);
                if (!entry) {
                    diags.add(name, "type", type->position,
                              "unknown component type '" + n.type + "'" + suggestion(n.type, registry.types()) +
                                  "; known types: " + join(registry.types()));
                    n.type.clear();
                } else if (entry->description.kind != kind) {
                    diags.add(name, "type", type->position,
                              "'" + n.type + "' is a " + kind_name(entry->description.kind) + ", but this node is in " +
                                  section);
                    n.type.clear();
                } else {
                    std::size_t before = diags.items().size();
                    check_fields(n.config, entry->description.fields, "", name, {}, diags, claims);
                    // The component would only repeat what the schema check found.
                    n.schema_ok = diags.items().size() == before;
                }
            }
            spec.nodes.push_back(std::move(n));
        }
    }

    // Let each component read its configuration, and learn the named outputs of filters.
    std::map<std::string, std::vector<std::string>> outputs;
    for (const auto& n : spec.nodes) {
        if (n.type.empty() || !n.schema_ok) continue;
        const ComponentEntry* entry = registry.find(n.type);
        try {
            std::unique_ptr<Component> component = entry->create();
            ValidationContext context(n.name, spec.data_dir);
            component->configure(ConfigView(n.config), context);
            if (auto* filter = dynamic_cast<Filter*>(component.get())) outputs[n.name] = filter->outputs();
        } catch (const ConfigError& e) {
            diags.add(n.name, e.key(), e.position().line ? e.position() : n.position, e.detail());
        } catch (const std::exception& e) {
            diags.add(n.name, "", n.position, std::string("the component rejected its configuration: ") + e.what());
        }
    }

    for (const auto& n : spec.nodes) {
        for (const auto& in : n.inputs) {
            const NodeSpec* from = spec.find(in.node);
            if (!from) {
                std::vector<std::string> all;
                for (const auto& m : spec.nodes)
                    all.push_back(m.name);
                diags.add(n.name, "inputs", in.position,
                          "input '" + in.text() + "' names no node" + suggestion(in.node, all));
            } else if (from->kind == ComponentKind::sink) {
                diags.add(n.name, "inputs", in.position,
                          "input '" + in.text() + "' is a sink, and sinks have no output");
            } else if (!in.output.empty()) {
                auto it = outputs.find(from->name);
                if (it == outputs.end() && !from->type.empty() && from->kind == ComponentKind::source) {
                    diags.add(n.name, "inputs", in.position,
                              "input '" + in.text() + "': node '" + from->name + "' has no named outputs");
                } else if (it != outputs.end() &&
                           std::find(it->second.begin(), it->second.end(), in.output) == it->second.end()) {
                    diags.add(n.name, "inputs", in.position,
                              "input '" + in.text() + "': node '" + from->name + "' has no output '" + in.output + "'" +
                                  (it->second.empty() ? "" : "; its outputs: " + join(it->second)));
                }
            }
        }
    }

    if (auto cycle = find_cycle(spec); !cycle.empty()) {
        const NodeSpec* first = spec.find(cycle.front());
        diags.add(cycle.front(), "inputs", first ? first->position : SourcePosition{},
                  "the graph has a cycle: " + join(cycle, " -> "));
    }
    bool any_sink = std::any_of(spec.nodes.begin(), spec.nodes.end(),
                                [](const NodeSpec& n) { return n.kind == ComponentKind::sink; });
    bool any_source = std::any_of(spec.nodes.begin(), spec.nodes.end(),
                                  [](const NodeSpec& n) { return n.kind == ComponentKind::source; });
    if (!any_source) diags.add("", "sources", document.position, "the pipeline has no source");
    if (!any_sink) diags.add("", "sinks", document.position, "the pipeline has no sink");
    check_claims(claims, diags);
    return spec;
}

std::vector<std::string> find_cycle(const PipelineSpec& spec) {
    // Edges go from an input to the node that reads it; DFS with colours finds a back edge.
    std::map<std::string, std::vector<std::string>> next;
    for (const auto& n : spec.nodes)
        for (const auto& in : n.inputs)
            if (spec.find(in.node)) next[in.node].push_back(n.name);
    std::map<std::string, int> colour;  // 0 white, 1 on stack, 2 done
    std::vector<std::string> stack;
    std::vector<std::string> cycle;
    std::function<bool(const std::string&)> visit = [&](const std::string& v) {
        colour[v] = 1;
        stack.push_back(v);
        for (const auto& w : next[v]) {
            if (colour[w] == 1) {
                auto it = std::find(stack.begin(), stack.end(), w);
                cycle.assign(it, stack.end());
                cycle.push_back(w);
                return true;
            }
            if (colour[w] == 0 && visit(w)) return true;
        }
        stack.pop_back();
        colour[v] = 2;
        return false;
    };
    for (const auto& n : spec.nodes)
        if (colour[n.name] == 0 && visit(n.name)) return cycle;
    return {};
}

std::string to_dot(const PipelineSpec& spec) {
    auto escape = [](const std::string& s) {
        std::string out;
        for (char c : s) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        return out;
    };
    auto quote = [&](const std::string& s) { return "\"" + escape(s) + "\""; };
    std::ostringstream dot;
    dot << "digraph pipeline {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n";
    for (const auto& n : spec.nodes) {
        const char* shape = n.kind == ComponentKind::source   ? "invhouse"
                            : n.kind == ComponentKind::filter ? "box"
                                                              : "house";
        dot << "  " << quote(n.name) << " [shape=" << shape << ", label=\"" << escape(n.name) << "\\n"
            << escape(n.type) << "\"];\n";
    }
    for (const auto& n : spec.nodes)
        for (const auto& in : n.inputs) {
            dot << "  " << quote(in.node) << " -> " << quote(n.name);
            if (!in.output.empty()) dot << " [label=" << quote(in.output) << "]";
            dot << ";\n";
        }
    dot << "}\n";
    return dot.str();
}

}  // namespace hubflow::core
