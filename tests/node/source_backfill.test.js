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
    await waitFor(() => c.all().length >= 30, 5000, "every event in the files");
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

// A hub whose connections play, per site, the next list of event numbers of `plan[site]`; every list but the
// last ends with a Close (allowReconnect), so the source reconnects and has a gap to fill.
function siteHub(plan) {
  const count = new Map();
  return referenceHub({
    scenarios: [
      (ws, socket, req) => {
        const site = new URL(req.url, "http://x").searchParams.get("site_id");
        const n = count.get(site) || 0;
        count.set(site, n + 1);
        const lists = plan[site];
        ws.send("{}" + RS);
        send(ws, site, lists[Math.min(n, lists.length - 1)]);
        if (n < lists.length - 1) ws.send(closeMessage({ allowReconnect: true }));
      },
    ],
  });
}

test("429 with Retry-After, 503 bursts, slow pages, cut connections and malformed bodies: retried at the same page", async () => {
  const site = "s2";
  const faults = [
    null,
    { status: 429, headers: { "Retry-After": "1" }, body: "{\"error\":\"too many requests\"}" },
    { status: 503 }, { status: 503 }, { status: 503 },
    { delayMs: 1500 },
    { status: 200, body: "{not json" },
    { status: 200, body: "{\"items\": 5}" },
    { status: 200, body: "{\"items\": [{\"id\":\"x\"}], \"continuation_token\": 7}" },
    { destroy: true },
  ];
  const history = referenceHistory({ faults });
  history.add(site, "entries", ...range(0, 31).map((k) => ev(site, k)));
  await history.listen();
  const hub = siteHub({ [site]: [range(0, 6), range(25, 31)] });
  await hub.listen();
  const c = consumer("faults", { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id=${site}`,
                                 backfill: backfill(history) });
  try {
    await waitFor(() => /gap in .*: (recovered|unrecoverable)/.test(c.text), 30000, "the gap to end");
    await waitFor(() => c.all().length >= 31, 5000, "every event in the files");
    assertOnce(c.all(), range(0, 31).map((k) => `${site}-e${k}`), "every event once");
    assert.deepEqual(c.backfilled().map((e) => e.id), range(6, 25).map((k) => `${site}-e${k}`));
    assert.match(c.text, /gap in .*: recovered 19 events from the history/);
    assert.match(c.text, /the history answered HTTP 429, Retry-After 1; retrying in 1000 ms at the same page/);
    assert.equal((c.text.match(/the history answered HTTP 503; retrying in \d+ ms at the same page/g) || []).length, 3);
    assert.match(c.text, /malformed history answer: the body is not valid JSON/);
    assert.match(c.text, /malformed history answer: `items` is not an array/);
    assert.match(c.text, /malformed history answer: `continuation_token` is neither a string nor null/);
    assert.match(c.text, /history request failed: /);
    // Each fault was asked again with the same token; the Retry-After was waited for.
    const r = history.requests;
    for (let i = 1; i < faults.length; i++)
      assert.equal(r[i + 1].token, r[i].token, `request ${i + 1} repeats request ${i}`);
    assert.ok(r[2].at - r[1].at >= 950, `asked again ${r[2].at - r[1].at} ms after the 429`);
  } finally {
    const code = await stop(c);
    await hub.close();
    await history.close();
    assert.equal(code, 0, c.text);
  }
  assert.match(c.text, /backfill_retries=8 /); // the slow page was answered, not retried
});

test("a continuation token the history stops accepting: the query restarts from the last event emitted", async () => {
  const site = "s3";
  const history = referenceHistory({ faults: [null, null, { status: 400, body: { error: "token expired" } }] });
  history.add(site, "entries", ...range(0, 31).map((k) => ev(site, k)));
  // Several events in one second, so that the restart from that second finds some already emitted.
  history.add(site, "entries", ...["a", "b", "c"].map((x) => ev(site, 12, { id: `${site}-e12${x}` })));
  await history.listen();
  const hub = siteHub({ [site]: [range(0, 6), range(25, 31)] });
  await hub.listen();
  const c = consumer("token400", { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id=${site}`,
                                   backfill: backfill(history, { page_size: 4 }) });
  try {
    await waitFor(() => /gap in .*: (recovered|unrecoverable)/.test(c.text), 20000, "the gap to end");
    await waitFor(() => c.all().length >= 34, 5000, "every event in the files");
    const ids = [...range(0, 31).map((k) => `${site}-e${k}`), ...["a", "b", "c"].map((x) => `${site}-e12${x}`)];
    assertOnce(c.all(), ids, "every event once");
    assert.match(c.text, /the history no longer accepts the continuation token \(HTTP 400 .*token expired.*\); restarting the query from \S+/);
    // The third request (the second page's token) was refused; the fourth starts a new query, no token.
    const r = history.requests;
    assert.notEqual(r[2].token, null);
    assert.equal(r[3].token, null);
    const restartedAt = parseFilter(r[3].filter).ge;
    assert.ok(restartedAt > parseFilter(r[0].filter).ge, "the new query starts at the last event emitted");
    assert.match(c.text, /gap in .*: recovered 22 events from the history/);
  } finally {
    const code = await stop(c);
    await hub.close();
    await history.close();
    assert.equal(code, 0, c.text);
  }
});

