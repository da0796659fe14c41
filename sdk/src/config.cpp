#include "hubflow/config.h"

#include <algorithm>
#include <cstdio>

namespace hubflow {

ConfigError::ConfigError(std::string key, const std::string& message, SourcePosition position)
    : std::runtime_error(key.empty() ? message : "'" + key + "': " + message),
      key_(std::move(key)),
      detail_(message),
      position_(position) {}

ConfigView::ConfigView(const Value& object, std::string prefix) : object_(&object), prefix_(std::move(prefix)) {}

std::string ConfigView::path_of(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
}

ConfigError ConfigView::error(std::string_view key, const std::string& message) const {
    const Value* v = find(key);
    return ConfigError(path_of(key), message, v ? v->position : object_->position);
}

const Value* ConfigView::find(std::string_view key) const {
    return object_->find(key);
}

bool ConfigView::has(std::string_view key) const {
    const Value* v = find(key);
    return v && !v->is_null();
}

const Value& ConfigView::value(std::string_view key) const {
    const Value* v = find(key);
    if (!v || v->is_null()) throw error(key, "is required");
    return *v;
}

const Value& ConfigView::require(std::string_view key, Value::Type type, const char* expected) const {
    const Value& v = value(key);
    bool ok = v.type() == type || (type == Value::Type::number && v.is_number());
    if (!ok) throw error(key, std::string("expected ") + expected + ", found " + Value::type_name(v.type()));
    return v;
}

std::string ConfigView::string(std::string_view key) const {
    return require(key, Value::Type::string, "a string").as_string();
}

std::int64_t ConfigView::integer(std::string_view key) const {
    const Value& v = require(key, Value::Type::number, "an integer");
    if (!v.is_integer()) throw error(key, "expected an integer, found a fraction");
    return v.as_int();
}

double ConfigView::number(std::string_view key) const {
    return require(key, Value::Type::number, "a number").as_double();
}

bool ConfigView::boolean(std::string_view key) const {
    return require(key, Value::Type::boolean, "true or false").as_bool();
}

std::vector<std::string> ConfigView::strings(std::string_view key) const {
    const Value& v = require(key, Value::Type::array, "a list of strings");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < v.as_array().size(); ++i) {
        const Value& item = v.as_array()[i];
        if (!item.is_string())
            throw ConfigError(path_of(key) + "[" + std::to_string(i) + "]",
                              std::string("expected a string, found ") + Value::type_name(item.type()), item.position);
        out.push_back(item.as_string());
    }
    return out;
}

ConfigView ConfigView::object(std::string_view key) const {
    return ConfigView(require(key, Value::Type::object, "an object"), path_of(key));
}

std::string ConfigView::string_or(std::string_view key, std::string_view fallback) const {
    return has(key) ? string(key) : std::string(fallback);
}
std::int64_t ConfigView::integer_or(std::string_view key, std::int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
}
double ConfigView::number_or(std::string_view key, double fallback) const {
    return has(key) ? number(key) : fallback;
}
bool ConfigView::boolean_or(std::string_view key, bool fallback) const {
    return has(key) ? boolean(key) : fallback;
}

std::int64_t ConfigView::integer_in(std::string_view key, std::int64_t min, std::int64_t max) const {
    std::int64_t v = integer(key);
    if (v < min || v > max)
        throw error(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", found " +
                             std::to_string(v));
    return v;
}

std::int64_t ConfigView::integer_at_least(std::string_view key, std::int64_t min) const {
    std::int64_t v = integer(key);
    if (v < min) throw error(key, "must be " + std::to_string(min) + " or more, found " + std::to_string(v));
    return v;
}

namespace {
std::string short_number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}
}  // namespace

double ConfigView::number_in(std::string_view key, double min, double max) const {
    double v = number(key);
    if (v < min || v > max)
        throw error(
            key, "must be between " + short_number(min) + " and " + short_number(max) + ", found " + short_number(v));
    return v;
}

std::string ConfigView::one_of(std::string_view key, const std::vector<std::string>& allowed) const {
    std::string v = string(key);
    if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return v;
    std::string list;
    for (const auto& a : allowed)
        list += (list.empty() ? "" : ", ") + a;
    throw error(key, "must be one of " + list + ", found '" + v + "'");
}

}  // namespace hubflow
