#pragma once
// A node's configuration as the host hands it to configure(), for unit tests of a component: JSON text
// parsed, unknown keys refused, the schema's defaults filled in.
//
//   hubflow::Value config = hubflow::testing::node_config(MySink::describe(), R"({"path": "out.jsonl"})");
//   sink.configure(hubflow::ConfigView(config), context);

#include <stdexcept>
#include <string>

#include "hubflow/json_parse.h"
#include "hubflow/schema.h"
#include "hubflow/value.h"

namespace hubflow::testing {

// `json` is the node's object without "type" and "inputs". Nested objects are taken as written.
inline Value node_config(const ComponentDescription& description, const std::string& json) {
    Value config = parse_json(json);
    if (!config.is_object()) throw std::invalid_argument("node configuration must be an object");
    for (const auto& [key, value] : config.as_object()) {
        bool known = false;
        for (const auto& field : description.fields)
            known = known || field.name == key;
        if (!known) throw std::invalid_argument("unknown key '" + key + "'");
    }
    for (const auto& field : description.fields) {
        const Value* present = config.find(field.name);
        if ((!present || present->is_null()) && !field.default_json.empty()) {
            Value def = parse_json(field.default_json);
            if (Value* existing = config.find(field.name))
                *existing = std::move(def);
            else
                config.as_object().emplace_back(field.name, std::move(def));
        }
    }
    return config;
}

}  // namespace hubflow::testing
