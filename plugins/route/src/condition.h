#pragma once
// Conditions on an event's metadata and payload fields, as written in a `route` node's configuration:
//   {"field": PATH, "equals": V}   {"field": PATH, "one_of": [V, ...]}   {"field": PATH, "exists": true|false}
//   {"field": PATH, "prefix": "text"}   {"field": PATH, "regex": "pattern"} (found anywhere; anchor with ^ $)
//   {"all": [C, ...]}   {"any": [C, ...]}   {"not": C}
// PATH is the SDK's field path (metadata names, then payload fields; `payload.x` for the payload only). A
// value V is a string, number or boolean, compared with the field's text (a JSON string's unescaped text, a
// number or boolean as JSON writes it).

#include <memory>
#include <string>
#include <vector>

#include <Poco/RegularExpression.h>

#include "hubflow/config.h"
#include "hubflow/event.h"
#include "hubflow/json.h"
#include "hubflow/value.h"

namespace hubflow::route {

class Condition {
public:
    // Parses `value` (at `key_path` inside the node, for errors); throws ConfigError naming the key.
    static std::unique_ptr<Condition> parse(const Value& value, const std::string& key_path);

    // `scratch` is reused between calls to hold a field's text.
    bool matches(const Event& event, std::string& scratch) const;

private:
    enum class Op { equals, one_of, exists, prefix, regex, all, any, negate };
    Op op_ = Op::equals;
    std::unique_ptr<FieldPath> field_;
    std::vector<std::string> values_;  // equals (one), one_of, prefix (one)
    bool exists_ = true;
    std::unique_ptr<Poco::RegularExpression> regex_;
    std::vector<std::unique_ptr<Condition>> children_;
};

}  // namespace hubflow::route
