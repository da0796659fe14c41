#!/usr/bin/env bash
# Installs the SDK from the build tree into a temporary prefix, builds sdk/template out of tree against it with
# find_package(hubflow-sdk), and checks that the host loads the result and runs it in a pipeline.
set -euo pipefail
build_dir=$1
source_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S "$source_dir/sdk/template" -B "$work/plugin" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/plugin" >/dev/null

host="$work/prefix/bin/hubflow"
"$host" plugins --plugin-dir "$work/plugin" | tee "$work/plugins.txt"
grep -Eq '^sample +filter +1\.0\.0 +hubflow_sample\.so' "$work/plugins.txt"
"$host" plugins --plugin-dir "$work/plugin" --describe sample | grep -q 'every'

cat > "$work/pipeline.json" <<JSON
{
  "sources": {"gen": {"type": "generator", "count": 1000, "seed": 3}},
  "filters": {"half": {"type": "sample", "inputs": ["gen"], "every": 2}},
  "sinks": {"out": {"type": "file", "inputs": ["half"], "path": "$work/out.jsonl"}}
}
JSON
"$host" run "$work/pipeline.json" --plugin-dir "$work/plugin"
lines=$(wc -l < "$work/out.jsonl")
if [ "$lines" -ne 500 ]; then
    echo "expected 500 lines through the out-of-tree sample filter, found $lines" >&2
    exit 1
fi
echo "out-of-tree plugin built against the installed SDK, loaded and run: OK"

# The SDK 1.2 utilities from code built against the installed SDK: their headers install with it, their code
# is in the SDK library.
mkdir -p "$work/utilities"
cat > "$work/utilities/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.20)
project(hubflow_sdk_utilities LANGUAGES CXX)
find_package(hubflow-sdk 1.2 REQUIRED)
add_executable(utilities main.cpp)
target_link_libraries(utilities PRIVATE hubflow::sdk)
CMAKE
cat > "$work/utilities/main.cpp" <<'CPP'
#include <hubflow/backoff.h>
#include <hubflow/dead_letters.h>
#include <hubflow/path_template.h>
#include <hubflow/testing/fake_context.h>

#include <string>

int main(int, char** argv) {
    const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));  // 2023-11-14
    hubflow::testing::FakeContext context("sink");
    hubflow::DeadLetterWriter dead(std::string(argv[1]) + "/%Y/{status}.jsonl", context);
    hubflow::DeadLetterRecord record;
    record.add_integer("status", 400);
    dead.write(record.with_json("event", R"({"seq":1})"), at);
    hubflow::Backoff backoff(std::chrono::milliseconds(10), std::chrono::milliseconds(100), 1);
    return backoff.bound_for(5).count() == 100 &&
                   context.metric_registry.counters["dead_letter_records_written"].value() == 1
               ? 0
               : 1;
}
CPP
cmake -S "$work/utilities" -B "$work/utilities/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/utilities/build" >/dev/null
"$work/utilities/build/utilities" "$work/dead"
if [ "$(cat "$work/dead/2023/400.jsonl")" != '{"status":400,"event":{"seq":1}}' ] ||
    [ "$(stat -c %a "$work/dead/2023")" != 700 ] || [ "$(stat -c %a "$work/dead/2023/400.jsonl")" != 600 ]; then
    echo "the SDK's dead-letter writer, built out of tree, did not write $work/dead/2023/400.jsonl as expected" >&2
    exit 1
fi
echo "SDK utilities (path template, dead letters, backoff) built against the installed SDK: OK"
