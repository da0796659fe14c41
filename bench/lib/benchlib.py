"""Shared pieces of the benchmark cases in bench/cases and of bench/run.

Every case is an executable that takes `--rounds N --json FILE [--build DIR]`, runs its points side by side
(one warm-up, then N runs each), prints a short table and writes one JSON document:

    {"case": str, "title": str, "machine": str, "versions": {tool: version},
     "commands": [str],
     "points": [{"label", "tool", "metric", "unit", "median", "min", "max", "runs": [float]}],
     "summary": [{"what", "unit", "hubflow", "peer", "peer_name", "better": "higher"|"lower"}],
     "notes_md": str}

bench/run collects these into bench/results/REPORT.md and the charts.
"""
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LOCK = "/tmp/hubflow-build.lock"
# Set by bench/run, which holds the build lock around each case it runs (a benchmark is a heavy run): the case's
# own steps must not take it again (flock would wait for its own parent).
LOCK_HELD = "HUBFLOW_BUILD_LOCK_HELD"


def locked(cmd):
    """`cmd` under the build lock, unless this process already runs under it."""
    return cmd if os.environ.get(LOCK_HELD) == "1" else ["flock", LOCK, *cmd]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def busy_cores(seconds=0.5):
    """Average busy cores of the whole machine over `seconds` (from /proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[0] + v[1] + v[2] + v[5] + v[6] + v[7], sum(v[:8])
    b0, t0 = sample()
    time.sleep(seconds)
    b1, t1 = sample()
    return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


class Quiet:
    """The machine may be shared: before a run, wait (within a total budget) until others use < 0.2 core.
    Counts the runs that started on a busy machine, for the report."""

    def __init__(self, budget_s=120.0):
        self.budget = budget_s
        self.runs = 0
        self.busy = 0

    def wait(self):
        self.runs += 1
        deadline = time.monotonic() + min(30.0, self.budget)
        start = time.monotonic()
        while busy_cores() >= 0.2:
            if time.monotonic() >= deadline:
                self.busy += 1
                break
        self.budget = max(0.0, self.budget - (time.monotonic() - start))


def proc_cpu_s(pid):
    """utime + stime of a process, seconds (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def children_cpu_s():
    r = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def point(label, tool, metric, unit, runs):
    runs = [float(x) for x in runs if x is not None]
    if not runs:
        return {"label": label, "tool": tool, "metric": metric, "unit": unit, "median": None, "min": None,
                "max": None, "runs": []}
    return {"label": label, "tool": tool, "metric": metric, "unit": unit, "median": statistics.median(runs),
            "min": min(runs), "max": max(runs), "runs": runs}


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    if abs(v) >= 1e6 and digits == 0:
        return f"{v / 1e6:.2f} M"
    return f"{v:,.{digits}f}"


def fmt_point(p, digits=0):
    if p["median"] is None:
        return "n/a"
    return f"{fmt(p['median'], digits)} ({fmt(p['min'], digits)}–{fmt(p['max'], digits)})"


def points_table(points, digits=0):
    lines = ["| point | tool | metric | median (min–max) | runs |", "|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p['label']} | {p['tool']} | {p['metric']} ({p['unit']}) | {fmt_point(p, digits)} | "
                     f"{len(p['runs'])} |")
    return "\n".join(lines)


class Snapshot:
    """Copies hubflow's program, SDK library, plugins and bench tools (under the build lock) into a temporary
    directory, so that a rebuild during the benchmark does not change or break what is measured."""

    def __init__(self, build):
        build = os.path.abspath(build)
        if not os.access(os.path.join(build, "bin", "hubflow"), os.X_OK):
            sys.exit(f"{build}/bin/hubflow is missing: build first (scripts/build or scripts/test)")
        self.dir = tempfile.mkdtemp(prefix="hubflow-bench-")
        snap = os.path.join(self.dir, "snapshot")
        os.makedirs(os.path.join(snap, "lib"))
        lib = os.path.join(build, "lib")
        sdk = " ".join(shlex.quote(os.path.join(lib, f)) for f in os.listdir(lib) if f.startswith("libhubflow-sdk"))
        subprocess.run(locked(["sh", "-c",
                        f"cp -a {shlex.quote(os.path.join(build, 'bin'))} {shlex.quote(snap)}/ && "
                        f"cp -a {sdk} {shlex.quote(os.path.join(lib, 'hubflow'))} {shlex.quote(snap)}/lib/"]),
                       check=True)
        self.bin = os.path.join(snap, "bin")
        self.hubflow = os.path.join(self.bin, "hubflow")
        self.env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(snap, "lib"))
        self.version = subprocess.run([self.hubflow, "--version"], capture_output=True, text=True,
                                      env=self.env).stdout.strip()

    def tool(self, name):
        path = os.path.join(self.bin, name)
        if not os.access(path, os.X_OK):
            sys.exit(f"{name} is missing from the build: build first (scripts/build)")
        return path

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def ensure_packages(*packages):
    """Installs the Debian packages that are missing (the bench installs its peers itself)."""
    missing = [p for p in packages
               if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                                 text=True).stdout.strip() != "install ok installed"]
    if not missing:
        return
    log(f"installing {' '.join(missing)}")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if os.geteuid() != 0:
        cmd = ["sudo", *cmd]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run((["sudo"] if os.geteuid() != 0 else []) + ["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)


def package_version(package):
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                          text=True).stdout.strip() or "?"


class Processes:
    """Every process a case starts goes through here, so that all are stopped on the way out, errors and
    Ctrl-C included."""

    def __init__(self):
        self.live = []
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def start(self, cmd, cpu=None, nofile=None, **kw):
        """cpu: pin to that core (when there are two or more); nofile: raise the open-file limit to that."""
        def pre():
            if cpu is not None and (os.cpu_count() or 1) >= 2:
                os.sched_setaffinity(0, {cpu})
            if nofile:
                import resource
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                try:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
                except (ValueError, OSError):  # raising the hard limit needs CAP_SYS_RESOURCE
                    resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))
        p = subprocess.Popen(cmd, preexec_fn=pre, **kw)
        self.live.append(p)
        return p

    def stop(self, p, timeout=10):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.live:
            self.live.remove(p)
        return p.returncode

    def stop_all(self):
        for p in list(self.live):
            self.stop(p, timeout=5)