test("403, 404, a 400 on a new query and malformed answers for good: unrecoverable, logged, counted, gap events", async () => {
  const sites = ["s403", "s404", "s400", "sbad"];
  const history = referenceHistory({
    faults: (r) => ({ s403: { status: 403, body: "forbidden" }, s404: { status: 404 },
                      s400: { status: 400, body: { error: "unsupported $filter" } },
                      sbad: { status: 200, body: "<html>proxy error</html>" } })[r.site] || null,
  });
  await history.listen();
  const plan = Object.fromEntries(sites.map((s) => [s, [range(0, 3), range(10, 13)]]));
  const hub = siteHub(plan);
  await hub.listen();
  const c = consumer("refused", { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id={site_id}`, sites,
                                  backfill: backfill(history, { emit_gap_events: true }) });
  try {
    await waitFor(() => (c.text.match(/: unrecoverable: /g) || []).length === 4, 40000, "four unrecoverable gaps");
    assert.match(c.text, /site_id=s403 from \S+ to \S+ \(disconnected: .*\): unrecoverable: the history answered HTTP 403 \(forbidden\): the token lacks the scope or the site role for it; 0 events recovered before that/);
    assert.match(c.text, /site_id=s404 .*unrecoverable: the history answered HTTP 404: check backfill.url and the site id/);
    assert.match(c.text, /site_id=s400 .*unrecoverable: the history answered HTTP 400 \(.*unsupported \$filter.*\)/);
    assert.match(c.text, /site_id=sbad .*unrecoverable: the history's answers are malformed \(the body is not a JSON object, 5 times\)/);
    await waitFor(() => c.backfilled().filter((e) => e.kind === "gap").length === 4, 5000, "four gap events");
    const gaps = c.backfilled().filter((e) => e.kind === "gap");
    assert.deepEqual(gaps.map((g) => g.site_id).sort(), [...sites].sort());
    for (const g of gaps) {
      assert.equal(g.hub, "entries");
      assert.equal(g.unrecoverable, true);
      assert.equal(g.start, utc(1));
      assert.equal(g.end, utc(11));
      assert.ok(g.reason.length > 10, g.reason);
    }
  } finally {
    const code = await stop(c);
    await hub.close();
    await history.close();
    assert.equal(code, 0, c.text);
  }
  assert.match(c.text, /backfill_gaps_unrecoverable=4 /);
});

test("a restart backfills from the last event finished downstream; nothing twice after a clean stop", async () => {
  const site = "s5";
  const history = referenceHistory();
  history.add(site, "entries", ...range(0, 31).map((k) => ev(site, k)));
  await history.listen();
  const hub = referenceHub({
    scenarios: [
      (ws) => { ws.send("{}" + RS); send(ws, site, range(0, 10)); },
      (ws) => { ws.send("{}" + RS); send(ws, site, range(25, 31)); },
    ],
  });
  await hub.listen();
  const source = { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id=${site}`, backfill: backfill(history) };
  const first = consumer("restart", source);
  await waitFor(() => first.live().length === 10, 10000, "the first run's events");
  assert.equal(await stop(first), 0, first.text);
  assert.equal(history.requests.length, 0, "no state and initial_s 0: nothing to backfill at the first start");
  const second = consumer("restart", source);
  try {
    await waitFor(() => /gap in .*: recovered/.test(second.text), 15000, "the restart's gap");
    await waitFor(() => second.all().length >= 31, 5000, "every event in the files");
    assertOnce(second.all(), range(0, 31).map((k) => `${site}-e${k}`), "every event once");
    assert.match(second.text, new RegExp(`\\(restart: events after ${utc(9)}, the last one finished downstream\\): recovered 15 events`));
    assert.equal(history.requests[0].filter, `utc_date_time ge ${utc(8)} and utc_date_time le ${utc(26)}`);
  } finally {
    const code = await stop(second);
    await hub.close();
    await history.close();
    assert.equal(code, 0, second.text);
  }
  assert.match(second.text, /backfill_replayed=0 /);
});

test("kill -9 in the middle of a gap: the restart resumes at the page reached; repeats only of what was in flight, counted", async () => {
  const site = "s6";
  const history = referenceHistory({ faults: () => ({ delayMs: 100 }) });
  history.add(site, "entries", ...range(0, 61).map((k) => ev(site, k)));
  await history.listen();
  const hub = referenceHub({
    scenarios: [
      (ws) => { ws.send("{}" + RS); send(ws, site, range(0, 6)); ws.send(closeMessage({ allowReconnect: true })); },
      (ws) => { ws.send("{}" + RS); send(ws, site, range(50, 56)); },
      (ws) => { ws.send("{}" + RS); send(ws, site, range(56, 61)); },
    ],
  });
  await hub.listen();
  const source = { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id=${site}`,
                   backfill: backfill(history, { page_size: 2 }) };
  const first = consumer("kill9", source);
  await waitFor(() => first.backfilled().length >= 16, 20000, "half the gap backfilled");
  first.proc.kill("SIGKILL");
  await first.exited;
  const before = history.requests.length;
  const second = consumer("kill9", source);
  try {
    // Two gaps end in the second run: the one resumed, and the restart's own (from the last live event finished).
    await waitFor(() => (second.text.match(/gap in .*: recovered/g) || []).length === 2, 30000,
                  "the gaps finished after the restart");
    assert.match(second.text, /resuming the backfill of \S+ from \S+ to \S+ at the page it had reached/);
    assert.notEqual(history.requests[before].token, null, "the first request after the restart carries the token");
    const ids = second.all().map((e) => e.id);
    const unique = new Set(ids);
    assert.deepEqual([...unique].sort(), range(0, 61).map((k) => `${site}-e${k}`).sort(), "nothing lost");
    const repeats = ids.length - unique.size;
    await stop(second);
    const replayed = Number(/backfill_replayed=(\d+) /.exec(second.text)[1]);
    assert.ok(repeats <= replayed, `${repeats} events twice, ${replayed} counted as possible repeats`);
    assert.ok(replayed <= 10, `at most the pages in flight and a few live events are repeated (${replayed})`);
  } finally {
    await stop(second);
    await hub.close();
    await history.close();
  }
});

test("initial_s at a first start; a gap longer than max_gap_s is filled for its last max_gap_s and reported", async () => {
  const site = "s7";
  const nowK = Math.floor((Date.now() - Date.parse(utc(0))) / 1000);
  const ks = range(0, 60).map((i) => nowK - 120 + 2 * i);
  const history = referenceHistory();
  history.add(site, "entries", ...ks.map((k) => ev(site, k)));
  await history.listen();
  const hub = referenceHub({ scenarios: [(ws) => { ws.send("{}" + RS); send(ws, site, [nowK]); }] });
  await hub.listen();
  const c = consumer("maxgap", { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id=${site}`,
                                 backfill: backfill(history, { initial_s: 100, max_gap_s: 30, page_size: 100,
                                                               emit_gap_events: true }) });
  try {
    await waitFor(() => /gap in .*: recovered/.test(c.text), 15000, "the start's gap");
    const expected = ks.filter((k) => k >= nowK + 1 - 30 && k <= nowK + 1).map((k) => `${site}-e${k}`);
    await waitFor(() => c.backfilled().length >= expected.length + 1, 5000, "the events and the gap event");
    assert.deepEqual(c.backfilled().filter((e) => e.kind !== "gap").map((e) => e.id), expected);
    assert.match(c.text, /\(start: the last 100 s \(initial_s\)\): recovered \d+ events from the history .*; partly lost: the gap is 1\d\d s long, longer than max_gap_s 30: events from \S+ to \S+ are not recovered/);
    const gap = c.backfilled().find((e) => e.kind === "gap");
    assert.equal(gap.unrecoverable, false);
    assert.equal(gap.end, utc(nowK + 1));
    assert.match(gap.reason, /longer than max_gap_s 30/);
  } finally {
    const code = await stop(c);
    await hub.close();
    await history.close();
    assert.equal(code, 0, c.text);
  }
  assert.match(c.text, /backfill_gaps_partial=1 /);
});

