#include "plugins/plugin_loader.h"

#include "hubflow/version.h"

#include <gtest/gtest.h>

#include <fstream>

using namespace hubflow;
using namespace hubflow::core;
namespace fs = std::filesystem;

namespace {

const fs::path broken_dir = HUBFLOW_TEST_BROKEN_DIR;

std::string refusal_for(const PluginLoader& loader, const std::string& file_name) {
    for (const auto& r : loader.refusals())
        if (r.file.filename() == file_name) return r.reason;
    return "";
}

}  // namespace

TEST(PluginLoader, ReadsTheAbiMarkerWithoutLoading) {
    // These libraries abort in a static constructor: reading them must not run any of their code.
    auto marker = read_abi_marker(broken_dir / "broken_wrong_major.so");
    ASSERT_TRUE(marker.has_value());
    EXPECT_EQ(marker->major, 2);
    EXPECT_EQ(marker->minor, 0);
    EXPECT_FALSE(read_abi_marker(broken_dir / "broken_no_marker.so").has_value());
    auto good = read_abi_marker(broken_dir / "broken_a_good.so");
    ASSERT_TRUE(good.has_value());
    EXPECT_EQ(good->major, HUBFLOW_SDK_VERSION_MAJOR);
}

TEST(PluginLoader, BadPluginsAreRefusedAndTheGoodOneStillLoads) {
    ComponentRegistry registry;
    PluginLoader loader(registry);
    loader.load_directory(broken_dir);

    ASSERT_NE(registry.find("memory"), nullptr);
    ASSERT_NE(registry.find("capture"), nullptr);
    EXPECT_EQ(registry.find("capture")->plugin_name, "test_components");
    EXPECT_EQ(registry.find("exploding"), nullptr);
    EXPECT_EQ(loader.loaded().size(), 1u);
    EXPECT_EQ(loader.refusals().size(), 5u);

    std::string r = refusal_for(loader, "broken_wrong_major.so");
    EXPECT_NE(r.find("broken_wrong_major.so refused"), std::string::npos) << r;
    const std::string host_sdk =
        std::to_string(HUBFLOW_SDK_VERSION_MAJOR) + "." + std::to_string(HUBFLOW_SDK_VERSION_MINOR);
    EXPECT_NE(r.find("built for hubflow SDK 2.0 but this host speaks SDK " + host_sdk), std::string::npos) << r;
    EXPECT_NE(r.find("rebuild the plugin against SDK 1.x"), std::string::npos) << r;

    r = refusal_for(loader, "broken_newer_minor.so");
    EXPECT_NE(r.find("needs hubflow SDK 1.99 but this host provides only " + host_sdk + "; upgrade hubflow"),
              std::string::npos)
        << r;

    r = refusal_for(loader, "broken_no_marker.so");
    EXPECT_NE(r.find("no hubflow ABI marker"), std::string::npos) << r;
    EXPECT_NE(r.find("HUBFLOW_PLUGIN"), std::string::npos) << r;

    r = refusal_for(loader, "broken_duplicate_type.so");
    EXPECT_NE(r.find("component type 'capture' is already provided by"), std::string::npos) << r;
    EXPECT_NE(r.find("broken_a_good.so"), std::string::npos) << r;

    r = refusal_for(loader, "broken_factory_throws.so");
    EXPECT_NE(r.find("the factory of component 'exploding' threw (constructor exploded on purpose)"), std::string::npos)
        << r;
}

TEST(PluginLoader, RegisteredFactoriesCreateWorkingComponents) {
    ComponentRegistry registry;
    PluginLoader loader(registry);
    ASSERT_TRUE(loader.load_file(fs::path(HUBFLOW_TEST_PLUGIN_DIR) / "hubflow_test_components.so"));
    const ComponentEntry* memory = registry.find("memory");
    ASSERT_NE(memory, nullptr);
    EXPECT_EQ(memory->description.kind, ComponentKind::source);
    EXPECT_EQ(memory->plugin_version, "0.0.1");
    auto component = memory->create();
    EXPECT_NE(dynamic_cast<Source*>(component.get()), nullptr);
}

TEST(PluginLoader, FileThatIsNotALibraryIsRefused) {
    fs::path dir = fs::temp_directory_path() / ("hubflow-loader-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "notes.so") << "this is not a shared library";
    ComponentRegistry registry;
    PluginLoader loader(registry);
    loader.load_directory(dir);
    ASSERT_EQ(loader.refusals().size(), 1u);
    EXPECT_NE(loader.refusals()[0].reason.find("not a shared library"), std::string::npos)
        << loader.refusals()[0].reason;
    fs::remove_all(dir);
}

TEST(PluginLoader, MissingDirectoryIsSkippedUnlessRequired) {
    ComponentRegistry registry;
    PluginLoader loader(registry);
    loader.load_directory("/nonexistent/hubflow/plugins");
    EXPECT_TRUE(loader.refusals().empty());
    loader.load_directory("/nonexistent/hubflow/plugins", true);
    ASSERT_EQ(loader.refusals().size(), 1u);
    EXPECT_NE(loader.refusals()[0].reason.find("does not exist"), std::string::npos);
}