def max_open_files():
    """The open-file limit a child can get: the hard limit, unless this process may raise it."""
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    try:
        with open("/proc/sys/fs/nr_open") as f:
            nr_open = int(f.read())
    except OSError:
        return hard
    probe = subprocess.run([sys.executable, "-c", f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, "
                            f"({nr_open}, {nr_open}))"], capture_output=True)
    return nr_open if probe.returncode == 0 else hard


def write_result(path, result):
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=1)


def dotnet_build(project, out):
    """Release build of a .NET peer (a project under bench/dotnet) into `out`, under the build lock, as the bench
    installs its other peers itself; returns the path of its program."""
    if not shutil.which("dotnet"):
        sys.exit("dotnet (the .NET 10 SDK) is needed for the .NET peers; it is missing from PATH")
    path = os.path.join(ROOT, "bench", "dotnet", project)
    env = dict(os.environ, DOTNET_CLI_TELEMETRY_OPTOUT="1", DOTNET_NOLOGO="1")
    log(f"dotnet build {path} -c Release")
    r = subprocess.run(locked(["dotnet", "build", path, "-c", "Release", "-o", out, "--nologo", "-v", "q"]),
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"dotnet build of bench/dotnet/{project} failed ({r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
    return os.path.join(out, project)


def aspnet_version():
    """The ASP.NET Core runtime the .NET peers run on (the newest installed)."""
    out = subprocess.run(["dotnet", "--list-runtimes"], capture_output=True, text=True).stdout
    found = [line.split()[1] for line in out.splitlines() if line.startswith("Microsoft.AspNetCore.App ")]
    return found[-1] if found else "?"
