#!/usr/bin/env bash
# Builds the Debian packages from the build tree with CPack, unpacks them with dpkg-deb -x into a scratch root
# (nothing is installed on this machine), checks what they hold and runs the unpacked program from there:
# --version, --help, plugins, a generator -> file pipeline, the shipped /etc/hubflow/pipeline.json as the unit
# would run it, and the template plugin built against the unpacked hubflow-dev; last, dpkg installs, reinstalls,
# removes and purges them in a root and database of their own.
# Usage: package_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build_dir=$(cd "$1" && pwd)
source_dir=$(cd "$2" && pwd)
work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "package test: $*" >&2
    exit 1
}

# --- build the packages ---------------------------------------------------------------------------------------
command -v dpkg-shlibdeps >/dev/null || fail "dpkg-shlibdeps not found: install dpkg-dev (scripts/bootstrap does)"
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' \
    "$build_dir/CPackConfig.cmake" | head -1)
[ -n "$version" ] || fail "no CPACK_PACKAGE_VERSION in $build_dir/CPackConfig.cmake"
(cd "$work" && cpack --config "$build_dir/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" 2>&1) ||
    { cat "$work/cpack.log" >&2; fail "cpack failed (log above)"; }
arch=$(dpkg --print-architecture)
deb="$work/out/hubflow_${version}-1_${arch}.deb"
dev="$work/out/hubflow-dev_${version}-1_${arch}.deb"
[ -f "$deb" ] || fail "no $(basename "$deb") in $(ls "$work/out")"
[ -f "$dev" ] || fail "no $(basename "$dev") in $(ls "$work/out")"

# --- control data ---------------------------------------------------------------------------------------------
field() { dpkg-deb -f "$1" "$2"; }
[ "$(field "$deb" Package)" = hubflow ] || fail "runtime package is named '$(field "$deb" Package)'"
[ "$(field "$dev" Package)" = hubflow-dev ] || fail "dev package is named '$(field "$dev" Package)'"
depends=$(field "$deb" Depends)
# Found by dpkg-shlibdeps in the program's and plugins' ELF files, not written by hand.
for lib in libc6 libstdc++6 libsystemd0 libpocofoundation80 libpocoutil80 libpoconet80 librdkafka1 libdeflate0; do
    grep -q "\b$lib\b" <<<"$depends" || fail "hubflow's Depends lacks $lib: $depends"
done
grep -qi hubflow <<<"$depends" && fail "hubflow depends on a hubflow package (the SDK library is inside it): $depends"
grep -qF "hubflow (= ${version}-1)" <<<"$(field "$dev" Depends)" ||
    fail "hubflow-dev must depend on hubflow of its own version: $(field "$dev" Depends)"
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/hubflow/pipeline.json "$work/control/conffiles" || fail "/etc/hubflow/pipeline.json is no conffile"

# --- files and permissions ------------------------------------------------------------------------------------
dpkg-deb -c "$deb" >"$work/runtime.list"
dpkg-deb -c "$dev" >"$work/dev.list"
awk '$2 != "root/root" { bad = 1; print "not root/root: " $0 } END { exit bad }' "$work/runtime.list" "$work/dev.list" ||
    fail "files must belong to root"
awk 'substr($1, 9, 1) == "w" && $1 !~ /^l/ { bad = 1; print "world-writable: " $0 } END { exit bad }' \
    "$work/runtime.list" "$work/dev.list" || fail "no file may be world-writable"
mode_of() { awk -v p="./$2" '$6 == p { print $1 }' "$1"; }
expect_mode() {
    local got
    got=$(mode_of "$1" "$2")
    [ "$got" = "$3" ] || fail "$2 in $(basename "$1" .list): mode '$got', expected '$3'"
}
expect_mode "$work/runtime.list" usr/bin/hubflow -rwxr-xr-x
for p in generator file console route dedupe webhook kafka signalr; do
    expect_mode "$work/runtime.list" "usr/lib/hubflow/hubflow_$p.so" -rw-r--r--
