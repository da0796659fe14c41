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
