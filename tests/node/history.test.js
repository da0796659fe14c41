// The signalr_hub's history endpoints (GET /v1.1/sites/{site_id}/entries and /incidents) with raw HTTP requests
// against real `hubflow run` processes (generator -> signalr_hub with history): the hubs' auth matrix, paging
// while new events arrive, the OData subset and its refusals, continuation tokens in the header and the query,
// a restart and a kill -9 of the hub, the rate limit and the delay.
"use strict";
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const http = require("node:http");
const https = require("node:https");
const signalR = require("@microsoft/signalr");
const { waitFor, mintToken } = require("./support");

const HUBFLOW = process.env.HUBFLOW_BIN;
const SECRET = "hubflow-test-secret-0123456789abcdef";
const SITE_A = "site-a";
const SITE_B = "site-b";

let dir, rolesFile;
let main; // { child, base, log }
const started = []; // every hub process, so that a failing test leaves none behind

function token(sub, { scope = ["user_api.full_access"], ttl = 3600, secret = SECRET } = {}) {
  return mintToken(HUBFLOW, secret, sub, { scope, ttl });
}

function writeRoles(table) {
  const tmp = rolesFile + ".tmp";
  fs.writeFileSync(tmp, JSON.stringify(table));
  fs.renameSync(tmp, rolesFile);
}

// Starts `hubflow run` with a generator feeding a hub with history; resolves once it listens.
function startHub(name, history, { rate = 200, seed = 5, tls } = {}) {
  const pipeline = {
    data_dir: path.join(dir, name),
    sources: {
      ks: { type: "generator", rate, sites: [SITE_A, SITE_B], users_per_site: 3, incident_ratio: 0.3, seed },
    },
    sinks: {
      hub: { type: "signalr_hub", inputs: ["ks"], listen: "127.0.0.1:0", auth: { hs256_secret: SECRET },
             roles: { file: rolesFile }, history, ...(tls ? { tls } : {}) },
    },
  };
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(pipeline));
  return new Promise((resolve, reject) => {
    const child = spawn(HUBFLOW, ["run", file], { stdio: ["ignore", "ignore", "pipe"] });
    const hub = { child, base: null, log: "" };
    started.push(hub);
    child.stderr.on("data", (d) => {
      hub.log += d;
      const m = /history at \S+ and \/incidents on (https?:\/\/[0-9.]+:\d+)/.exec(hub.log);
      if (m && !hub.base) {
        hub.base = m[1];
        resolve(hub);
      }
    });
    child.on("exit", (code) => {
      if (!hub.base) reject(new Error(`hubflow exited (${code}) before listening:\n${hub.log}`));
    });
  });
}

function stopHub(hub, signal = "SIGTERM") {
  return new Promise((resolve) => {
    if (hub.child.exitCode !== null || hub.child.signalCode !== null) return resolve();
    hub.child.on("exit", () => resolve());
    hub.child.kill(signal);
  });
}

