#pragma once
// Declares the components of a plugin library. Use it once, in one .cpp file of the plugin:
//
//   HUBFLOW_PLUGIN("generator", "1.2.0", GeneratorSource)
//   HUBFLOW_PLUGIN("signalr", "0.3.0", SignalRSource, SignalRHubSink)
//
// Each listed class derives from hubflow::Source, Filter or Sink, has a public default constructor and a
//   static hubflow::ComponentDescription describe();
//
// The macro exports three things:
//  - the ABI marker: an ELF section (and symbol) whose *name* carries the SDK version the plugin was built with
//    (.hubflow_sdk_abi.v<major>_<minor>). The host reads section names from the file with Boost.DLL, so a
//    plugin built for another SDK is refused before any of its code runs (no static constructors, no dlopen);
//  - Poco's ClassLoader manifest (pocoBuildManifest), through which the host creates components by type;
//  - hubflow_plugin_description(): the plugin's name, version and each component's description and schema.
//
// This is the only SDK header that includes a Poco header.

#include <Poco/ClassLibrary.h>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <Poco/Manifest.h>
#include <Poco/MetaObject.h>

#include "hubflow/component.h"
#include "hubflow/schema.h"
#include "hubflow/version.h"

#define HUBFLOW_PLUGIN_EXPORT __attribute__((visibility("default")))

#define HUBFLOW_DETAIL_CAT5(a, b, c, d, e) a##b##c##d##e
#define HUBFLOW_DETAIL_ABI_SYMBOL(major, minor) HUBFLOW_DETAIL_CAT5(hubflow_sdk_abi_v, major, _, minor, )
#define HUBFLOW_DETAIL_STR(x) #x
#define HUBFLOW_DETAIL_XSTR(x) HUBFLOW_DETAIL_STR(x)

// The marker alone; HUBFLOW_PLUGIN uses it. Tests use it to build plugins that claim another version.
// The version is in the name of an ELF section as well as of the symbol: section headers survive `strip`,
// and the host reads them without loading the library.
#define HUBFLOW_ABI_MARKER(major, minor)                                                                               \
    extern "C" HUBFLOW_PLUGIN_EXPORT                                                                                   \
        __attribute__((used, section(".hubflow_sdk_abi.v" HUBFLOW_DETAIL_XSTR(major) "_" HUBFLOW_DETAIL_XSTR(minor)))) \
        const char HUBFLOW_DETAIL_ABI_SYMBOL(major, minor)[] =                                                         \
            "hubflow-sdk " HUBFLOW_DETAIL_XSTR(major) "." HUBFLOW_DETAIL_XSTR(minor);

namespace hubflow::detail {

template <typename C>
constexpr bool is_component =
    std::is_base_of_v<Source, C> || std::is_base_of_v<Filter, C> || std::is_base_of_v<Sink, C>;

// Poco's MetaObject keeps the name pointer it is given, so names come from the plugin's static description.
template <typename... Cs, std::size_t... I>
bool build_manifest(Poco::ManifestBase* base, const PluginDescription& description, std::index_sequence<I...>) {
    static_assert((is_component<Cs> && ...), "HUBFLOW_PLUGIN lists a class that is not a Source, Filter or Sink");
    using Manifest = Poco::Manifest<Component>;
    if (std::string(base->className()) != typeid(Manifest).name()) return false;
    auto* manifest = static_cast<Manifest*>(base);
    auto insert = [manifest](const Poco::AbstractMetaObject<Component>* meta) {
        // A duplicate type inside one plugin is refused by the host from the description list.
        if (!manifest->insert(meta)) delete meta;
    };
    (insert(new Poco::MetaObject<Cs, Component>(description.components[I].type.c_str())), ...);
    return true;
}

template <typename... Cs>
PluginDescription describe_plugin(const char* name, const char* version) {
    return PluginDescription{name, version, {Cs::describe()...}};
}

}  // namespace hubflow::detail

// The exported functions call an internal-linkage accessor rather than each other: Poco loads libraries with
// RTLD_GLOBAL, so a call to an exported name could bind to another plugin's definition.
#define HUBFLOW_PLUGIN(NAME, VERSION, ...)                                                              \
    HUBFLOW_ABI_MARKER(HUBFLOW_SDK_VERSION_MAJOR, HUBFLOW_SDK_VERSION_MINOR)                            \
    namespace {                                                                                         \
    const ::hubflow::PluginDescription& hubflow_detail_description() {                                  \
        static const ::hubflow::PluginDescription description =                                         \
            ::hubflow::detail::describe_plugin<__VA_ARGS__>(NAME, VERSION);                             \
        return description;                                                                             \
    }                                                                                                   \
    }                                                                                                   \
    extern "C" HUBFLOW_PLUGIN_EXPORT const ::hubflow::PluginDescription* hubflow_plugin_description() { \
        return &hubflow_detail_description();                                                           \
    }                                                                                                   \
    extern "C" HUBFLOW_PLUGIN_EXPORT bool pocoBuildManifest(Poco::ManifestBase* manifest) {             \
        return ::hubflow::detail::build_manifest<__VA_ARGS__>(manifest, hubflow_detail_description(),   \
                                                              std::index_sequence_for<__VA_ARGS__>{});  \
    }
