// The admin server's live pipeline page (/ui) in headless Chromium, driven by playwright-core: a real
// `hubflow run` (generator -> route -> two file sinks, one behind a disk buffer) with an admin token; the page
// must draw every node and edge of the graph, its counts must rise between two reads, and it must ask for the
// token when none is given. A screenshot is saved under the build folder (test-artifacts/ui.png).
//
// Needs Debian's `chromium` (scripts/bootstrap installs it; HUBFLOW_CHROMIUM overrides the path) and
// HUBFLOW_BIN pointing at the built program; ctest sets both (tests/CMakeLists.txt).
"use strict";
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");
const { waitFor } = require("./support");

const HUBFLOW = process.env.HUBFLOW_BIN;
const CHROMIUM = process.env.HUBFLOW_CHROMIUM || "/usr/bin/chromium";
const BUILD_DIR = process.env.HUBFLOW_BUILD_DIR || (HUBFLOW ? path.dirname(path.dirname(HUBFLOW)) : os.tmpdir());
const TOKEN = "ui-test-token-0123456789";
const NODES = ["gen", "split", "all", "incidents"];

let dir, hubflow, base, browser, stderr = "";

before(async () => {
  assert.ok(HUBFLOW, "HUBFLOW_BIN must point at the built hubflow program");
  assert.ok(fs.existsSync(CHROMIUM), `headless Chromium is required: ${CHROMIUM} is missing (scripts/bootstrap `
    + "installs Debian's chromium; HUBFLOW_CHROMIUM names another)");
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-ui-"));
  const pipeline = {
    data_dir: path.join(dir, "state"),
    admin: { listen: "127.0.0.1:0", token_env: "HUBFLOW_UI_TEST_TOKEN" },
    sources: { gen: { type: "generator", rate: 400, incident_ratio: 0.2, seed: 11 } },
    filters: {
      split: { type: "route", inputs: ["gen"], routes: { incidents: { field: "kind", equals: "incident" } } },
    },
    sinks: {
      all: { type: "file", inputs: ["gen"], path: path.join(dir, "all.jsonl") },
      incidents: {
        type: "file", inputs: ["split.incidents"], path: path.join(dir, "incidents.jsonl"),
        buffer: { type: "disk", max_bytes: 16 * 1024 * 1024 },
      },
    },
  };
  const file = path.join(dir, "pipeline.json");
  fs.writeFileSync(file, JSON.stringify(pipeline));
  hubflow = spawn(HUBFLOW, ["run", file], {
    env: { ...process.env, HUBFLOW_UI_TEST_TOKEN: TOKEN },
    stdio: ["ignore", "ignore", "pipe"],
  });
  hubflow.stderr.on("data", (d) => (stderr += d));
  hubflow.on("exit", (code, signal) => (stderr += `\n[hubflow exited: code ${code}, signal ${signal}]\n`));
  await waitFor(() => /admin server listening on [0-9.]+:[0-9]+/.test(stderr), 10000, "the admin server to listen");
  base = `http://127.0.0.1:${/admin server listening on [0-9.]+:([0-9]+)/.exec(stderr)[1]}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-extensions", "--no-first-run", "--mute-audio",
      "--password-store=basic"],
    env: { ...process.env, HOME: dir, XDG_CONFIG_HOME: path.join(dir, ".config"), XDG_CACHE_HOME: path.join(dir, ".cache") },
    timeout: 30000,
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (hubflow && hubflow.exitCode === null) {
    const exited = new Promise((resolve) => hubflow.on("exit", resolve));
    hubflow.kill("SIGTERM");
    let timer;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 15000)))]);
    clearTimeout(timer);
    if (hubflow.exitCode === null) hubflow.kill("SIGKILL");
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// Opens the page; a failure says what the program logged, since a refused connection usually means it ended.
async function open(page, url) {
  try {
    await page.goto(url);
  } catch (e) {
    throw new Error(`${e.message}\nhubflow's log:\n${stderr.slice(-4000)}`);
  }
}

