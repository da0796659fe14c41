#pragma once
// A JSON value as the host hands configuration to components: standard library only, so plugins are not
// tied to the host's JSON library. Objects keep their key order; every value remembers where it was written.

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace hubflow {

struct SourcePosition {
    int line = 0;  // 1-based; 0 when the value did not come from a file
    int column = 0;
};

class Value {
public:
    enum class Type { null, boolean, number, string, array, object };
    using Array = std::vector<Value>;
    using Member = std::pair<std::string, Value>;
    using Object = std::vector<Member>;

    Value() = default;
    explicit Value(bool b) : data_(b) {}
    explicit Value(double d) : data_(Number{d, false}) {}
    explicit Value(std::int64_t i) : data_(Number{static_cast<double>(i), true, i}) {}
    explicit Value(std::string s) : data_(std::move(s)) {}
    explicit Value(Array a) : data_(std::move(a)) {}
    explicit Value(Object o) : data_(std::move(o)) {}

    Type type() const { return static_cast<Type>(data_.index()); }
    bool is_null() const { return type() == Type::null; }
    bool is_bool() const { return type() == Type::boolean; }
    bool is_number() const { return type() == Type::number; }
    bool is_integer() const { return is_number() && std::get<Number>(data_).integral; }
    bool is_string() const { return type() == Type::string; }
    bool is_array() const { return type() == Type::array; }
    bool is_object() const { return type() == Type::object; }

    // Accessors assume the type was checked; they throw std::bad_variant_access otherwise.
    bool as_bool() const { return std::get<bool>(data_); }
    double as_double() const { return std::get<Number>(data_).value; }
    std::int64_t as_int() const { return std::get<Number>(data_).integer; }
    const std::string& as_string() const { return std::get<std::string>(data_); }
    std::string& as_string() { return std::get<std::string>(data_); }
    const Array& as_array() const { return std::get<Array>(data_); }
    Array& as_array() { return std::get<Array>(data_); }
    const Object& as_object() const { return std::get<Object>(data_); }
    Object& as_object() { return std::get<Object>(data_); }

    // Member lookup on an object; nullptr when absent or when this is not an object.
    const Value* find(std::string_view key) const;
    Value* find(std::string_view key);

    SourcePosition position;

    static const char* type_name(Type t);

private:
    struct Number {
        double value = 0;
        bool integral = false;
        std::int64_t integer = 0;
    };
    std::variant<std::monostate, bool, Number, std::string, Array, Object> data_;
};

// Compact JSON text of a value (for messages and for handing sub-objects to libraries).
std::string to_json(const Value& value);

}  // namespace hubflow
