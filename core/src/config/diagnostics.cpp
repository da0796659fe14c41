#include "config/diagnostics.h"

#include <algorithm>

namespace hubflow::core {

std::string Diagnostic::to_string() const {
    std::string out = file;
    if (position.line > 0) out += ":" + std::to_string(position.line) + ":" + std::to_string(position.column);
    out += ": ";
    if (!node.empty()) out += "node '" + node + "'" + (key.empty() ? ": " : ", ");
    if (!key.empty()) out += "key '" + key + "': ";
    out += message;
    return out;
}

void Diagnostics::add(std::string node, std::string key, SourcePosition position, std::string message) {
    items_.push_back({file_, std::move(node), std::move(key), position, std::move(message)});
}

std::string Diagnostics::to_string() const {
    std::vector<const Diagnostic*> sorted;
    for (const auto& d : items_)
        sorted.push_back(&d);
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const Diagnostic* a, const Diagnostic* b) { return a->position.line < b->position.line; });
    std::string out;
    for (const auto* d : sorted)
        out += d->to_string() + "\n";
    return out;
}

}  // namespace hubflow::core
