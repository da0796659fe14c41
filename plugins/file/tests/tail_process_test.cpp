// The real hubflow program: generator -> file makes a JSON Lines file, then tail (follow false) -> file copies
// it. The copy must be byte for byte the same, and the pipeline must end by itself when the file is read.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "process.h"

namespace {

namespace fs = std::filesystem;

const std::string hubflow_bin = std::string(HUBFLOW_BINARY_DIR) + "/bin/hubflow";

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

class TailProcess : public hubflow::test::ScratchDirTest {};

TEST_F(TailProcess, TailToFileCopiesAGeneratedFileExactly) {
    const std::string made = (dir / "made.jsonl").string();
    const std::string copy = (dir / "copy.jsonl").string();
    auto generate = write("generate.json", R"({
      "data_dir": ")" + (dir / "data").string() +
                                               R"(",
      "sources": {"gen": {"type": "generator", "count": 30000, "seed": 3, "incident_ratio": 0.2}},
      "sinks": {"out": {"type": "file", "inputs": ["gen"], "path": ")" +
                                               made + R"("}}
    })");
    auto r = hubflow::test::run_program(hubflow_bin, {"run", generate});
    ASSERT_EQ(r.code, 0) << r.err;

    auto tail = write("tail.json", R"({
      "data_dir": ")" + (dir / "data").string() +
                                       R"(",
      "sources": {"in": {"type": "tail", "path": ")" +
                                       made + R"(", "follow": false}},
      "sinks": {"out": {"type": "file", "inputs": ["in"], "path": ")" +
                                       copy + R"("}}
    })");
    auto validated = hubflow::test::run_program(hubflow_bin, {"validate", tail});
    ASSERT_EQ(validated.code, 0) << validated.err;
    r = hubflow::test::run_program(hubflow_bin, {"run", tail});
    ASSERT_EQ(r.code, 0) << r.err;

    const std::string original = slurp(made);
    ASSERT_EQ(std::count(original.begin(), original.end(), '\n'), 30000);
    EXPECT_TRUE(slurp(copy) == original) << "the copy differs from the generated file";
    EXPECT_NE(r.err.find("[in] received_events=0 emitted_events=30000"), std::string::npos) << r.err;
}

TEST_F(TailProcess, UnknownKeysAndBadValuesAreValidationErrorsNamingNodeAndKey) {
    auto pipeline = write("bad.json", R"({
      "sources": {"in": {"type": "tail", "path": "x.jsonl", "start_at": "middle", "folow": true}},
      "sinks": {"out": {"type": "file", "inputs": ["in"], "path": ")" +
                                          (dir / "o.jsonl").string() + R"("}}
    })");
    auto r = hubflow::test::run_program(hubflow_bin, {"validate", pipeline});
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("folow"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("start_at"), std::string::npos) << r.err;
}

}  // namespace
