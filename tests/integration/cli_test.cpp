// The real hubflow program, run as users run it.

#include <gtest/gtest.h>
#include <signal.h>

#include <Poco/JSON/Parser.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "hubflow/version.h"
#include "process.h"

using namespace hubflow::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string hubflow_bin = std::string(HUBFLOW_BINARY_DIR) + "/bin/hubflow";
const std::string test_plugins = HUBFLOW_TEST_PLUGIN_DIR;

class Cli : public ScratchDirTest {
protected:
    static std::vector<std::string> lines_of(const fs::path& file) {
        std::ifstream in(file);
        std::vector<std::string> out;
        for (std::string line; std::getline(in, line);)
            out.push_back(line);
        return out;
    }

    static bool all_json(const std::vector<std::string>& lines) {
        for (const auto& l : lines) {
            try {
                Poco::JSON::Parser().parse(l);
            } catch (const std::exception&) {
                return false;
            }
        }
        return true;
    }
};

}  // namespace

TEST_F(Cli, VersionAndHelp) {
    auto v = run_program(hubflow_bin, {"--version"});
    EXPECT_EQ(v.code, 0);
    const std::string expected = std::string("hubflow ") + HUBFLOW_VERSION_STRING + " (SDK " +
                                 std::to_string(HUBFLOW_SDK_VERSION_MAJOR) + "." +
                                 std::to_string(HUBFLOW_SDK_VERSION_MINOR) + ")";
    EXPECT_NE(v.out.find(expected), std::string::npos) << v.out;
    auto h = run_program(hubflow_bin, {"--help"});
    EXPECT_EQ(h.code, 0);
    for (const char* word : {"run FILE", "validate FILE", "graph FILE", "plugins", "--plugin-dir", "Exit codes"})
        EXPECT_NE(h.out.find(word), std::string::npos) << word;
}

TEST_F(Cli, UsageErrorsExit64) {
    EXPECT_EQ(run_program(hubflow_bin, {}).code, 64);
    EXPECT_EQ(run_program(hubflow_bin, {"launch"}).code, 64);
    EXPECT_EQ(run_program(hubflow_bin, {"run"}).code, 64);
    EXPECT_EQ(run_program(hubflow_bin, {"--no-such-option"}).code, 64);
    EXPECT_EQ(run_program(hubflow_bin, {"validate", (dir / "missing.json").string()}).code, 66);
}

TEST_F(Cli, PluginsListsEveryComponent) {
    auto r = run_program(hubflow_bin, {"plugins"});
    ASSERT_EQ(r.code, 0) << r.err;
    for (const char* type : {"generator", "file", "console"})
        EXPECT_TRUE(
            std::regex_search(r.out, std::regex(std::string("\n") + type + " +(source|sink) +0\\.1\\.0 +hubflow_")))
            << type << "\n"
            << r.out;
    auto d = run_program(hubflow_bin, {"plugins", "--describe", "file"});
    ASSERT_EQ(d.code, 0) << d.err;
    for (const char* key : {"path", "rotate_bytes", "keep_files", "fsync", "inputs"})
        EXPECT_NE(d.out.find(std::string("  ") + key), std::string::npos) << key << "\n" << d.out;
    EXPECT_EQ(run_program(hubflow_bin, {"plugins", "--describe", "nope"}).code, 64);
}

TEST_F(Cli, BrokenPluginsAreReportedAndOthersStillLoad) {
    auto r = run_program(hubflow_bin, {"plugins", "--plugin-dir", HUBFLOW_TEST_BROKEN_DIR});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("memory"), std::string::npos);
    EXPECT_NE(r.out.find("generator"), std::string::npos);
    EXPECT_NE(r.err.find("broken_wrong_major.so refused"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("broken_factory_throws.so refused"), std::string::npos) << r.err;
}