test("a user hub asks for its user; all sites share max_requests_per_s; a 401 gets a new token", async () => {
  const sites = ["s8a", "s8b"];
  const tokenFile = path.join(dir, "token-s8");
  fs.writeFileSync(tokenFile, "t1\n");
  let refused = 0;
  const history = referenceHistory({
    page: 1,
    faults: (r) => {
      if (r.auth !== "Bearer t1") return null;
      refused++;
      fs.writeFileSync(tokenFile, "t2\n"); // the token rotated: the next read of the file gets the new one
      return { status: 401, body: "expired" };
    },
  });
  const mine = (k) => k % 3 === 1; // events of user u1
  for (const s of sites) history.add(s, "entries", ...range(0, 31).map((k) => ev(s, k)));
  await history.listen();
  const plan = Object.fromEntries(sites.map((s) => [s, [range(0, 6).filter(mine), range(25, 31).filter(mine)]]));
  const hub = siteHub(plan);
  await hub.listen();
  const c = consumer("shared", { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id={site_id}&user_id=u1`, sites,
                                 auth: { token_file: tokenFile },
                                 backfill: backfill(history, { page_size: 1, max_requests_per_s: 4 }) });
  try {
    await waitFor(() => (c.text.match(/gap in .*: recovered/g) || []).length === 2, 30000, "both gaps");
    for (const s of sites) {
      const ids = range(0, 31).filter(mine).map((k) => `${s}-e${k}`);
      assertOnce(c.all().filter((e) => e.id.startsWith(`${s}-`)), ids, `every event of u1 in ${s} once`);
    }
    assert.ok(history.requests.every((r) => r.userId === "u1"), "every request names the user");
    assert.equal(refused, 1);
    assert.match(c.text, /the history refused the token \(HTTP 401 \(expired\)\); a new token is fetched/);
    assert.ok(history.requests.slice(1).every((r) => r.auth === "Bearer t2"));
    // One rate for the whole source: consecutive requests, whatever their site, are 1/4 s apart.
    const at = history.requests.map((r) => r.at);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    const mean = (at[at.length - 1] - at[0]) / (at.length - 1);
    assert.ok(mean >= 240, `requests ${mean} ms apart on average`);
    assert.ok(Math.min(...gaps) >= 150, `requests as close as ${Math.min(...gaps)} ms`);
    assert.ok(history.requests.length >= 10);
  } finally {
    const code = await stop(c);
    await hub.close();
    await history.close();
    assert.equal(code, 0, c.text);
  }
});