// One raw GET: { status, headers, body, json }.
function get(base, target, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${target}`, { headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        let json;
        try {
          json = JSON.parse(body);
        } catch {}
        resolve({ status: res.statusCode, headers: res.headers, body, json });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

const q = (params) =>
  Object.entries(params)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join("&");

function history(base, site, kind, params, accessToken, headers = {}) {
  const query = q(params);
  return get(base, `/v1.1/sites/${encodeURIComponent(site)}/${kind}${query ? "?" + query : ""}`, {
    Authorization: `Bearer ${accessToken}`,
    ...headers,
  });
}

// Pages through a query to its end; the token goes in the header or the query parameter, alternately.
async function pageAll(base, site, kind, params, accessToken, { between } = {}) {
  const items = [];
  let continuation = null;
  let pages = 0;
  for (;;) {
    const viaHeader = pages % 2 === 0;
    const p = { ...params };
    const headers = {};
    if (continuation !== null) {
      if (viaHeader) headers["CLP-Continuation-Token"] = continuation;
      else p.$continuationToken = continuation;
    }
    const r = await history(base, site, kind, p, accessToken, headers);
    assert.equal(r.status, 200, r.body);
    assert.ok(Array.isArray(r.json.items), r.body);
    items.push(...r.json.items);
    pages++;
    if (r.json.continuation_token === undefined) return { items, pages };
    assert.equal(typeof r.json.continuation_token, "string");
    JSON.parse(r.json.continuation_token); // escaped JSON, sent back unescaped
    continuation = r.json.continuation_token;
    if (between) await between(pages);
  }
}

const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-history-"));
  rolesFile = path.join(dir, "roles.json");
  writeRoles({
    [SITE_A]: { admin: "site_admin", super: "site_super_user", guest: "site_guest" },
    [SITE_B]: { badmin: "site_admin" },
  });
  main = await startHub("main", { max_events: 100000 }, { rate: 1000 });
  const admin = token("admin");
  await waitFor(async () => (await history(main.base, SITE_A, "entries", {}, admin)).json?.items?.length >= 20, 10000,
    "the history to fill");
});

after(async () => {
  for (const hub of started) await stopHub(hub, "SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

test("the hubs' auth matrix on the history", async () => {
  // A user that the generator's entries name, made a plain site user of site-a.
  const some = (await history(main.base, SITE_A, "entries", { $top: 200 }, token("admin"))).json.items;
  const user = some.find((e) => e.user_id).user_id;
  const other = some.find((e) => e.user_id && e.user_id !== user)?.user_id ?? "someone-else";
  writeRoles({
    [SITE_A]: { admin: "site_admin", super: "site_super_user", guest: "site_guest", [user]: "site_user" },
    [SITE_B]: { badmin: "site_admin" },
  });
  await waitFor(async () => (await history(main.base, SITE_A, "entries", { user_id: user }, token(user))).status === 200,
    10000, "the roles file to be reloaded");

  const base = `/v1.1/sites/${SITE_A}/entries`;
  const cases = [
    ["no token", base, {}, 401],
    ["garbage token", base, { Authorization: "Bearer not-a-jwt" }, 401],
    ["another issuer's secret", base, { Authorization: `Bearer ${token("admin", { secret: "x".repeat(40) })}` }, 401],
    ["expired", base, { Authorization: `Bearer ${token("admin", { ttl: -120 })}` }, 401],
    ["no scope", base, { Authorization: `Bearer ${token("admin", { scope: ["user_api.read"] })}` }, 403],
    ["admin of another site", base, { Authorization: `Bearer ${token("badmin")}` }, 403],
    ["no role (guest)", base, { Authorization: `Bearer ${token("guest")}` }, 403],
    ["unknown user", base, { Authorization: `Bearer ${token("nobody")}` }, 403],
    ["site admin", base, { Authorization: `Bearer ${token("admin")}` }, 200],
    ["site admin, incidents", `/v1.1/sites/${SITE_A}/incidents`, { Authorization: `Bearer ${token("admin")}` }, 200],
    ["super user", base, { Authorization: `Bearer ${token("super")}` }, 200],
    ["super user, another user", `${base}?user_id=${other}`, { Authorization: `Bearer ${token("super")}` }, 200],
    ["token in access_token", `${base}?access_token=${token("admin")}`, {}, 200],
    ["site user, whole site", base, { Authorization: `Bearer ${token(user)}` }, 403],
    ["site user, own id", `${base}?user_id=${user}`, { Authorization: `Bearer ${token(user)}` }, 200],
    ["site user, own id in $filter", `${base}?${q({ $filter: `user_id eq '${user}'` })}`,
      { Authorization: `Bearer ${token(user)}` }, 200],
    ["site user, another id", `${base}?user_id=${other}`, { Authorization: `Bearer ${token(user)}` }, 403],
    ["site user, another id in $filter", `${base}?${q({ $filter: `user_id eq '${other}'` })}`,
      { Authorization: `Bearer ${token(user)}` }, 403],
    ["other path under /v1.1", `/v1.1/sites/${SITE_A}/locks`, { Authorization: `Bearer ${token("admin")}` }, 404],
  ];
  for (const [what, target, headers, status] of cases) {
    const r = await get(main.base, target, headers);
    assert.equal(r.status, status, `${what}: ${r.status} ${r.body}`);
    if (status === 401) assert.match(r.headers["www-authenticate"], /^Bearer/, what);
    if (status !== 200) assert.ok(r.body.length > 0 && !r.body.includes("eyJ"), `${what}: a reason, never the token`);
  }

  // A site user's page holds their own events only.
  const own = await pageAll(main.base, SITE_A, "entries", { user_id: user, $top: 50 }, token(user));
  assert.ok(own.items.length > 0);
  assert.ok(own.items.every((e) => e.user_id === user));
  // A token carries its query: sent alone it continues the user's query (never the whole site's), and it is
  // authorised again, so another site's admin cannot use it.
  const userToken = token(user);
  let first;
  await waitFor(async () => {
    first = await history(main.base, SITE_A, "entries", { user_id: user, $top: 1 }, userToken);
    return first.status === 200 && first.json.continuation_token !== undefined;
  }, 10000, "a second entry of the user");
  const alone = await history(main.base, SITE_A, "entries", { $top: 50 }, token(user),
    { "CLP-Continuation-Token": first.json.continuation_token });
  assert.equal(alone.status, 200, alone.body);
  assert.ok(alone.json.items.length > 0 && alone.json.items.every((e) => e.user_id === user));
  const stranger = await history(main.base, SITE_A, "entries", {}, token("badmin"),
    { "CLP-Continuation-Token": first.json.continuation_token });
  assert.equal(stranger.status, 403, stranger.body);
});

test("every event a live client received is already in the history", async () => {
  const admin = token("admin");
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(`${main.base}/v1/hub/incidents?site_id=${SITE_B}`,
      { accessTokenFactory: () => token("badmin"), skipNegotiation: true,
        transport: signalR.HttpTransportType.WebSockets })
    .configureLogging(signalR.LogLevel.None).build();
  const received = [];
  connection.on("ReceiveMessage", (m) => received.push(JSON.parse(m)));
  await connection.start();
  await waitFor(() => received.length >= 30, 15000, "30 incidents");
  await connection.stop();
  const since = Date.parse(received[0].utc_date_time);
  const all = await pageAll(main.base, SITE_B, "incidents",
    { $filter: `utc_date_time ge ${iso(since)}`, $top: 1000 }, token("badmin"));
  const ids = all.items.map((e) => e.id);
  const positions = received.map((e) => ids.indexOf(e.id));
  assert.ok(positions.every((p) => p >= 0), "an incident a client received is missing from the history");
  // In the order the hub sent them (event time, then arrival).
  for (let i = 1; i < positions.length; i++) assert.ok(positions[i] > positions[i - 1]);
  // A site admin of site-a sees nothing of site-b's history.
  assert.equal((await history(main.base, SITE_B, "incidents", {}, admin)).status, 403);
});

test("paging while new events arrive: no event skipped or repeated, in order, in both directions", async () => {
  const admin = token("admin");
  // A closed range of 2 s, once it is 2 s in the past: what the hub holds for it no longer changes.
  const oldest = (await history(main.base, SITE_A, "entries", { $top: 1 }, admin)).json.items[0];
  const from = Date.parse(oldest.utc_date_time) + 1000;
  const to = from + 1999;
  const filter = `utc_date_time ge DateTime'${iso(from)}' and utc_date_time le ${iso(to)}`;
  const newestTime = async () => Date.parse((await history(main.base, SITE_A, "entries",
    { $orderby: "utc_date_time desc", $top: 1 }, admin)).json.items[0].utc_date_time);
  await waitFor(async () => (await newestTime()) > to + 2000, 15000, "the range to be in the past");
  // Small pages, with the generator still writing (about 140 entries a second per site).
  const paged = await pageAll(main.base, SITE_A, "entries", { $filter: filter, $top: 7 }, admin, {
    between: (n) => (n % 5 === 0 ? new Promise((r) => setTimeout(r, 50)) : undefined),
  });
  assert.ok(paged.pages > 10, `only ${paged.pages} pages`);
  const once = await history(main.base, SITE_A, "entries", { $filter: filter, $top: 1000 }, admin);
  assert.equal(once.status, 200);
  assert.equal(once.json.continuation_token, undefined);
  assert.deepEqual(paged.items.map((e) => e.id), once.json.items.map((e) => e.id));
  assert.equal(new Set(paged.items.map((e) => e.id)).size, paged.items.length, "an event repeated");
  for (const e of paged.items) {
    const t = Date.parse(e.utc_date_time);
    assert.ok(t >= from && t <= to, `${e.utc_date_time} outside the filter`);
  }
  for (let i = 1; i < paged.items.length; i++)
    assert.ok(paged.items[i].utc_date_time >= paged.items[i - 1].utc_date_time, "not in time order");
  const down = await pageAll(main.base, SITE_A, "entries",
    { $filter: filter, $orderby: "utc_date_time desc", $top: 13 }, admin);
  assert.deepEqual(down.items.map((e) => e.id), paged.items.map((e) => e.id).reverse());

  // An open-ended query paged while events arrive: it ends (its snapshot), nothing twice, and the next query
  // from its last event time picks up the rest.
  const open = await pageAll(main.base, SITE_A, "entries", { $filter: `utc_date_time ge ${iso(to)}`, $top: 50 },
    admin, { between: () => new Promise((r) => setTimeout(r, 20)) });
  assert.equal(new Set(open.items.map((e) => e.id)).size, open.items.length);
  const last = open.items[open.items.length - 1];
  const next = await pageAll(main.base, SITE_A, "entries",
    { $filter: `utc_date_time ge ${last.utc_date_time}`, $top: 1000 }, admin);
  assert.ok(next.items.some((e) => e.id === last.id));
  assert.ok(next.items.length > 1, "nothing arrived after the first query's snapshot");
});

test("the OData subset: unsupported parts and $top bounds are a 400 naming them", async () => {
  const admin = token("admin");
  const cases = [
    [{ $filter: "utc_date_time eq 2026-12-06T10:00:00Z" }, /not 'eq'/],
    [{ $filter: "utc_date_time ge 2026-12-06T10:00:00Z or utc_date_time lt 2026-12-06T11:00:00Z" }, /'or'/],
    [{ $filter: "local_date_time ge 2026-12-06T10:00:00" }, /local_date_time/],
    [{ $filter: "lock_id eq 'x'" }, /lock_id/],
    [{ $filter: "startswith(user_id,'a')" }, /startswith/],
    [{ $filter: "utc_date_time ge tomorrow" }, /'tomorrow' is not a date-time/],
    [{ $orderby: "local_date_time desc" }, /\$orderby/],
    [{ $orderby: "utc_date_time random" }, /asc or desc/],
    [{ $top: 0 }, /\$top/],
    [{ $top: 1001 }, /\$top/],
    [{ $top: "abc" }, /\$top/],
    [{ $skip: 10 }, /\$skip/],
    [{ $count: "true" }, /\$count/],
    [{ $select: "id" }, /\$select/],
  ];
  for (const [params, says] of cases) {
    const r = await history(main.base, SITE_A, "entries", params, admin);
    assert.equal(r.status, 400, `${JSON.stringify(params)}: ${r.status} ${r.body}`);
    assert.match(r.body, says, JSON.stringify(params));
  }
  await waitFor(async () => (await history(main.base, SITE_A, "entries", { $top: 1000 }, admin)).json.continuation_token,
    20000, "more than 1,000 entries");
  for (const top of [1, 1000]) {
    const r = await history(main.base, SITE_A, "entries", { $top: top }, admin);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.items.length, top);
    assert.ok(r.json.continuation_token);
  }
  // Both literal forms, offsets too, and the empty answer of a range with nothing in it.
  const r = await history(main.base, SITE_A, "entries",
    { $filter: "utc_date_time ge 2001-01-01T00:00:00Z and utc_date_time lt DateTime'2001-01-01T01:00:00+01:00'" }, admin);
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(r.json, { items: [] });
  // POST is not a query.
  const post = await new Promise((resolve, reject) => {
    const req = http.request(`${main.base}/v1.1/sites/${SITE_A}/entries`,
      { method: "POST", headers: { Authorization: `Bearer ${admin}` }, agent: false }, (res) => resolve(res.statusCode));
    req.on("error", reject);
    req.end();
  });
  assert.equal(post, 405);
});

test("continuation tokens: unknown, tampered, for another query or site, or two different ones are a 400", async () => {
  const admin = token("admin");
  const filter = { $filter: "utc_date_time ge 2020-01-01T00:00:00Z", $top: 2 };
  const first = await history(main.base, SITE_A, "entries", filter, admin);
  const t = first.json.continuation_token;
  assert.ok(t);
  // The same query with the token, or the token alone, both continue it.
  const withQuery = await history(main.base, SITE_A, "entries", filter, admin, { "CLP-Continuation-Token": t });
  const alone = await history(main.base, SITE_A, "entries", { $continuationToken: t }, admin);
  assert.equal(withQuery.status, 200, withQuery.body);
  assert.equal(alone.status, 200, alone.body);
  assert.equal(alone.json.items.length, 100); // the default page size when $top is not repeated
  assert.deepEqual(alone.json.items.slice(0, 2), withQuery.json.items);
  assert.notDeepEqual(withQuery.json.items, first.json.items);

  const tampered = JSON.parse(t);
  tampered.snap += 1;
  const cases = [
    [{ "CLP-Continuation-Token": "not json" }, {}, SITE_A, /unknown continuation token/],
    [{ "CLP-Continuation-Token": JSON.stringify(tampered) }, {}, SITE_A, /unknown continuation token/],
    [{ "CLP-Continuation-Token": t }, { $filter: "utc_date_time ge 2021-01-01T00:00:00Z" }, SITE_A, /another \$filter/],
    [{ "CLP-Continuation-Token": t }, { $orderby: "utc_date_time desc" }, SITE_A, /another \$orderby/],
    [{ "CLP-Continuation-Token": t }, { $continuationToken: JSON.stringify(tampered) }, SITE_A, /different tokens/],
  ];
  for (const [headers, params, site, says] of cases) {
    const r = await history(main.base, site, "entries", params, admin, headers);
    assert.equal(r.status, 400, `${JSON.stringify(params)}: ${r.body}`);
    assert.match(r.body, says);
  }
  const otherHub = await history(main.base, SITE_A, "incidents", {}, admin, { "CLP-Continuation-Token": t });
  assert.equal(otherHub.status, 400);
  assert.match(otherHub.body, /another site or hub/);
});

test("the history survives a restart and a kill -9 of the hub; tokens stay valid across them", async () => {
  // Seed 0: each run invents its own ids, so that the runs' events cannot be mistaken for one another.
  const hub = await startHub("restart", { max_events: 100000 }, { seed: 0 });
  const admin = token("admin");
  const receivedIds = [];
  const connect = async (base) => {
    const c = new signalR.HubConnectionBuilder()
      .withUrl(`${base}/v1/hub/entries?site_id=${SITE_A}`,
        { accessTokenFactory: () => admin, skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets })
      .configureLogging(signalR.LogLevel.None).build();
    c.on("ReceiveMessage", (m) => receivedIds.push(JSON.parse(m).id));
    await c.start();
    return c;
  };
  let c = await connect(hub.base);
  await waitFor(() => receivedIds.length >= 200, 15000, "200 entries");
  const first = await history(hub.base, SITE_A, "entries", { $top: 5 }, admin);
  const token1 = first.json.continuation_token;
  // SIGTERM: the clean way.
  await stopHub(hub, "SIGTERM");
  await c.stop().catch(() => {});
  let again = await startHub("restart", { max_events: 100000 }, { seed: 0 });
  const resumed = await history(again.base, SITE_A, "entries", { $top: 5 }, admin, { "CLP-Continuation-Token": token1 });
  assert.equal(resumed.status, 200, resumed.body);
  assert.equal(resumed.json.items.length, 5);
  c = await connect(again.base);
  const before = receivedIds.length;
  await waitFor(() => receivedIds.length >= before + 200, 15000, "200 more entries");
  // kill -9 while the generator writes: what any client received is in the history after the restart.
  again.child.kill("SIGKILL");
  await new Promise((r) => again.child.on("exit", r));
  await c.stop().catch(() => {});
  const seen = [...receivedIds];
  again = await startHub("restart", { max_events: 100000 }, { seed: 0 });
  try {
    const all = await pageAll(again.base, SITE_A, "entries", { $top: 1000 }, admin);
    const ids = new Set(all.items.map((e) => e.id));
    const missing = seen.filter((id) => !ids.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${seen.length} received entries are not in the history`);
    assert.equal(ids.size, all.items.length, "an entry is in the history twice");
    // The old token still continues its query, from the same place.
    const old = await history(again.base, SITE_A, "entries", { $top: 5 }, admin, { "CLP-Continuation-Token": token1 });
    assert.equal(old.status, 200, old.body);
    assert.deepEqual(old.json.items, resumed.json.items);
    // The files are private to the service user.
    const root = path.join(dir, "restart", "hub", "history");
    assert.equal(fs.statSync(root).mode & 0o777, 0o700);
    for (const site of fs.readdirSync(root).filter((n) => n !== "token.key")) {
      assert.equal(fs.statSync(path.join(root, site)).mode & 0o777, 0o700);
      for (const f of fs.readdirSync(path.join(root, site)))
        assert.equal(fs.statSync(path.join(root, site, f)).mode & 0o777, 0o600, f);
    }
    assert.equal(fs.statSync(path.join(root, "token.key")).mode & 0o777, 0o600);
  } finally {
    await stopHub(again, "SIGKILL");
  }
});