done
expect_mode "$work/runtime.list" "usr/lib/libhubflow-sdk.so.$version" -rw-r--r--
grep -q ' ./usr/lib/libhubflow-sdk.so.1 -> ' "$work/runtime.list" || fail "no libhubflow-sdk.so.1 link in hubflow"
expect_mode "$work/runtime.list" usr/lib/systemd/system/hubflow.service -rw-r--r--
expect_mode "$work/runtime.list" usr/share/man/man1/hubflow.1 -rw-r--r--
expect_mode "$work/runtime.list" etc/hubflow/pipeline.json -rw-r--r--
grep -q ' ./usr/lib/libhubflow-sdk.so -> ' "$work/dev.list" || fail "no libhubflow-sdk.so link in hubflow-dev"
for f in usr/include/hubflow/plugin.h usr/include/hubflow/component.h usr/include/hubflow/testing/fake_context.h \
    usr/lib/cmake/hubflow-sdk/hubflow-sdk-config.cmake usr/lib/cmake/hubflow-sdk/hubflow-sdk-config-version.cmake \
    usr/lib/cmake/hubflow-sdk/hubflow-sdk-targets.cmake usr/lib/cmake/hubflow-sdk/hubflow-plugin.cmake \
    usr/share/hubflow-sdk/template/CMakeLists.txt usr/share/hubflow-sdk/template/src/sample_filter.cpp; do
    expect_mode "$work/dev.list" "$f" -rw-r--r--
done
# Each file in exactly one package, and nothing from the build or test trees.
cat "$work/runtime.list" "$work/dev.list" | awk '$1 !~ /^d/ { print $6 }' | sort | uniq -d >"$work/dups"
[ ! -s "$work/dups" ] || fail "files in both packages: $(cat "$work/dups")"
if grep -E '_test|bench_|/usr/local/|\.a$' "$work/runtime.list" "$work/dev.list"; then
    fail "test, benchmark, static or /usr/local files in the packages (above)"
fi

root="$work/root"
mkdir "$root"
dpkg-deb -x "$deb" "$root"
dpkg-deb -x "$dev" "$root"
hubflow="$root/usr/bin/hubflow"
# Only what the packages hold: no plugin path from the environment.
unset HUBFLOW_PLUGIN_PATH LD_LIBRARY_PATH

# --- the unit -------------------------------------------------------------------------------------------------
unit="$root/usr/lib/systemd/system/hubflow.service"
grep -qx 'ExecStart=/usr/bin/hubflow run /etc/hubflow/pipeline.json' "$unit" || fail "ExecStart: $(grep ExecStart= "$unit")"
for line in Type=notify NotifyAccess=main 'ExecReload=/bin/kill -HUP $MAINPID' StateDirectory=hubflow DynamicUser=yes ProtectSystem=strict \
    ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes CapabilityBoundingSet= \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' WantedBy=multi-user.target; do
    grep -qxF "$line" "$unit" || fail "the unit lacks '$line'"
done
grep -q '"data_dir": "${STATE_DIRECTORY' "$root/etc/hubflow/pipeline.json" ||
    fail "the shipped pipeline must keep its state in \$STATE_DIRECTORY"
if command -v systemd-analyze >/dev/null; then
    # The same unit with the program and pipeline where they were unpacked (verify checks that ExecStart can run,
    # and with MANPATH that Documentation=man:hubflow(1) opens). Every line it prints is a problem (an unknown
    # key is only a warning to it).
    sed -e "s|/usr/bin/hubflow|$hubflow|; s|/etc/hubflow/pipeline.json|$root/etc/hubflow/pipeline.json|" "$unit" \
        >"$work/hubflow.service"
    man_check=--man=yes
    command -v man >/dev/null || { man_check=--man=no; echo "package test: no man here; Documentation= unchecked"; }
    if ! MANPATH="$root/usr/share/man" SYSTEMD_LOG_COLOR=0 systemd-analyze verify $man_check "$work/hubflow.service" \
        >"$work/verify.log" 2>&1 || [ -s "$work/verify.log" ]; then
        cat "$work/verify.log" >&2
        fail "systemd-analyze verify rejects the unit (above)"
    fi
    # Its sandbox as systemd scores it (0 = locked down, 10 = exposed); 1.2 when this was written.
    if ! MANPATH="$root/usr/share/man" systemd-analyze security --offline=yes --threshold=20 --no-pager \
        "$work/hubflow.service" >"$work/security.log" 2>&1; then
        grep -E 'Overall|^✗' "$work/security.log" >&2 || cat "$work/security.log" >&2
        fail "the unit's exposure level is above 2.0 (systemd-analyze security)"
    fi
