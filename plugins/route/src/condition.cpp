#include "condition.h"

#include <Poco/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace hubflow::route {

namespace {

// A comparison value's text, as FieldPath gives a field's: strings unescaped, numbers and booleans as JSON.
std::string value_text(const Value& v, const std::string& key) {
    if (v.is_string()) return v.as_string();
    if (v.is_bool()) return v.as_bool() ? "true" : "false";
    if (v.is_integer()) return std::to_string(v.as_int());
    if (v.is_number()) {
        char text[64];
        std::snprintf(text, sizeof text, "%.17g", v.as_double());
        return text;
    }
    throw ConfigError(key, "must be a string, number or boolean, not " + std::string(Value::type_name(v.type())),
                      v.position);
}

}  // namespace

std::unique_ptr<Condition> Condition::parse(const Value& value, const std::string& key) {
    if (!value.is_object())
        throw ConfigError(key, "a condition is an object such as {\"field\": \"kind\", \"equals\": \"entry\"}",
                          value.position);
    auto c = std::make_unique<Condition>();
    const auto& members = value.as_object();
    static const std::vector<std::string> field_ops = {"equals", "one_of", "exists", "prefix", "regex"};
    static const std::vector<std::string> logic_ops = {"all", "any", "not"};
    std::vector<std::string> ops;
    bool has_field = false;
    for (const auto& [name, v] : members) {
        if (name == "field")
            has_field = true;
        else if (std::find(field_ops.begin(), field_ops.end(), name) != field_ops.end() ||
                 std::find(logic_ops.begin(), logic_ops.end(), name) != logic_ops.end())
            ops.push_back(name);
        else
            throw ConfigError(key + "." + name,
                              "unknown condition key; use field with equals, one_of, exists, prefix or regex, or "
                              "all, any, not",
                              v.position);
    }
    if (ops.size() != 1)
        throw ConfigError(key,
                          ops.empty() ? "the condition has no operator (equals, one_of, exists, prefix, regex, "
                                        "all, any, not)"
                                      : "one operator per condition; combine several with all or any",
                          value.position);
    const std::string& op = ops.front();
    const Value& operand = *value.find(op);
    const std::string at = key + "." + op;
    const bool logic = std::find(logic_ops.begin(), logic_ops.end(), op) != logic_ops.end();
    if (logic && has_field)
        throw ConfigError(key + ".field", "`" + op + "` takes conditions, not a field", value.position);
    if (!logic) {
        if (!has_field) throw ConfigError(key + ".field", "`" + op + "` needs a field to test", value.position);
        const Value& field = *value.find("field");
        if (!field.is_string() || field.as_string().empty())
            throw ConfigError(key + ".field", "must be a non-empty field path", field.position);
        try {
            c->field_ = std::make_unique<FieldPath>(field.as_string());
        } catch (const std::invalid_argument& e) {
            throw ConfigError(key + ".field", e.what(), field.position);
        }
    }
    if (op == "equals") {
        c->op_ = Op::equals;
        c->values_.push_back(value_text(operand, at));
    } else if (op == "one_of") {
        c->op_ = Op::one_of;
        if (!operand.is_array() || operand.as_array().empty())
            throw ConfigError(at, "must be a non-empty list of values", operand.position);
        for (std::size_t i = 0; i < operand.as_array().size(); ++i)
            c->values_.push_back(value_text(operand.as_array()[i], at + "[" + std::to_string(i) + "]"));
    } else if (op == "exists") {
        c->op_ = Op::exists;
        if (!operand.is_bool()) throw ConfigError(at, "must be true or false", operand.position);
        c->exists_ = operand.as_bool();
    } else if (op == "prefix") {
        c->op_ = Op::prefix;
        if (!operand.is_string()) throw ConfigError(at, "must be a string", operand.position);
        c->values_.push_back(operand.as_string());
    } else if (op == "regex") {
        c->op_ = Op::regex;
        if (!operand.is_string()) throw ConfigError(at, "must be a string (a PCRE pattern)", operand.position);
        try {
            c->regex_ = std::make_unique<Poco::RegularExpression>(operand.as_string());
        } catch (const Poco::Exception& e) {
            throw ConfigError(at, "invalid regular expression: " + e.message(), operand.position);
        }
    } else if (op == "not") {
        c->op_ = Op::negate;
        c->children_.push_back(parse(operand, at));
    } else {
        c->op_ = op == "all" ? Op::all : Op::any;
        if (!operand.is_array() || operand.as_array().empty())
            throw ConfigError(at, "must be a non-empty list of conditions", operand.position);
        for (std::size_t i = 0; i < operand.as_array().size(); ++i)
            c->children_.push_back(parse(operand.as_array()[i], at + "[" + std::to_string(i) + "]"));
    }
    return c;
}

bool Condition::matches(const Event& event, std::string& scratch) const {
    switch (op_) {
        case Op::all:
            return std::all_of(children_.begin(), children_.end(),
                               [&](const auto& c) { return c->matches(event, scratch); });
        case Op::any:
            return std::any_of(children_.begin(), children_.end(),
                               [&](const auto& c) { return c->matches(event, scratch); });
        case Op::negate:
            return !children_.front()->matches(event, scratch);
        default:
            break;
    }
    scratch.clear();
    const bool found = field_->append_to(event, scratch);
    switch (op_) {
        case Op::exists:
            return found == exists_;
        case Op::equals:
            return found && scratch == values_.front();
        case Op::one_of:
            return found && std::find(values_.begin(), values_.end(), scratch) != values_.end();
        case Op::prefix:
            return found && scratch.compare(0, values_.front().size(), values_.front()) == 0;
        case Op::regex: {
            // Found anywhere in the text, as grep does; anchor with ^ and $ for a whole match.
            Poco::RegularExpression::Match m;
            return found && regex_->match(scratch, 0, m) > 0;
        }
        default:
            return false;
    }
}

}  // namespace hubflow::route
