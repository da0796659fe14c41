#include "plugins/component_registry.h"

namespace hubflow::core {

bool ComponentRegistry::add(ComponentEntry entry) {
    std::string type = entry.description.type;
    return entries_.emplace(std::move(type), std::move(entry)).second;
}

const ComponentEntry* ComponentRegistry::find(const std::string& type) const {
    auto it = entries_.find(type);
    return it == entries_.end() ? nullptr : &it->second;
}

std::vector<const ComponentEntry*> ComponentRegistry::all() const {
    std::vector<const ComponentEntry*> out;
    for (const auto& [_, entry] : entries_)
        out.push_back(&entry);
    return out;
}

std::vector<std::string> ComponentRegistry::types() const {
    std::vector<std::string> out;
    for (const auto& [type, _] : entries_)
        out.push_back(type);
    return out;
}

}  // namespace hubflow::core