test("rate limit per access token: 429 with Retry-After; the delay before events become visible", async () => {
  const hub = await startHub("limited", { max_requests_per_s: 2, delay_ms: 3000 }, { rate: 50 });
  try {
    const a = token("admin");
    const b = token("super");
    const statuses = [];
    let retryAfter;
    for (let i = 0; i < 6; i++) {
      const r = await history(hub.base, SITE_A, "entries", {}, a);
      statuses.push(r.status);
      if (r.status === 429) retryAfter = r.headers["retry-after"];
    }
    assert.ok(statuses.includes(429), statuses.join(","));
    assert.ok(Number(retryAfter) >= 1, `Retry-After: ${retryAfter}`);
    // Another token has its own budget.
    assert.equal((await history(hub.base, SITE_A, "entries", {}, b)).status, 200);
    // After Retry-After, the first token is served again.
    await new Promise((r) => setTimeout(r, Number(retryAfter) * 1000));
    assert.equal((await history(hub.base, SITE_A, "entries", {}, a)).status, 200);

    // delay_ms: an event a live client has just received is not in the history yet, and is 3 s later.
    const c = new signalR.HubConnectionBuilder()
      .withUrl(`${hub.base}/v1/hub/entries?site_id=${SITE_A}`,
        { accessTokenFactory: () => a, skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets })
      .configureLogging(signalR.LogLevel.None).build();
    let latest = null;
    c.on("ReceiveMessage", (m) => (latest = JSON.parse(m)));
    await c.start();
    await waitFor(() => latest !== null, 10000, "an entry");
    const probe = latest;
    const probeHistory = () => history(hub.base, SITE_A, "entries",
      { $filter: `utc_date_time ge ${probe.utc_date_time}`, $top: 1000 }, b);
    const has = async () => {
      const r = await probeHistory();
      return r.status === 200 && r.json.items.some((e) => e.id === probe.id);
    };
    const early = await probeHistory();
    assert.equal(early.status, 200, early.body);
    assert.ok(!early.json.items.some((e) => e.id === probe.id), "visible before delay_ms");
    await c.stop();
    await waitFor(() => has(b), 10000, "the entry to become visible");
  } finally {
    await stopHub(hub, "SIGKILL");
  }
});