else
    # Without systemd: every line is a comment, a [Section] or Key=value with a key systemd knows here.
    awk '/^(#|$)/ || /^\[(Unit|Service|Install)\]$/ { next }
         /^(Description|Documentation|After|Wants|Type|NotifyAccess|ExecStart|ExecReload|EnvironmentFile|Restart|RestartSec|RestartPreventExitStatus|TimeoutStopSec|DynamicUser|StateDirectory|StateDirectoryMode|ConfigurationDirectory|WorkingDirectory|UMask|LimitNOFILE|Protect[A-Za-z]+|Private[A-Za-z]+|NoNewPrivileges|CapabilityBoundingSet|AmbientCapabilities|Restrict[A-Za-z]+|LockPersonality|MemoryDenyWriteExecute|ProcSubset|RemoveIPC|SystemCall[A-Za-z]+|WantedBy)=/ { next }
         { bad = 1; print "unit line " NR ": " $0 } END { exit bad }' "$unit" || fail "unknown lines in the unit"
    echo "package test: no systemd-analyze here; the unit's keys were checked by a simple parse"
fi

# --- the unpacked program -------------------------------------------------------------------------------------
# Which libhubflow-sdk.so.1 an ELF file loads, as a real path.
sdk_of() { realpath "$(ldd "$1" | awk '$1 == "libhubflow-sdk.so.1" { print $3 }')"; }
[ "$(sdk_of "$hubflow")" = "$root/usr/lib/libhubflow-sdk.so.$version" ] ||
    fail "the program does not find the unpacked SDK library through its RPATH: $(ldd "$hubflow" | grep hubflow)"
[ "$(sdk_of "$root/usr/lib/hubflow/hubflow_file.so")" = "$root/usr/lib/libhubflow-sdk.so.$version" ] ||
    fail "a plugin does not find the unpacked SDK library through its RPATH"
if ldd "$hubflow" "$root"/usr/lib/hubflow/*.so | grep 'not found'; then fail "unresolved libraries (above)"; fi

[ "$("$hubflow" --version)" = "hubflow $version (SDK $(sed -n 's/^#define HUBFLOW_SDK_VERSION_MAJOR //p' \
    "$root/usr/include/hubflow/version.h").$(sed -n 's/^#define HUBFLOW_SDK_VERSION_MINOR //p' \
    "$root/usr/include/hubflow/version.h"))" ] || fail "--version says '$("$hubflow" --version)'"
"$hubflow" --help >"$work/help.txt"
grep -q '^Runs event pipelines' "$work/help.txt" || fail "--help: $(head -3 "$work/help.txt")"
# The man page keeps up with --help: each command and each long option --help lists is in it.
man_page="$root/usr/share/man/man1/hubflow.1"
missing=
for c in $(sed -n '/^Commands:/,/^Options:/s/^  \([a-z][a-z-]*\) .*/\1/p' "$work/help.txt"); do
    grep -q "^\.\(It \)\?Cm $c\b" "$man_page" || missing+=" command '$c'"
done
for o in $(grep -o -- '--[a-z][a-z-]*' "$work/help.txt" | sort -u); do
    grep -qF "Fl \\${o#-}" "$man_page" || missing+=" option '$o'"
done
[ -z "$missing" ] || fail "packaging/hubflow.1 does not describe:$missing (it must follow --help)"
[ "$(sed -n '/^Commands:/,/^Options:/p' "$work/help.txt" | grep -c '^  [a-z]')" -ge 5 ] ||
    fail "found too few commands in --help to compare with the man page"
if command -v groff >/dev/null; then
    groff -mandoc -ww -z "$man_page" 2>"$work/groff.log" && [ ! -s "$work/groff.log" ] ||
        { cat "$work/groff.log" >&2; fail "groff warns about the man page (above)"; }
fi

"$hubflow" plugins >"$work/plugins.txt"
for t in generator file tail console route dedupe webhook kafka signalr signalr_hub; do
    grep -q "^$t " "$work/plugins.txt" || fail "'hubflow plugins' from the unpacked root lacks $t"
done
"$hubflow" plugins --describe generator | grep -q "$root/usr/lib/hubflow/hubflow_generator.so" ||
    fail "the generator plugin was not loaded from $root/usr/lib/hubflow"

