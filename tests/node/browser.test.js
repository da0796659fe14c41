// The official @microsoft/signalr client's BROWSER build (dist/browser/signalr.js) against hubflow's signalr_hub
// sink, in headless Chromium: a browser cannot set an Authorization header on a WebSocket, so the client puts the
// token in the `access_token` query parameter, and that is what this test proves works.
//
// How: the test starts `hubflow run` (generator -> signalr_hub on 127.0.0.1:0, as hub.test.js does), serves
// browser/index.html, browser/page.js and signalr.js from a small HTTP server on 127.0.0.1:0, and opens the page in
// `chromium --headless` with the connections to try (hub URL, token or none) in the page's query string. The page
// makes them one after the other with the official client, collects ReceiveMessage events, and POSTs a JSON report
// back to that server. Headless Chromium opens one page per process and starting it is the slow part, so all the
// cases share one Chromium run (killed, with its whole process group, as soon as the report is in); each test
// asserts on its own case.
//
// Needs Debian's `chromium` on PATH (or HUBFLOW_CHROMIUM=/path/to/chromium); fails when it is missing unless
// HUBFLOW_SKIP_BROWSER=1. Run by ctest (see tests/CMakeLists.txt) with HUBFLOW_BIN pointing at the built program.
"use strict";
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const http = require("node:http");
const signalR = require("@microsoft/signalr");
const { waitFor, mintToken } = require("./support");

const HUBFLOW = process.env.HUBFLOW_BIN;
const SKIP = process.env.HUBFLOW_SKIP_BROWSER === "1" ? "HUBFLOW_SKIP_BROWSER=1" : false;
const SECRET = "hubflow-browser-secret-0123456789abcdef";
const SITE = "site-a"; // the browser's site
const OTHER_SITE = "site-b"; // watched from Node, to check that none of its events reach the browser
const PAGE_DIR = path.join(__dirname, "browser");
const SIGNALR_BROWSER_JS = path.join(__dirname, "node_modules", "@microsoft", "signalr", "dist", "browser", "signalr.js");

let dir, hub, hubBase, pageServer, pageBase;
const pendingReports = new Map(); // run id -> resolve(report)
let runs = 0;

function findChromium() {
  if (process.env.HUBFLOW_CHROMIUM) return process.env.HUBFLOW_CHROMIUM;
  for (const name of ["chromium", "chromium-browser"]) {
    for (const d of (process.env.PATH || "").split(path.delimiter)) {
      if (!d) continue;
      const candidate = path.join(d, name);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        return candidate;
      } catch {
        // not here
      }
    }
  }
  return null;
}

function token(sub, { secret = SECRET } = {}) {
  return mintToken(HUBFLOW, secret, sub);
}

function withDeadline(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

function startHub() {
  return new Promise((resolve, reject) => {
    const rolesFile = path.join(dir, "roles.json");
    fs.writeFileSync(rolesFile, JSON.stringify({
      [SITE]: { browser: "site_admin" },
      [OTHER_SITE]: { browser: "site_admin" },
    }));
    const pipeline = {
      data_dir: path.join(dir, "state"),
      sources: {
        ks: { type: "generator", rate: 400, sites: [SITE, OTHER_SITE], users_per_site: 3, incident_ratio: 0.3, seed: 7 },
      },
      sinks: {
        hub: {
          type: "signalr_hub",
          inputs: ["ks"],
          listen: "127.0.0.1:0",
          auth: { hs256_secret: SECRET },
          roles: { file: rolesFile },
          ping_interval_s: 1,
        },
      },
    };
    const file = path.join(dir, "hub.json");
    fs.writeFileSync(file, JSON.stringify(pipeline));
    const child = spawn(HUBFLOW, ["run", file], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    child.log = () => log;
    child.stderr.on("data", (d) => {
      log += d;
      const m = /on ws:\/\/([0-9.]+:\d+)/.exec(log);
      if (m && !hubBase) {
        hubBase = `http://${m[1]}`;
        resolve(child);
      }
    });
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`hubflow exited (${code}) before listening:\n${log}`)));
  });
}

