#pragma once
// The pipeline file: reading, environment expansion, and validation against the component schemas and the
// graph rules. Every problem found is reported at once (see Diagnostics).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/diagnostics.h"
#include "config/env_expand.h"
#include "hubflow/schema.h"
#include "hubflow/value.h"
#include "plugins/component_registry.h"

namespace hubflow::core {

enum class WhenFull { block, drop_newest };
enum class BufferType { memory, disk };

// A node's `buffer` object beyond max_events and when_full: where its input waits.
struct BufferSpec {
    static constexpr std::uint64_t min_max_bytes = 1 << 20;
    BufferType type = BufferType::memory;
    std::uint64_t max_bytes = 256ULL << 20;       // disk: bytes of segment files before when_full applies
    std::chrono::milliseconds fsync_interval{0};  // disk: 0 = every commit group synced before it is accepted
    std::int64_t interval_ms_set = 0;             // fsync_interval_ms as written, checked against fsync
};

struct InputRef {
    std::string node;
    std::string output;  // "" = the node's default output
    SourcePosition position;
    std::string text() const { return output.empty() ? node : node + "." + output; }
};

struct NodeSpec {
    std::string name;
    ComponentKind kind = ComponentKind::source;
    std::string type;
    std::vector<InputRef> inputs;
    std::size_t buffer_max_events = 10000;
    WhenFull when_full = WhenFull::block;
    BufferSpec buffer;
    Value config;  // the node's own keys (without type, inputs, buffer), schema defaults filled in
    SourcePosition position;
    bool schema_ok = false;  // set by validation: the config matched the component's schema
};

// The top-level `admin` object: the admin HTTP server (core/src/admin), off unless `listen` is set.
struct AdminSpec {
    std::string listen;                            // HOST:PORT; empty = no admin server
    std::string token_env;                         // environment variable holding the bearer token; empty = no token
    bool allow_remote = false;                     // a non-loopback address without a token
    bool tap = false;                              // /api/v1/tap (events hold personal data: off by default)
    std::chrono::milliseconds stall_after{60000};  // input waiting and nothing handled for this long: stalled
    bool enabled() const { return !listen.empty(); }
};

struct PipelineSpec {
    std::string file;
    std::vector<NodeSpec> nodes;  // sources, then filters, then sinks, each in file order
    std::filesystem::path data_dir = ".hubflow";
    std::chrono::milliseconds grace_period{10000};
    std::vector<std::string> plugin_paths;
    AdminSpec admin;

    const NodeSpec* find(const std::string& name) const;
};

// Step 1: read, parse and expand a pipeline file. Returns nullopt when the text is not JSON at all (the
// diagnostic says where); otherwise the document, possibly with expansion problems recorded.
std::optional<Value> read_pipeline_document(const std::string& file, const Environment& env, Diagnostics& diags);
std::optional<Value> parse_pipeline_text(std::string_view text, const Environment& env, Diagnostics& diags);

// The plugin paths a document asks for, read before validation so their components are known.
std::vector<std::string> plugin_paths_of(const Value& document);

// Step 2: check structure, types, keys, graph rules and resource claims, and (when `instantiate_check` is
// set) let each component check its own configuration. Returns the spec; it is usable only when `diags`
// stayed empty.
PipelineSpec validate_pipeline(const Value& document, const ComponentRegistry& registry, Diagnostics& diags);

// Nodes whose names a cycle passes through, in order, e.g. {"a", "b", "a"}; empty when acyclic.
std::vector<std::string> find_cycle(const PipelineSpec& spec);

// Graphviz DOT of the nodes and edges.
std::string to_dot(const PipelineSpec& spec);

}  // namespace hubflow::core
