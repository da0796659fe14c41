#pragma once
// Builds a node's configuration the way the host hands it to configure(): JSON text parsed into a
// hubflow::Value, unknown keys refused and the schema's defaults filled in. Poco parses here; the plugin
// itself never sees Poco.

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <stdexcept>
#include <string>

#include "hubflow/schema.h"
#include "hubflow/value.h"

namespace hubflow::testing {

inline Value to_value(const Poco::Dynamic::Var& v) {
    if (v.isEmpty()) return Value();
    if (v.type() == typeid(Poco::JSON::Object::Ptr)) {
        auto object = v.extract<Poco::JSON::Object::Ptr>();
        Value::Object members;
        for (const auto& name : object->getNames())
            members.emplace_back(name, to_value(object->get(name)));
        return Value(std::move(members));
    }
    if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
        auto array = v.extract<Poco::JSON::Array::Ptr>();
        Value::Array items;
        for (std::size_t i = 0; i < array->size(); ++i)
            items.push_back(to_value(array->get(static_cast<unsigned>(i))));
        return Value(std::move(items));
    }
    if (v.isBoolean()) return Value(v.convert<bool>());
    if (v.isInteger()) return Value(v.convert<std::int64_t>());
    if (v.isNumeric()) return Value(v.convert<double>());
    return Value(v.convert<std::string>());
}

inline Value parse_json_value(const std::string& text) {
    Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(true));
    return to_value(parser.parse(text));
}

// `json` is the node's object without "type" and "inputs".
inline Value node_config(const ComponentDescription& description, const std::string& json) {
    Value config = parse_json_value(json);
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
            Value def = parse_json_value("[" + field.default_json + "]").as_array().at(0);
            if (Value* existing = config.find(field.name))
                *existing = std::move(def);
            else
                config.as_object().emplace_back(field.name, std::move(def));
        }
    }
    return config;
}

}  // namespace hubflow::testing