// What the page drew for each node: name -> {received, sent}.
async function drawnCounts(page) {
  return page.$$eval("svg#graph g.node", (gs) => Object.fromEntries(gs.map((g) => [g.dataset.node, {
    received: Number(g.dataset.received), sent: Number(g.dataset.sent), text: g.textContent,
  }])));
}

test("the page draws every node and edge, and its counts rise", async () => {
  const page = await browser.newPage({ viewport: { width: 1000, height: 420 } });
  const external = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(base)) external.push(r.url());
  });
  await open(page, `${base}/ui#token=${encodeURIComponent(TOKEN)}`);
  assert.equal(new URL(page.url()).hash, "", "the token is taken out of the address bar");
  await page.waitForFunction(() => window.hubflowUi && window.hubflowUi.polls >= 2, null, { timeout: 15000 });
  const first = await drawnCounts(page);
  assert.deepEqual(Object.keys(first).sort(), [...NODES].sort(), "every node of the pipeline is drawn");
  const edges = await page.$$eval("svg#graph path.edge", (ps) => ps.map((p) => `${p.dataset.from}.${p.dataset.output}>${p.dataset.to}`));
  assert.deepEqual(edges.sort(), ["gen.>all", "gen.>split", "split.incidents>incidents"]);
  const polls = await page.evaluate(() => window.hubflowUi.polls);
  await page.waitForFunction((n) => window.hubflowUi.polls >= n + 2, polls, { timeout: 15000 });
  const second = await drawnCounts(page);
  assert.ok(second.gen.sent > first.gen.sent, `the source's count rises: ${first.gen.sent} -> ${second.gen.sent}`);
  for (const n of ["split", "all", "incidents"])
    assert.ok(second[n].received > first[n].received, `${n}: ${first[n].received} -> ${second[n].received}`);
  // Rates come from successive polls: the route shows events in and out each second.
  assert.match(second.split.text, /in [1-9][0-9.k]*\/s · out [1-9][0-9.k]*\/s/, second.split.text);
  // The memory queue's fill and the disk buffer's stored events label the edges, coloured by fill.
  const labels = await page.$$eval("svg#graph text.edge-label", (ts) => ts.map((t) => t.textContent));
  assert.ok(labels.some((l) => /^\d+% \(/.test(l)), labels.join(" | "));
  assert.ok(labels.includes("incidents"), labels.join(" | "));
  assert.ok(labels.some((l) => /disk \d+ events/.test(l)), labels.join(" | "));
  const strokes = await page.$$eval("svg#graph path.edge", (ps) => ps.map((p) => p.getAttribute("stroke")));
  assert.ok(strokes.every((s) => /^var\(--(ok|warn|bad)\)$/.test(s)), strokes.join(" "));
  assert.equal(await page.textContent("#phase"), "running");
  assert.deepEqual(external, [], "the page loads nothing from elsewhere");
  fs.mkdirSync(path.join(BUILD_DIR, "test-artifacts"), { recursive: true });
  await page.screenshot({ path: path.join(BUILD_DIR, "test-artifacts", "ui.png"), fullPage: true });
  await page.close();
});

test("without a token the page asks for one, and draws once it is given", async () => {
  const page = await browser.newPage();
  await open(page, `${base}/ui`);
  await page.waitForSelector("#token-form.shown", { timeout: 10000 });
  assert.match(await page.textContent("#token-why"), /needs a token/);
  assert.equal(await page.$$eval("svg#graph g.node", (gs) => gs.length), 0);
  await page.fill("#token", "not-the-token");
  await page.click("#token-form button");
  await page.waitForFunction(() => /refused/.test(document.getElementById("token-why").textContent), null, { timeout: 10000 });
  await page.fill("#token", TOKEN);
  await page.click("#token-form button");
  await page.waitForFunction((n) => document.querySelectorAll("svg#graph g.node").length === n, NODES.length, { timeout: 10000 });
  assert.equal(await page.isVisible("#token-form"), false);
  await page.close();
});
