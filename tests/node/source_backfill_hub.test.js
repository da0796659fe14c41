// The `signalr` source's backfill against hubflow's own hub and history, all real processes: a generator at a
// steady rate -> signalr_hub (with history) in one process; signalr (with backfill) -> file in another. The
// consumer is killed with SIGKILL and restarted, the hub frozen with SIGSTOP past the consumer's server timeout,
// then the hub killed with SIGKILL and restarted on the same port and data_dir. Afterwards the consumer's file
// holds every event the hub's history holds for the site over the run, each once, except repeats of what was in
// flight when the consumer itself was killed, which the consumer counts (backfill_replayed).
"use strict";
const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const http = require("node:http");
const os = require("node:os");
const path = require("node:path");
const { waitFor, mintToken } = require("./support");
const { freePort, hubflowRunner, stop, lines } = require("./reference_hub");

const HUBFLOW = process.env.HUBFLOW_BIN;
const SECRET = "hubflow-test-secret-0123456789abcdef";
const SITE = "site-bf";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-backfill-hub-"));
const hubflow = hubflowRunner(HUBFLOW, dir);

after(() => {
  hubflow.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

function get(url, headers) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers, agent: false }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    }).on("error", reject);
  });
}

// Every event of the site's entries in the hub's history, oldest first, through all its pages.
async function historyOf(base, token) {
  const events = [];
  let continuation;
  for (;;) {
    const headers = { Authorization: `Bearer ${token}` };
    if (continuation) headers["CLP-Continuation-Token"] = continuation;
    const r = await get(`${base}/v1.1/sites/${SITE}/entries?$top=1000`, headers);
    assert.equal(r.status, 200, r.body);
    const page = JSON.parse(r.body);
    events.push(...page.items);
    if (page.continuation_token === undefined || page.continuation_token === null) return events;
    continuation = page.continuation_token;
  }
}

const count = (text, re) => (text.match(re) || []).length;

test("kill -9 of the consumer, a frozen hub and a killed hub: the file ends up with every event the hub broadcast", async (t) => {
  const roles = path.join(dir, "roles.json");
  fs.writeFileSync(roles, JSON.stringify({ [SITE]: { admin: "site_admin" } }));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const hubPipeline = (seed) => ({
    data_dir: path.join(dir, "hub-state"),
    sources: { g: { type: "generator", sites: [SITE], seed, rate: 50, incident_ratio: 0 } },
    sinks: {
      hub: { type: "signalr_hub", inputs: ["g"], listen: `127.0.0.1:${port}`, auth: { hs256_secret: SECRET },
             roles: { file: roles },
             history: { max_events: 100000, max_age_s: 3600, delay_ms: 1000, max_requests_per_s: 20 } },
    },
  });
  const token = mintToken(HUBFLOW, SECRET, "admin");
  let hub = hubflow.run("hub-1", hubPipeline(1));
  await waitFor(() => /on ws:/.test(hub.text), 10000, "the hub to listen");

  const out = path.join(dir, "consumer");
  const consumerPipeline = {
    data_dir: path.join(dir, "consumer-state"),
    sources: {
      ks: { type: "signalr", url: `ws://127.0.0.1:${port}/v1/hub/entries?site_id=${SITE}`, auth: { token },
            reconnect: { initial_ms: 100, max_ms: 500 }, ping_interval_s: 0.5, server_timeout_s: 2,
            handshake_timeout_s: 2,
            backfill: { url: base, page_size: 100, overlap_s: 2, settle_ms: 2000, max_requests_per_s: 10 } },
    },
    sinks: { out: { type: "file", inputs: ["ks"], path: `${out}-{source}.jsonl` } },
  };
  const live = () => lines(`${out}-ks.jsonl`);
  const backfilled = () => lines(`${out}-ks.backfill.jsonl`);
  let consumer = hubflow.run("consumer-1", consumerPipeline);
  try {
    await waitFor(() => live().length >= 100, 15000, "the first live events");

    // 1. The consumer killed for a few seconds, then started again: the restart's gap is filled.
    consumer.proc.kill("SIGKILL");
    await consumer.exited;
    const downFor = Date.now() + 3000;
    await waitFor(() => Date.now() >= downFor, 5000, "three seconds down");
    consumer = hubflow.run("consumer-2", consumerPipeline);
    await waitFor(() => /gap in .*\(restart: .*\): recovered \d+ events/.test(consumer.text), 20000,
                  "the restart's gap recovered");

    // 2. The hub frozen past the consumer's server timeout: a drop, and a gap filled once the hub thaws.
    hub.proc.kill("SIGSTOP");
    await waitFor(() => /no message from the hub for 2\.000 s \(server timeout\)/.test(consumer.text), 10000,
                  "the consumer to give up on the frozen hub");
    hub.proc.kill("SIGCONT");
    await waitFor(() => /gap in .*\(disconnected: no message from the hub .*\): recovered \d+ events/.test(consumer.text),
                  30000, "the freeze's gap recovered");

    // 3. The hub killed and started again (same port, same history): another gap, filled from the history
    // the restarted hub read back.
    hub.proc.kill("SIGKILL");
    await hub.exited;
    hub = hubflow.run("hub-2", hubPipeline(2));
    await waitFor(() => count(consumer.text, /gap in .*\(disconnected: .*\): recovered \d+ events/g) >= 2, 30000,
                  "the hub kill's gap recovered");
    const settled = live().length;
    await waitFor(() => live().length >= settled + 100, 15000, "live events after the last gap");

    assert.equal(await stop(consumer), 0, consumer.text);
    const history = await historyOf(base, token);
    assert.equal(await stop(hub), 0, hub.text);

    // Every event of the history from the consumer's first one to shortly before it stopped (what was still
    // inside the history's delay when the consumer stopped is nobody's to deliver yet) is in the file.
    const got = [...live(), ...backfilled()].map((l) => JSON.parse(l));
    const ids = got.map((e) => e.id);
    const have = new Set(ids);
    const first = Date.parse(JSON.parse(live()[0]).utc_date_time);
    const last = Math.max(...got.map((e) => Date.parse(e.utc_date_time))) - 3000;
    const expected = history.filter((e) => {
      const t = Date.parse(e.utc_date_time);
      return t > first && t <= last;
    });
    assert.ok(expected.length > 500, `${expected.length} events expected`);
    const missing = expected.filter((e) => !have.has(e.id)).map((e) => `${e.id} ${e.utc_date_time}`);
    assert.deepEqual(missing, [], "events of the history missing from the file");
    // Nothing twice, except repeats of what was in flight when the consumer was killed, counted by the
    // restarted consumer.
    const repeats = ids.length - have.size;
    const replayed = Number(/backfill_replayed=(\d+) /.exec(consumer.text)[1]);
    assert.ok(repeats <= replayed, `${repeats} events twice, ${replayed} counted as possible repeats`);
    t.diagnostic(`${expected.length} events of the history checked, ${backfilled().length} backfilled, ` +
                 `${repeats} twice, ${replayed} counted as possible repeats`);
    for (const line of consumer.text.split("\n").filter((l) => /gap in /.test(l))) t.diagnostic(line);
    assert.ok(backfilled().length > 0, "some events came from the history");
    assert.equal(count(consumer.text, /: unrecoverable: /g), 0, consumer.text);
    assert.match(consumer.text, /backfill_gaps_recovered=3 /);
  } finally {
    hub.proc.kill("SIGCONT");
  }
});
