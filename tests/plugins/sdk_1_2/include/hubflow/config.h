#pragma once
// A component's view of its node in the pipeline file. Defaults from the schema are already filled in, and
// the host has already checked key names and value types against the schema; the getters still check types
// so a component can read keys its schema declares as `any`. Every error names the key.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "hubflow/value.h"

namespace hubflow {

// A problem with one key of a node's configuration. `key` is the dotted path inside the node ("auth.issuer").
class ConfigError : public std::runtime_error {
public:
    ConfigError(std::string key, const std::string& message, SourcePosition position = {});
    const std::string& key() const { return key_; }
    const std::string& detail() const { return detail_; }
    SourcePosition position() const { return position_; }

private:
    std::string key_;
    std::string detail_;
    SourcePosition position_;
};

class ConfigView {
public:
    // `object` must outlive the view. `prefix` is the dotted path of `object` inside the node ("" at the top).
    explicit ConfigView(const Value& object, std::string prefix = {});

    bool has(std::string_view key) const;  // present and not null
    const Value* find(std::string_view key) const;

    std::string string(std::string_view key) const;
    std::int64_t integer(std::string_view key) const;
    double number(std::string_view key) const;
    bool boolean(std::string_view key) const;
    std::vector<std::string> strings(std::string_view key) const;
    ConfigView object(std::string_view key) const;
    const Value& value(std::string_view key) const;  // any type, but present

    // Same, but `fallback` when the key is absent or null.
    std::string string_or(std::string_view key, std::string_view fallback) const;
    std::int64_t integer_or(std::string_view key, std::int64_t fallback) const;
    double number_or(std::string_view key, double fallback) const;
    bool boolean_or(std::string_view key, bool fallback) const;

    // Range checks that throw a ConfigError naming the key.
    std::int64_t integer_in(std::string_view key, std::int64_t min, std::int64_t max) const;
    double number_in(std::string_view key, double min, double max) const;
    std::int64_t integer_at_least(std::string_view key, std::int64_t min) const;
    std::string one_of(std::string_view key, const std::vector<std::string>& allowed) const;

    // An error about `key` of this view, for checks the getters cannot make.
    [[nodiscard]] ConfigError error(std::string_view key, const std::string& message) const;

    const Value& raw() const { return *object_; }
    std::string path_of(std::string_view key) const;

private:
    const Value& require(std::string_view key, Value::Type type, const char* expected) const;
    const Value* object_;
    std::string prefix_;
};

}  // namespace hubflow
