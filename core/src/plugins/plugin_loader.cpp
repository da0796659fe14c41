#include "plugins/plugin_loader.h"

#include <algorithm>
#include <cstdlib>
#include <regex>
#include <set>

#include <Poco/Exception.h>
#include <Poco/SharedLibrary.h>
#include <boost/dll/library_info.hpp>
#include <boost/dll/runtime_symbol_info.hpp>

#include "hubflow/version.h"

namespace hubflow::core {

namespace fs = std::filesystem;

std::optional<AbiMarker> read_abi_marker(const fs::path& file) {
    // Section names, not symbols: Boost.DLL 1.74 reads only the static symbol table (gone after `strip`)
    // and can pick the wrong string table for it; section headers are always there.
    std::vector<std::string> sections;
    try {
        boost::dll::library_info info(file, /*throw_if_not_native=*/true);
        sections = info.sections();
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string("it is not a shared library this host can read (") + e.what() + ")");
    }
    static const std::regex marker(R"(\.hubflow_sdk_abi\.v(\d+)_(\d+))");
    for (const auto& name : sections) {
        std::smatch m;
        if (std::regex_match(name, m, marker)) return AbiMarker{std::stoi(m[1]), std::stoi(m[2])};
    }
    return std::nullopt;
}

PluginLoader::PluginLoader(ComponentRegistry& registry)
    : registry_(registry), class_loader_(std::make_shared<Poco::ClassLoader<Component>>()) {}

PluginLoader::~PluginLoader() = default;

bool PluginLoader::refuse(const fs::path& file, std::string reason) {
    refusals_.push_back({file, "plugin " + file.string() + " refused: " + std::move(reason)});
    return false;
}

void PluginLoader::load_directory(const fs::path& directory, bool must_exist) {
    std::error_code ec;
    if (!fs::is_directory(directory, ec)) {
        if (must_exist)
            refuse(directory, "the plugin directory does not exist; check the path given as a plugin directory.");
        return;
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(directory, ec))
        if (entry.path().extension() == ".so" && entry.is_regular_file()) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& file : files)
        load_file(file);
}

