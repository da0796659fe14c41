#pragma once
// JSON text -> hubflow::Value, recording the line and column of every value so that configuration errors
// can point at the offending key. (Poco's JSON parser reports positions only for syntax errors, and the
// pipeline file needs them for every error, so configuration gets this small parser of its own.) Plugins use
// it for their own configuration files and, through hubflow/testing/node_config.h, in tests.

#include <stdexcept>
#include <string>
#include <string_view>

#include "hubflow/value.h"

namespace hubflow {

class JsonSyntaxError : public std::runtime_error {
public:
    JsonSyntaxError(const std::string& message, SourcePosition position)
        : std::runtime_error(message), position_(position) {}
    SourcePosition position() const { return position_; }

private:
    SourcePosition position_;
};

// Strict RFC 8259: no comments, no trailing commas. Duplicate object keys are an error, since the pipeline
// file would otherwise silently lose one of them.
Value parse_json(std::string_view text);

}  // namespace hubflow
