// The `signalr` source's backfill in a real hubflow process (signalr -> file), against the ws reference hub for
// the live stream and a reference KS history (reference_history.js) for the gaps: paging through empty pages
// and escaped-JSON tokens, the overlap's duplicates, 429 with Retry-After, 503 bursts, slow and malformed pages,
// a token that stops being accepted, refusals that make a gap unrecoverable, a gap longer than max_gap_s, the
// state kept across a stop and a kill -9, and the shared request rate. Backfilled events carry metadata source
// "<node>.backfill"; the file sink's {source} placeholder puts them in a file of their own.
"use strict";
const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { waitFor } = require("./support");
const { RS, hubflowRunner, stop, lines, referenceHub, invocation, closeMessage } = require("./reference_hub");
const { referenceHistory, utc, parseFilter } = require("./reference_history");

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-source-backfill-"));
const hubflow = hubflowRunner(process.env.HUBFLOW_BIN, dir);

after(() => {
  hubflow.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

// Event k of a site: second k after the reference base.
const ev = (site, k, extra = {}) => ({ id: `${site}-e${k}`, utc_date_time: utc(k), user_id: `u${k % 3}`, ...extra });
const send = (ws, site, ks) => { for (const k of ks) ws.send(invocation(JSON.stringify(ev(site, k)))); };
const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i);

// signalr -> file, the file chosen by the event's metadata source: `<name>-ks.jsonl` for live events,
// `<name>-ks.backfill.jsonl` for backfilled ones. `h.live()`, `h.backfilled()` and `h.all()` read them.
function consumer(name, source, { sinks } = {}) {
  const base = path.join(dir, name);
  const h = hubflow.run(name, {
    data_dir: path.join(dir, `${name}-state`),
    sources: { ks: { type: "signalr", reconnect: { initial_ms: 50, max_ms: 300 }, ...source } },
    sinks: sinks || { out: { type: "file", inputs: ["ks"], path: `${base}-{source}.jsonl` } },
  });
  h.live = () => lines(`${base}-ks.jsonl`).map((l) => JSON.parse(l));
  h.backfilled = () => lines(`${base}-ks.backfill.jsonl`).map((l) => JSON.parse(l));
  h.all = () => [...h.live(), ...h.backfilled()];
  h.state = path.join(dir, `${name}-state`);
  return h;
}

const backfill = (history, extra = {}) => ({ url: history.url(), page_size: 3, overlap_s: 1, settle_ms: 300,
                                             max_requests_per_s: 50, ...extra });

function assertOnce(events, ids, what) {
  const got = events.map((e) => e.id).sort();
  assert.deepEqual(got, [...ids].sort(), what);
}

test("a disconnect is backfilled: missed events once, in time order, marked; pages, empty pages and tokens", async () => {
  const site = "s1";
  const history = referenceHistory({ emptyEvery: 2 });
  history.add(site, "entries", ...range(0, 30).map((k) => ev(site, k)));
  await history.listen();
  const hub = referenceHub({
    scenarios: [
      (ws) => { ws.send("{}" + RS); send(ws, site, range(0, 10)); ws.send(closeMessage({ allowReconnect: true })); },
      (ws) => { ws.send("{}" + RS); send(ws, site, range(20, 30)); },
    ],
  });
  await hub.listen();
  const c = consumer("disconnect", { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id=${site}`,
                                     auth: { token: "t0k" }, backfill: backfill(history) });
  try {
    await waitFor(() => /gap in .*: recovered/.test(c.text), 15000, "the gap to be recovered");
    await waitFor(() => c.all().length >= 30, 5000, "every event in the files").catch((e) => { console.log(c.text, fs.readdirSync(dir), c.all().map((x) => x.id)); throw e; });
    assertOnce(c.all(), range(0, 30).map((k) => `${site}-e${k}`), "every event once");
    // The missed ones, in time order, and only they came from the history.
    assert.deepEqual(c.backfilled().map((e) => e.id), range(10, 20).map((k) => `${site}-e${k}`));
    assert.match(c.text, /reconnected to .*; backfilling that interval from the history/);
    assert.match(c.text, /gap in ws:\/\/\S+ from \S+ to \S+ \(disconnected: the hub sent Close .*\): recovered 10 events from the history in \d+ pages, 4 already received live/);
    // The query: from overlap_s before the last live event to overlap_s after the first one of the new connection.
    const first = history.requests[0];
    assert.equal(first.site, site);
    assert.equal(first.hub, "entries");
    assert.equal(first.filter, `utc_date_time ge ${utc(8)} and utc_date_time le ${utc(21)}`);
    assert.equal(first.orderby, "utc_date_time asc");
    assert.equal(first.top, "3");
    assert.equal(first.auth, "Bearer t0k");
    assert.equal(first.token, null);
    // Every later page was asked for with the token of the page before it, unescaped JSON in the header.
    const paged = history.requests.slice(1);
    assert.ok(paged.length >= 5, `${paged.length} pages after the first`);
    for (const r of paged) {
      assert.ok(history.issued.has(r.token), `a token the history issued: ${r.token}`);
      assert.equal(typeof JSON.parse(r.token), "object");
    }
    // The state file is private and says how far the live events were finished.
    const state = path.join(c.state, "ks", "signalr-backfill.json");
    await waitFor(() => fs.existsSync(state), 5000, "the state file");
    assert.equal(fs.statSync(state).mode & 0o777, 0o600);
  } finally {
    const code = await stop(c);
    await hub.close();
    await history.close();
    assert.equal(code, 0, c.text);
  }
  assert.match(c.text, /backfill_gaps_recovered=1 /);
  assert.match(c.text, /backfill_events=10 /);
});