cat >"$work/pipeline.json" <<JSON
{
  "data_dir": "$work/data",
  "sources": {"gen": {"type": "generator", "count": 1000, "seed": 11}},
  "sinks": {"out": {"type": "file", "inputs": ["gen"], "path": "$work/out.jsonl"}}
}
JSON
"$hubflow" validate "$work/pipeline.json" >/dev/null
"$hubflow" run "$work/pipeline.json" 2>"$work/run.log" || { cat "$work/run.log" >&2; fail "the run failed"; }
[ "$(wc -l <"$work/out.jsonl")" -eq 1000 ] || fail "expected 1000 lines, found $(wc -l <"$work/out.jsonl")"
[ "$(grep -c '^{"id":".*"utc_date_time":.*}$' "$work/out.jsonl")" -eq 1000 ] || fail "the lines are not KS events: $(head -1 "$work/out.jsonl")"

# The shipped pipeline as the unit runs it: STATE_DIRECTORY set, until SIGTERM; it must archive events and drain.
export STATE_DIRECTORY="$work/state"
mkdir -m 0700 "$STATE_DIRECTORY"
"$hubflow" validate "$root/etc/hubflow/pipeline.json" >/dev/null
"$hubflow" run "$root/etc/hubflow/pipeline.json" 2>"$work/service.log" &
pid=$!
deadline=$((SECONDS + 30))
until cat "$STATE_DIRECTORY"/archive/*/*.jsonl 2>/dev/null | grep -q '^{'; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/service.log" >&2; fail "the shipped pipeline exited early"; }
    [ $SECONDS -lt $deadline ] || { cat "$work/service.log" >&2; fail "the shipped pipeline wrote nothing in 30 s"; }
    sleep 0.1
done
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
[ $status -eq 0 ] || { cat "$work/service.log" >&2; fail "the shipped pipeline exited $status after SIGTERM"; }
unset STATE_DIRECTORY

# --- hubflow-dev: the template plugin builds against the unpacked SDK and runs in the unpacked program ----------
cmake -S "$root/usr/share/hubflow-sdk/template" -B "$work/plugin" -G Ninja -DCMAKE_PREFIX_PATH="$root/usr" \
    -DCMAKE_BUILD_TYPE=Release >"$work/plugin.log" 2>&1 &&
    cmake --build "$work/plugin" >>"$work/plugin.log" 2>&1 ||
    { cat "$work/plugin.log" >&2; fail "the template plugin does not build against hubflow-dev"; }
grep -q "$root/usr/lib/cmake/hubflow-sdk" "$work/plugin/CMakeCache.txt" || fail "the template found another SDK"
"$hubflow" plugins --plugin-dir "$work/plugin" | grep -Eq '^sample +filter' ||
    fail "the unpacked program does not load the template plugin"

# --- dpkg: install, reinstall over an edited conffile, remove and purge, in a root of its own --------------------
# (Its own database and files; maintainer scripts run outside a chroot and do nothing under DPKG_ROOT.)
dpkg_root="$work/dpkg-root"
mkdir -p "$dpkg_root/var/lib/dpkg/info" "$dpkg_root/var/lib/dpkg/updates"
touch "$dpkg_root/var/lib/dpkg/status"
dpkg_in() {
    dpkg --root="$dpkg_root" --log=/dev/null --force-depends --force-script-chrootless --force-not-root "$@" \
        >>"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg $* failed (log above)"; }
}
status_of() { dpkg-query --admindir="$dpkg_root/var/lib/dpkg" -W -f='${Status}' "$1" 2>/dev/null || true; }
dpkg_in -i "$deb" "$dev"
[ "$(status_of hubflow)" = "install ok installed" ] || fail "hubflow after dpkg -i: '$(status_of hubflow)'"
[ "$(status_of hubflow-dev)" = "install ok installed" ] || fail "hubflow-dev after dpkg -i: '$(status_of hubflow-dev)'"
[ -x "$dpkg_root/usr/bin/hubflow" ] || fail "dpkg -i left no usr/bin/hubflow"
echo '{"edited": true}' >"$dpkg_root/etc/hubflow/pipeline.json"
dpkg_in -i "$deb"
grep -q edited "$dpkg_root/etc/hubflow/pipeline.json" || fail "reinstalling hubflow replaced an edited pipeline"
dpkg_in -r hubflow-dev hubflow
left=$(cd "$dpkg_root" && find . ! -type d ! -path './var/lib/dpkg/*' | sort | tr '\n' ' ')
[ "$left" = "./etc/hubflow/pipeline.json " ] || fail "after dpkg -r expected only the conffile, found: $left"
dpkg_in -P hubflow
[ ! -e "$dpkg_root/etc/hubflow/pipeline.json" ] || fail "dpkg -P left /etc/hubflow/pipeline.json"

echo "package test: $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) and $(basename "$dev") built, unpacked and run: OK"