// Serves the page, its script and the official browser build, and takes the page's reports.
function startPageServer() {
  const files = {
    "/": [path.join(PAGE_DIR, "index.html"), "text/html; charset=utf-8"],
    "/index.html": [path.join(PAGE_DIR, "index.html"), "text/html; charset=utf-8"],
    "/page.js": [path.join(PAGE_DIR, "page.js"), "text/javascript; charset=utf-8"],
    "/signalr.js": [SIGNALR_BROWSER_JS, "text/javascript; charset=utf-8"],
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://page.invalid");
    if (req.method === "POST" && url.pathname === "/report") {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        let report;
        try {
          report = JSON.parse(body);
        } catch {
          res.writeHead(400).end("not JSON\n");
          return;
        }
        res.writeHead(204).end();
        const deliver = pendingReports.get(url.searchParams.get("run"));
        if (deliver) deliver(report);
      });
      return;
    }
    const file = req.method === "GET" && files[url.pathname];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    fs.readFile(file[0], (err, data) => {
      if (err) {
        res.writeHead(500).end(String(err));
        return;
      }
      res.writeHead(200, { "Content-Type": file[1], "Cache-Control": "no-store" }).end(data);
    });
  });
  return new Promise((resolve, reject) => {
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

// Processes whose command line mentions `text` (Linux /proc), to find what a Chromium run left behind.
function processesMentioning(text) {
  const pids = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, "latin1").includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

// Opens the page in a fresh headless Chromium, returns the report the page POSTs, and always kills Chromium.
// (Headless Chromium takes one URL per process.)
async function runPage(query, timeoutMs = 20000) {
  const run = String(++runs);
  // Chromium's profile, and its HOME (crash database, caches), are this run's own.
  const home = fs.mkdtempSync(path.join(dir, "chromium-"));
  const url = `${pageBase}/index.html?${new URLSearchParams({ run, ...query })}`;
  const reported = new Promise((resolve) => pendingReports.set(run, resolve));
  const child = spawn(CHROMIUM, [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-dev-shm-usage", "--no-default-browser-check", "--mute-audio", "--password-store=basic",
    `--user-data-dir=${path.join(home, "profile")}`, url,
  ], {
    detached: true, // its own process group, killed as a whole at the end
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, HOME: home, XDG_CONFIG_HOME: path.join(home, ".config"), XDG_CACHE_HOME: path.join(home, ".cache") },
  });
  let output = "";
  const keep = (d) => (output = (output + d).slice(-8000));
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => resolve(`exited (code ${code}, signal ${signal})`));
    child.on("error", (e) => resolve(`failed to start: ${e.message}`));
  });
  let timer;
  try {
    const outcome = await Promise.race([
      reported.then((report) => ({ report })),
      exited.then((how) => ({ failure: `chromium ${how} before the page reported` })),
      new Promise((resolve) => (timer = setTimeout(() => resolve({ failure: `no report from the page within ${timeoutMs} ms` }), timeoutMs))),
    ]);
    if (outcome.report) return outcome.report;
    throw new Error(`${outcome.failure}\npage: ${pageBase}/index.html?run=${run}&cases=…\nchromium output (tail):\n${output}`);
  } finally {
    clearTimeout(timer);
    pendingReports.delete(run);
    if (child.pid) {
      try {
        process.kill(-child.pid, "SIGKILL"); // the browser and its zygote, renderer, GPU and utility processes
      } catch {
        // already gone
      }
      await withDeadline(exited, 5000, "chromium to exit").catch(() => {});
    }
    // Chromium's crash handlers run in sessions of their own and leave by themselves once the browser is gone;
    // wait for that (they are recognised by this run's HOME in their command line), then kill any straggler.
    await waitFor(() => processesMentioning(home).length === 0, 5000, "chromium's helpers to exit").catch(() => {
      for (const pid of processesMentioning(home)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
    });
    fs.rmSync(home, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
}

const CHROMIUM = SKIP ? null : findChromium();

before(async () => {
  if (SKIP) return;
  if (!CHROMIUM) {
    throw new Error("headless Chromium is required by this test but `chromium` is not on PATH: install Debian's "
      + "`chromium` package (scripts/bootstrap does), point HUBFLOW_CHROMIUM at a Chromium binary, "
      + "or set HUBFLOW_SKIP_BROWSER=1 to skip the browser test");
  }
  assert.ok(HUBFLOW, "HUBFLOW_BIN must point at the built hubflow program");
  assert.ok(fs.existsSync(SIGNALR_BROWSER_JS), `the official client's browser build is missing: ${SIGNALR_BROWSER_JS} (npm ci in tests/node)`);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-browser-"));
  pageServer = await startPageServer();
  pageBase = `http://127.0.0.1:${pageServer.address().port}`;
  hub = await startHub();
});

after(async () => {
  if (hub && hub.exitCode === null && hub.signalCode === null) {
    const gone = new Promise((resolve) => hub.on("exit", resolve));
    hub.kill("SIGTERM");
    await withDeadline(gone, 5000, "hubflow to stop").catch(() => hub.kill("SIGKILL"));
  }
  if (pageServer) {
    pageServer.closeAllConnections();
    await new Promise((resolve) => pageServer.close(resolve));
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
});

const CASES = {
  token: "with a token",
  none: "without a token",
  forged: "with a token signed with another secret",
};

// The one Chromium run, made by the first test that needs it: { results: name -> page result, otherEntries }.
let browserRun;
function browserResults() {
  browserRun ??= (async () => {
    const hub = `${hubBase}/v1/hub/entries?site_id=${SITE}`;
    const good = token("browser");
    const forged = token("browser", { secret: "another-secret-of-enough-length-0123" });
    // Watch the other site from Node meanwhile: the browser must see none of its events.
    const other = new signalR.HubConnectionBuilder()
      .withUrl(`${hubBase}/v1/hub/entries?site_id=${OTHER_SITE}`, {
        accessTokenFactory: () => good,
        skipNegotiation: true,
        transport: signalR.HttpTransportType.WebSockets,
      })
      .configureLogging(signalR.LogLevel.None)
      .build();
    const otherEntries = [];
    other.on("ReceiveMessage", (m) => otherEntries.push(JSON.parse(m)));
    await other.start();
    let report;
    try {
      report = await runPage({
        cases: JSON.stringify([
          { name: CASES.token, hub, token: good, want: 20, wait_ms: 10000 },
          { name: CASES.none, hub, want: 1, wait_ms: 3000 },
          { name: CASES.forged, hub, token: forged, want: 1, wait_ms: 3000 },
        ]),
      }, 30000);
    } finally {
      await other.stop();
    }
    assert.equal(report.error, null, `the page failed: ${JSON.stringify(report, null, 2)}`);
    assert.match(report.userAgent, /HeadlessChrome/);
    const results = new Map(report.results.map((r) => [r.name, r]));
    return { results, otherEntries, tokens: { good, forged } };
  })();
  return browserRun;
}

function describe(result) {
  return `page result: ${JSON.stringify({ ...result, messages: `${result.messages.length} messages` }, null, 2)}`;
}

test("the browser build receives its site's entries, with the token in the access_token query parameter", { skip: SKIP }, async () => {
  const { results, otherEntries, tokens } = await browserResults();
  const result = results.get(CASES.token);
  const why = describe(result);
  assert.equal(result.error, null, why);
  assert.equal(result.started, true, why);

  // The browser build put the token in the query string of the WebSocket URL (nothing else can carry it).
  assert.equal(result.socketUrls.length, 1, why);
  const socketUrl = new URL(result.socketUrls[0]);
  assert.equal(socketUrl.protocol, "ws:", why);
  assert.equal(socketUrl.host, new URL(hubBase).host, why);
  assert.equal(socketUrl.pathname, "/v1/hub/entries", why);
  assert.equal(socketUrl.searchParams.get("site_id"), SITE, why);
  assert.equal(socketUrl.searchParams.get("access_token"), tokens.good, why);

  assert.ok(result.messages.length >= 5, `only ${result.messages.length} entries reached the browser\n${why}`);
  const entries = result.messages.map((m) => {
    assert.equal(typeof m, "string", "ReceiveMessage carries the event as a JSON string");
    return JSON.parse(m);
  });
  for (const e of entries) {
    assert.ok("event_category" in e && !("type" in e), `not an entry: ${JSON.stringify(e)}`);
    assert.equal(typeof e.lock_id, "string", `an entry without a lock: ${JSON.stringify(e)}`);
  }
  assert.ok(otherEntries.length >= 5, `only ${otherEntries.length} entries of ${OTHER_SITE} reached the Node client`);
  const otherLocks = new Set(otherEntries.map((e) => e.lock_id));
  const otherIds = new Set(otherEntries.map((e) => e.id));
  for (const e of entries) {
    assert.ok(!otherIds.has(e.id), `an event of ${OTHER_SITE} reached the browser: ${JSON.stringify(e)}`);
    assert.ok(!otherLocks.has(e.lock_id), `the browser saw a lock of ${OTHER_SITE}: ${JSON.stringify(e)}`);
  }
});

test("without a token the browser build fails to start and reports the error", { skip: SKIP }, async () => {
  const result = (await browserResults()).results.get(CASES.none);
  const why = describe(result);
  assert.equal(result.started, false, why);
  assert.equal(result.messages.length, 0, why);
  assert.match(String(result.error), /WebSocket failed to connect/, why);
  assert.ok(result.logs.some((l) => /Failed to start the connection/.test(l)), why);
  assert.equal(result.socketUrls.length, 1, why);
  assert.equal(new URL(result.socketUrls[0]).searchParams.has("access_token"), false, why);
});

test("a query token signed with another secret is refused too", { skip: SKIP }, async () => {
  const { results, tokens } = await browserResults();
  const result = results.get(CASES.forged);
  const why = describe(result);
  assert.equal(result.started, false, why);
  assert.equal(result.messages.length, 0, why);
  assert.match(String(result.error), /WebSocket failed to connect/, why);
  assert.equal(result.socketUrls.length, 1, why);
  assert.equal(new URL(result.socketUrls[0]).searchParams.get("access_token"), tokens.forged, why);
});