TEST_F(Cli, RunGeneratorToFileWritesExactlyNWellFormedLines) {
    std::string pipeline = write("p.json", R"({
      "data_dir": ")" + (dir / "data").string() +
                                               R"(",
      "sources": {"gen": {"type": "generator", "count": 25000, "seed": 7, "incident_ratio": 0.1}},
      "sinks": {"out": {"type": "file", "inputs": ["gen"], "path": ")" +
                                               (dir / "out.jsonl").string() + R"("}}
    })");
    auto r = run_program(hubflow_bin, {"run", pipeline});
    ASSERT_EQ(r.code, 0) << r.err;
    auto lines = lines_of(dir / "out.jsonl");
    EXPECT_EQ(lines.size(), 25000u);
    EXPECT_TRUE(all_json(lines));
    EXPECT_EQ(logged_counter(r.err, "out", "received_events"), 25000u) << r.err;
}

TEST_F(Cli, InvalidPipelineReportsEveryProblemAndExits65) {
    std::string pipeline = write("bad.json", R"({
  "sources": {"gen": {"type": "generatr"}},
  "sinks": {
    "out": {"type": "file", "inputs": ["gen", "ghost"], "path": "a.jsonl", "rotate_byte": 5},
    "out2": {"type": "file", "inputs": ["gen"], "path": "a.jsonl", "keep_files": "many"}
  }
})");
    auto r = run_program(hubflow_bin, {"validate", pipeline});
    EXPECT_EQ(r.code, 65);
    EXPECT_NE(r.err.find(pipeline + ":2:"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("node 'gen', key 'type': unknown component type 'generatr' (did you mean 'generator'?)"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("node 'out', key 'rotate_byte': unknown key (did you mean 'rotate_bytes'?)"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("input 'ghost' names no node"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("node 'out2', key 'keep_files': expected an integer, found a string"), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("already claimed by node 'out'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("5 problems found"), std::string::npos) << r.err;

    EXPECT_EQ(run_program(hubflow_bin, {"run", pipeline}).code, 65);
    auto malformed = run_program(hubflow_bin, {"validate", write("m.json", "{\n \"sources\": {\n}")});
    EXPECT_EQ(malformed.code, 65);
    EXPECT_NE(malformed.err.find("m.json:3:2: malformed JSON"), std::string::npos) << malformed.err;
}

TEST_F(Cli, MissingEnvironmentVariableIsNamed) {
    std::string pipeline = write("env.json", R"({"sources": {"gen": {"type": "generator"}},
        "sinks": {"out": {"type": "file", "inputs": ["gen"], "path": "${HUBFLOW_TEST_UNSET_DIR}/x.jsonl"}}})");
    auto r = run_program(hubflow_bin, {"validate", pipeline});
    EXPECT_EQ(r.code, 65);
    EXPECT_NE(r.err.find("node 'out', key 'path': environment variable HUBFLOW_TEST_UNSET_DIR is not set"),
              std::string::npos)
        << r.err;
    auto ok = run_program(hubflow_bin, {"validate", pipeline}, {{"HUBFLOW_TEST_UNSET_DIR", dir.string()}});
    EXPECT_EQ(ok.code, 0) << ok.err;
    EXPECT_NE(ok.out.find("valid (1 sources, 0 filters, 1 sinks)"), std::string::npos);
}

TEST_F(Cli, GraphPrintsDot) {
    std::string pipeline = write("g.json", R"({"sources": {"gen": {"type": "generator"}},
        "sinks": {"out": {"type": "file", "inputs": ["gen"], "path": "x.jsonl"},
                  "screen": {"type": "console", "inputs": ["gen"]}}})");
    auto r = run_program(hubflow_bin, {"graph", pipeline});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("digraph pipeline {"), std::string::npos);
    EXPECT_NE(r.out.find("\"gen\" -> \"out\";"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"gen\" -> \"screen\";"), std::string::npos) << r.out;
}

TEST_F(Cli, SigtermDrainsEverythingAcceptedAndExitsZero) {
    std::string pipeline = write("live.json", R"({
      "data_dir": ")" + (dir / "data").string() + R"(",
      "sources": {"gen": {"type": "generator", "rate": 20000}},
      "sinks": {"out": {"type": "file", "inputs": ["gen"], "path": ")" +
                                                  (dir / "live.jsonl").string() + R"(",
                        "fsync": "never"}}
    })");
    Process p(hubflow_bin, {"run", pipeline});
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (lines_of(dir / "live.jsonl").size() < 1000 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);
    ASSERT_GE(lines_of(dir / "live.jsonl").size(), 1000u) << p.err();
    p.signal(SIGTERM);
    auto code = p.wait(15s);
    ASSERT_TRUE(code.has_value()) << "no exit after SIGTERM: " << p.err();
    EXPECT_EQ(*code, 0) << p.err();
    auto lines = lines_of(dir / "live.jsonl");
    EXPECT_TRUE(all_json(lines));
    // Everything the generator emitted reached the file: nothing accepted was lost in the drain.
    EXPECT_EQ(logged_counter(p.err(), "gen", "emitted_events"), lines.size()) << p.err();
    EXPECT_EQ(logged_counter(p.err(), "out", "received_events"), lines.size()) << p.err();
    EXPECT_NE(p.err().find("SIGTERM: draining"), std::string::npos);
}

TEST_F(Cli, FailingComponentIsNamedAndTheRestOfTheGraphRuns) {
    std::string pipeline = write("fail.json", R"({
      "plugin_paths": [")" + test_plugins + R"("],
      "sources": {"mem": {"type": "memory", "payloads": ["{\"n\":1}", "{\"n\":2}", "{\"boom\":1}"], "repeat": 100,
                          "batch_size": 3}},
      "sinks": {"fragile": {"type": "capture", "inputs": ["mem"], "path": ")" +
                                                  (dir / "fragile.jsonl").string() + R"(",
                            "fail_on": "boom", "fail_with": "the disk is on fire"},
                "sturdy": {"type": "capture", "inputs": ["mem"], "path": ")" +
                                                  (dir / "sturdy.jsonl").string() + R"("}}
    })");
    auto r = run_program(hubflow_bin, {"run", pipeline});
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_NE(r.err.find("[fragile] failed: the disk is on fire"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("finished with failed nodes: fragile"), std::string::npos) << r.err;
    EXPECT_EQ(lines_of(dir / "sturdy.jsonl").size(), 300u);
    EXPECT_EQ(lines_of(dir / "fragile.jsonl").size(), 0u);
}

TEST_F(Cli, SourceThatThrowsIsNamedAndTheHostDrainsTheRest) {
    std::string pipeline = write("throw.json", R"({
      "plugin_paths": [")" + test_plugins + R"("],
      "sources": {"bad": {"type": "memory", "payloads": ["{}"], "repeat": 1000, "throw_after": 500, "batch_size": 10},
                  "good": {"type": "memory", "payloads": ["{}"], "repeat": 700}},
      "sinks": {"all": {"type": "capture", "inputs": ["bad", "good"], "path": ")" +
                                                   (dir / "all.jsonl").string() + R"("}}
    })");
    auto r = run_program(hubflow_bin, {"run", pipeline});
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_NE(r.err.find("[bad] source failed: memory source told to throw after 500 events"), std::string::npos)
        << r.err;
    EXPECT_EQ(lines_of(dir / "all.jsonl").size(), 1200u);
}

TEST_F(Cli, EveryExamplePipelineValidates) {
    fs::path pipelines = fs::path(HUBFLOW_SOURCE_DIR) / "pipelines";
    std::size_t checked = 0;
    for (const auto& entry : fs::directory_iterator(pipelines)) {
        if (entry.path().extension() != ".json") continue;
        auto r = run_program(hubflow_bin, {"validate", entry.path().string()},
                             {{"KS_SITE", "site-1"},
                              {"KS_TOKEN", "token"},
                              {"HOOK_SIGNING_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
                              {"HUBFLOW_OUT", dir.string()}});
        EXPECT_EQ(r.code, 0) << entry.path() << "\n" << r.err;
        ++checked;
    }
    EXPECT_GE(checked, 1u);
}
