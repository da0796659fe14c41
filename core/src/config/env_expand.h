#pragma once
// ${VAR} and ${VAR:-default} in string values. Expansion runs on the parsed tree, string by string, so an
// environment value can never add structure to the pipeline. "$$" is a literal "$".

#include <functional>
#include <optional>
#include <string>

#include "config/diagnostics.h"
#include "hubflow/value.h"

namespace hubflow::core {

using Environment = std::function<std::optional<std::string>(const std::string& name)>;
Environment process_environment();

// Expands every string in `value` in place. Problems (missing variable without default, unterminated
// reference) go to `diagnostics` with the node and key where they occur.
void expand_environment(Value& value, const Environment& env, Diagnostics& diagnostics);

}  // namespace hubflow::core
