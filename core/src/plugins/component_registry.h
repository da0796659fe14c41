#pragma once
// Every component type the host can instantiate, whether it came from a plugin file or was registered in
// process (tests, built-ins). Type names are unique: the first registration wins.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hubflow/component.h"
#include "hubflow/schema.h"

namespace hubflow::core {

struct ComponentEntry {
    ComponentDescription description;
    std::string plugin_name;
    std::string plugin_version;
    std::string plugin_file;  // "" for components registered in process
    std::function<std::unique_ptr<Component>()> create;
};

class ComponentRegistry {
public:
    // False, and nothing registered, when the type is already taken.
    bool add(ComponentEntry entry);
    const ComponentEntry* find(const std::string& type) const;
    std::vector<const ComponentEntry*> all() const;  // sorted by type
    std::vector<std::string> types() const;

    // Registers an in-process component class (one with a static describe()).
    template <typename C>
    bool add_builtin(const std::string& plugin_name = "builtin") {
        return add({C::describe(), plugin_name, "", "", [] { return std::make_unique<C>(); }});
    }

private:
    std::map<std::string, ComponentEntry> entries_;
};

}  // namespace hubflow::core