test("over TLS: the same endpoints on the hub's wss:// listener, https://", async () => {
  const made = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem"), "-subj", "/CN=127.0.0.1",
    "-addext", "subjectAltName=IP:127.0.0.1"], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  const ca = fs.readFileSync(path.join(dir, "cert.pem"));
  const hub = await startHub("tls", {}, { rate: 100,
    tls: { cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") } });
  try {
    assert.match(hub.base, /^https:/);
    const getTls = (target, headers) => new Promise((resolve, reject) => {
      const req = https.request(`${hub.base}${target}`, { headers, ca, agent: false }, (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode, body }));
      });
      req.on("error", reject);
      req.end();
    });
    const auth = { Authorization: `Bearer ${token("admin")}` };
    // A first page of five with a token: more than five entries are in the history.
    let first;
    await waitFor(async () => {
      first = JSON.parse((await getTls(`/v1.1/sites/${SITE_A}/entries?$top=5`, auth)).body);
      return first.items.length === 5 && first.continuation_token !== undefined;
    }, 10000, "more than five entries over https");
    const next = await getTls(`/v1.1/sites/${SITE_A}/entries?$top=5`,
      { ...auth, "CLP-Continuation-Token": first.continuation_token });
    assert.equal(next.status, 200, next.body);
    assert.notDeepEqual(JSON.parse(next.body).items, first.items);
    assert.equal((await getTls(`/v1.1/sites/${SITE_A}/entries`, {})).status, 401);
  } finally {
    await stopHub(hub, "SIGKILL");
  }
});
