#include "hubflow/value.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "hubflow/json.h"
#include "hubflow/schema.h"

namespace hubflow {

const Value* Value::find(std::string_view key) const {
    if (!is_object()) return nullptr;
    for (const auto& [name, value] : as_object())
        if (name == key) return &value;
    return nullptr;
}

Value* Value::find(std::string_view key) {
    return const_cast<Value*>(static_cast<const Value*>(this)->find(key));
}

const char* Value::type_name(Type t) {
    switch (t) {
        case Type::null:
            return "null";
        case Type::boolean:
            return "boolean";
        case Type::number:
            return "number";
        case Type::string:
            return "string";
        case Type::array:
            return "array";
        case Type::object:
            return "object";
    }
    return "?";
}

namespace {
void write_json(const Value& v, std::string& out) {
    switch (v.type()) {
        case Value::Type::null:
            out += "null";
            break;
        case Value::Type::boolean:
            out += v.as_bool() ? "true" : "false";
            break;
        case Value::Type::number:
            if (v.is_integer()) {
                out += std::to_string(v.as_int());
            } else {
                // Shortest text that reads back as the same double: 1.2 stays "1.2".
                char buf[32];
                for (int precision = 15; precision <= 17; ++precision) {
                    std::snprintf(buf, sizeof buf, "%.*g", precision, v.as_double());
                    if (std::strtod(buf, nullptr) == v.as_double()) break;
                }
                out += buf;
            }
            break;
        case Value::Type::string:
            append_json_string(out, v.as_string());
            break;
        case Value::Type::array: {
            out += '[';
            bool first = true;
            for (const auto& item : v.as_array()) {
                if (!first) out += ',';
                first = false;
                write_json(item, out);
            }
            out += ']';
            break;
        }
        case Value::Type::object: {
            out += '{';
            bool first = true;
            for (const auto& [key, item] : v.as_object()) {
                if (!first) out += ',';
                first = false;
                append_json_string(out, key);
                out += ':';
                write_json(item, out);
            }
            out += '}';
            break;
        }
    }
}
}  // namespace

std::string to_json(const Value& value) {
    std::string out;
    write_json(value, out);
    return out;
}

const char* kind_name(ComponentKind kind) {
    switch (kind) {
        case ComponentKind::source:
            return "source";
        case ComponentKind::filter:
            return "filter";
        case ComponentKind::sink:
            return "sink";
    }
    return "?";
}

const char* field_type_name(FieldType type) {
    switch (type) {
        case FieldType::string:
            return "string";
        case FieldType::integer:
            return "integer";
        case FieldType::number:
            return "number";
        case FieldType::boolean:
            return "boolean";
        case FieldType::strings:
            return "list of strings";
        case FieldType::object:
            return "object";
        case FieldType::map:
            return "object";
        case FieldType::any:
            return "any";
    }
    return "?";
}

}  // namespace hubflow