bool PluginLoader::load_file(const fs::path& given) {
    std::error_code ec;
    fs::path file = fs::weakly_canonical(given, ec);
    if (ec) file = given;
    if (std::find(loaded_.begin(), loaded_.end(), file) != loaded_.end()) return true;

    const std::string host_version =
        std::to_string(HUBFLOW_SDK_VERSION_MAJOR) + "." + std::to_string(HUBFLOW_SDK_VERSION_MINOR);
    std::optional<AbiMarker> marker;
    try {
        marker = read_abi_marker(file);
    } catch (const std::exception& e) {
        return refuse(file, std::string(e.what()) + "; remove it from the plugin directory.");
    }
    if (!marker)
        return refuse(file,
                      "it has no hubflow ABI marker, so it was not built with the hubflow SDK's HUBFLOW_PLUGIN "
                      "macro; rebuild it against SDK " +
                          host_version + " or remove it from the plugin directory.");
    const std::string plugin_version = std::to_string(marker->major) + "." + std::to_string(marker->minor);
    if (marker->major != HUBFLOW_SDK_VERSION_MAJOR)
        return refuse(file, "it was built for hubflow SDK " + plugin_version + " but this host speaks SDK " +
                                host_version + " and majors must match; rebuild the plugin against SDK " +
                                std::to_string(HUBFLOW_SDK_VERSION_MAJOR) + ".x.");
    if (marker->minor > HUBFLOW_SDK_VERSION_MINOR)
        return refuse(file, "it needs hubflow SDK " + plugin_version + " but this host provides only " + host_version +
                                "; upgrade hubflow, or rebuild the plugin against SDK " + host_version + ".");

    // The marker is right: now the library's code may run.
    const std::string path = file.string();
    PluginDescription description;
    try {
        Poco::SharedLibrary library(path);
        if (!library.hasSymbol("hubflow_plugin_description"))
            return refuse(file,
                          "it has a hubflow ABI marker but no hubflow_plugin_description; declare its "
                          "components with HUBFLOW_PLUGIN.");
        using DescribeFn = const PluginDescription* (*)();
        auto describe = reinterpret_cast<DescribeFn>(library.getSymbol("hubflow_plugin_description"));
        description = *describe();
        library.unload();  // the ClassLoader below takes its own reference
    } catch (const Poco::Exception& e) {
        return refuse(file, "the dynamic loader could not load it (" + e.displayText() +
                                "); install its missing dependencies or rebuild it.");
    } catch (const std::exception& e) {
        return refuse(file, std::string("describing its components threw (") + e.what() +
                                "); fix the plugin's describe() functions.");
    }

    std::set<std::string> seen;
    for (const auto& component : description.components) {
        if (component.type.empty())
            return refuse(file, "a component has an empty type name; give every component a type in describe().");
        if (!seen.insert(component.type).second)
            return refuse(
                file, "it declares component type '" + component.type + "' twice; give each component its own type.");
        if (const ComponentEntry* existing = registry_.find(component.type))
            return refuse(file, "component type '" + component.type + "' is already provided by " +
                                    (existing->plugin_file.empty() ? "the host" : existing->plugin_file) +
                                    "; remove one of the two plugins or rename the type.");
    }

    try {
        class_loader_->loadLibrary(path);
    } catch (const Poco::Exception& e) {
        return refuse(file, "Poco's class loader could not load it (" + e.displayText() + "); rebuild it against SDK " +
                                host_version + ".");
    } catch (const std::exception& e) {
        return refuse(file, std::string("building its manifest threw (") + e.what() + "); fix the plugin.");
    }

    // Create and destroy each component once, so a broken factory is found now and not mid-run.
    for (const auto& component : description.components) {
        std::string problem;
        try {
            std::unique_ptr<Component> probe(class_loader_->create(component.type));
            bool kind_ok = (component.kind == ComponentKind::source && dynamic_cast<Source*>(probe.get())) ||
                           (component.kind == ComponentKind::filter && dynamic_cast<Filter*>(probe.get())) ||
                           (component.kind == ComponentKind::sink && dynamic_cast<Sink*>(probe.get()));
            if (!kind_ok)
                problem = "component '" + component.type + "' is described as a " + kind_name(component.kind) +
                          " but its class is not one; fix its describe().";
        } catch (const Poco::Exception& e) {
            problem = "the factory of component '" + component.type + "' failed (" + e.displayText() +
                      "); fix the component's constructor.";
        } catch (const std::exception& e) {
            problem = "the factory of component '" + component.type + "' threw (" + e.what() +
                      "); fix the component's constructor.";
        } catch (...) {
            problem = "the factory of component '" + component.type +
                      "' threw a non-standard exception; fix the component's constructor.";
        }
        if (!problem.empty()) {
            class_loader_->unloadLibrary(path);
            return refuse(file, problem);
        }
    }

    for (const auto& component : description.components) {
        auto loader = class_loader_;
        std::string type = component.type;
        registry_.add({component, description.name, description.version, path,
                       [loader, type] { return std::unique_ptr<Component>(loader->create(type)); }});
    }
    loaded_.push_back(file);
    return true;
}

std::vector<fs::path> default_plugin_directories(const std::vector<std::string>& extra) {
    std::vector<fs::path> dirs;
    std::error_code ec;
    fs::path exe = boost::dll::program_location(ec);
    if (!ec) dirs.push_back(exe.parent_path().parent_path() / "lib" / "hubflow");
    for (const auto& d : extra)
        dirs.emplace_back(d);
    if (const char* env = std::getenv("HUBFLOW_PLUGIN_PATH")) {
        std::string_view rest = env;
        while (!rest.empty()) {
            auto colon = rest.find(':');
            std::string_view part = rest.substr(0, colon);
            if (!part.empty()) dirs.emplace_back(part);
            if (colon == std::string_view::npos) break;
            rest.remove_prefix(colon + 1);
        }
    }
    return dirs;
}

}  // namespace hubflow::core
