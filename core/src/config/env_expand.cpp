#include "config/env_expand.h"

#include <cstdlib>

namespace hubflow::core {

Environment process_environment() {
    return [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        if (!v) return std::nullopt;
        return std::string(v);
    };
}

namespace {

bool valid_name(const std::string& name) {
    if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
    return true;
}

// The node and key a value sits at, from its path in the document: sections/node/key...
struct Location {
    std::vector<std::string> path;
    std::string node() const { return path.size() >= 2 && path[0] != "" ? path[1] : ""; }
    std::string key() const {
        std::string k;
        std::size_t from =
            path.size() >= 2 && (path[0] == "sources" || path[0] == "filters" || path[0] == "sinks") ? 2 : 0;
        for (std::size_t i = from; i < path.size(); ++i)
            k += (k.empty() ? "" : ".") + path[i];
        return k;
    }
};

void expand_string(std::string& text, const Environment& env, Diagnostics& diags, const Location& loc,
                   SourcePosition pos) {
    if (text.find('$') == std::string::npos) return;
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c != '$') {
            out += c;
            continue;
        }
        if (i + 1 < text.size() && text[i + 1] == '$') {
            out += '$';
            ++i;
            continue;
        }
        if (i + 1 >= text.size() || text[i + 1] != '{') {
            out += c;
            continue;
        }
        std::size_t close = text.find('}', i + 2);
        if (close == std::string::npos) {
            diags.add(loc.node(), loc.key(), pos, "unterminated '${' in \"" + text + "\"");
            return;
        }
        std::string inner = text.substr(i + 2, close - i - 2);
        std::string name = inner;
        std::optional<std::string> fallback;
        if (auto sep = inner.find(":-"); sep != std::string::npos) {
            name = inner.substr(0, sep);
            fallback = inner.substr(sep + 2);
        }
        if (!valid_name(name)) {
            diags.add(loc.node(), loc.key(), pos, "'${" + inner + "}' does not name an environment variable");
        } else if (auto v = env(name); v && !(v->empty() && fallback)) {
            out += *v;
        } else if (fallback) {
            out += *fallback;
        } else {
            diags.add(
                loc.node(), loc.key(), pos,
                "environment variable " + name + " is not set (write ${" + name + ":-default} to give a default)");
        }
        i = close;
    }
    text = std::move(out);
}

void walk(Value& v, const Environment& env, Diagnostics& diags, Location& loc) {
    switch (v.type()) {
        case Value::Type::string:
            expand_string(v.as_string(), env, diags, loc, v.position);
            break;
        case Value::Type::array: {
            auto& items = v.as_array();
            for (std::size_t i = 0; i < items.size(); ++i) {
                loc.path.push_back(std::to_string(i));
                walk(items[i], env, diags, loc);
                loc.path.pop_back();
            }
            break;
        }
        case Value::Type::object:
            for (auto& [key, item] : v.as_object()) {
                loc.path.push_back(key);
                walk(item, env, diags, loc);
                loc.path.pop_back();
            }
            break;
        default:
            break;
    }
}

}  // namespace

void expand_environment(Value& value, const Environment& env, Diagnostics& diagnostics) {
    Location loc;
    walk(value, env, diagnostics, loc);
}

}  // namespace hubflow::core
