#pragma once
// Finds plugin libraries, checks their ABI marker without running any of their code, loads them through
// Poco's ClassLoader and registers their components. A plugin that cannot be used is refused with one
// sentence (file, reason, what to do); a refused plugin never stops the others from loading.

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <Poco/ClassLoader.h>

#include "hubflow/component.h"
#include "plugins/component_registry.h"

namespace hubflow::core {

struct PluginRefusal {
    std::filesystem::path file;
    std::string reason;  // a whole sentence naming the file, the reason and what to do
};

struct AbiMarker {
    int major = 0;
    int minor = 0;
};

// Reads the marker from the library's section headers with Boost.DLL. No code of the library runs.
// Throws std::runtime_error when the file is not a readable shared library; nullopt when it has no marker.
std::optional<AbiMarker> read_abi_marker(const std::filesystem::path& file);

class PluginLoader {
public:
    explicit PluginLoader(ComponentRegistry& registry);
    ~PluginLoader();
    PluginLoader(const PluginLoader&) = delete;
    PluginLoader& operator=(const PluginLoader&) = delete;

    // Loads every *.so in `directory` (sorted by name, not recursive). A missing directory is skipped
    // silently unless `must_exist`, in which case it is a refusal.
    void load_directory(const std::filesystem::path& directory, bool must_exist = false);
    // Loads one library. Returns false when it was refused (see refusals()).
    bool load_file(const std::filesystem::path& file);

    const std::vector<PluginRefusal>& refusals() const { return refusals_; }
    const std::vector<std::filesystem::path>& loaded() const { return loaded_; }

private:
    bool refuse(const std::filesystem::path& file, std::string reason);
    ComponentRegistry& registry_;
    std::shared_ptr<Poco::ClassLoader<Component>> class_loader_;
    std::vector<PluginRefusal> refusals_;
    std::vector<std::filesystem::path> loaded_;
};

// The directories searched, in order: next to the executable (../lib/hubflow), then `extra` (from
// --plugin-dir), then HUBFLOW_PLUGIN_PATH (colon-separated).
std::vector<std::filesystem::path> default_plugin_directories(const std::vector<std::string>& extra);

}  // namespace hubflow::core
