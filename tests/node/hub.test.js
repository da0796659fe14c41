// The official @microsoft/signalr client against hubflow's signalr_hub sink, as an integrator would use it
// with the KS Event Streaming service: skipNegotiation, WebSockets, token in the Authorization header.
//
// Run by ctest (see tests/CMakeLists.txt) with HUBFLOW_BIN pointing at the built program.
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
const SECRET = "hubflow-test-secret-0123456789abcdef";
const SITE_A = "site-a";
const SITE_B = "site-b";
const SITE_QUIET = "site-quiet"; // no events are generated for it

let dir, hub, baseUrl, rolesFile;

function token(sub, { scope = ["user_api.full_access"], ttl = 3600, secret = SECRET } = {}) {
  return mintToken(HUBFLOW, secret, sub, { scope, ttl });
}

function writeRoles(table) {
  const tmp = rolesFile + ".tmp";
  fs.writeFileSync(tmp, JSON.stringify(table));
  fs.renameSync(tmp, rolesFile);
}

function connect(hubPath, accessToken, options = {}) {
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(`${baseUrl}${hubPath}`, {
      accessTokenFactory: () => accessToken,
      skipNegotiation: true,
      transport: signalR.HttpTransportType.WebSockets,
    })
    .configureLogging(signalR.LogLevel.None);
  if (options.reconnect) builder.withAutomaticReconnect();
  const connection = builder.build();
  if (options.serverTimeoutMs) connection.serverTimeoutInMilliseconds = options.serverTimeoutMs;
  const messages = [];
  connection.on("ReceiveMessage", (m) => messages.push(JSON.parse(m)));
  return { connection, messages };
}

// The HTTP status the server answers to a WebSocket upgrade request (the official client hides it).
function upgradeStatus(hubPath, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${baseUrl}${hubPath}`, {
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        ...headers,
      },
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: 101, body: "" });
    });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

function startHub() {
  return new Promise((resolve, reject) => {
    const pipeline = {
      data_dir: path.join(dir, "state"),
      sources: {
        ks: { type: "generator", rate: 400, sites: [SITE_A, SITE_B], users_per_site: 3, incident_ratio: 0.3, seed: 11 },
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
    child.stderr.on("data", (d) => {
      log += d;
      const m = /on ws:\/\/([0-9.]+:\d+)/.exec(log);
      if (m && !baseUrl) {
        baseUrl = `http://${m[1]}`;
        resolve(child);
      }
    });
    child.on("exit", (code) => reject(new Error(`hubflow exited (${code}) before listening:\n${log}`)));
    child.log = () => log;
  });
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-node-"));
  rolesFile = path.join(dir, "roles.json");
  writeRoles({
    [SITE_A]: { admin: "site_admin", super: "site_super_user", plain: "site_user", guest: "site_guest" },
    [SITE_B]: { admin: "site_admin" },
    [SITE_QUIET]: { admin: "site_admin" },
  });
  hub = await startHub();
});

after(() => {
  if (hub && hub.exitCode === null) hub.kill("SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

test("entries and incidents of a site reach a site admin, and only that site's", async () => {
  const adminToken = token("admin");
  const a = connect(`/v1/hub/entries?site_id=${SITE_A}`, adminToken);
  const b = connect(`/v1/hub/entries?site_id=${SITE_B}`, adminToken);
  const inc = connect(`/v1/hub/incidents?site_id=${SITE_A}`, adminToken);
  await Promise.all([a.connection.start(), b.connection.start(), inc.connection.start()]);
  await waitFor(() => a.messages.length >= 30 && b.messages.length >= 30 && inc.messages.length >= 10, 15000,
    "events on every hub");
  await Promise.all([a.connection.stop(), b.connection.stop(), inc.connection.stop()]);
  for (const e of [...a.messages, ...b.messages]) assert.ok("event_category" in e && !("type" in e), "an entry");
  for (const e of inc.messages) assert.ok("type" in e && !("event_category" in e), "an incident");
  const idsA = new Set(a.messages.map((e) => e.id));
  for (const e of b.messages) assert.ok(!idsA.has(e.id), "an event of site A reached a site B subscriber");
  const locksA = new Set(a.messages.map((e) => e.lock_id));
  for (const e of b.messages) assert.ok(!locksA.has(e.lock_id), "site B saw a lock of site A");
});

test("a site user receives only their own entries, and nothing else is allowed", async () => {
  // Learn a real user id of site A from the admin's stream, then give that user the site_user role.
  const admin = connect(`/v1/hub/entries?site_id=${SITE_A}`, token("admin"));
  await admin.connection.start();
  await waitFor(() => admin.messages.some((e) => e.user_id), 15000, "an entry with a user");
  await admin.connection.stop();
  const userId = admin.messages.find((e) => e.user_id).user_id;
  const other = admin.messages.find((e) => e.user_id && e.user_id !== userId);
  writeRoles({
    [SITE_A]: { admin: "site_admin", guest: "site_guest", [userId]: "site_user" },
    [SITE_B]: { admin: "site_admin" },
    [SITE_QUIET]: { admin: "site_admin" },
  });
  const userToken = token(userId);
  await waitFor(async () => (await upgradeStatus(`/v1/hub/entries?site_id=${SITE_A}&user_id=${userId}`,
    { Authorization: `Bearer ${userToken}` })).status === 101, 5000, "the roles file to be reloaded");

  const own = connect(`/v1/hub/entries?site_id=${SITE_A}&user_id=${userId}`, userToken);
  await own.connection.start();
  await waitFor(() => own.messages.length >= 3, 20000, "the user's own entries");
  await own.connection.stop();
  for (const e of own.messages) assert.equal(e.user_id, userId);

  const auth = { Authorization: `Bearer ${userToken}` };
  assert.equal((await upgradeStatus(`/v1/hub/entries?site_id=${SITE_A}`, auth)).status, 403);
  assert.equal((await upgradeStatus(`/v1/hub/incidents?site_id=${SITE_A}`, auth)).status, 403);
  if (other) assert.equal((await upgradeStatus(`/v1/hub/entries?site_id=${SITE_A}&user_id=${other.user_id}`, auth)).status, 403);
  assert.equal((await upgradeStatus(`/v1/hub/entries?site_id=${SITE_B}&user_id=${userId}`, auth)).status, 403);
  // The official client reports a refusal only as a failed start.
  const refused = connect(`/v1/hub/entries?site_id=${SITE_A}`, userToken);
  await assert.rejects(refused.connection.start());
});

test("refusals answer the upgrade request with the right status", async () => {
  const good = token("admin");
  const hubPath = `/v1/hub/entries?site_id=${SITE_A}`;
  const cases = [
    ["no token", hubPath, {}, 401],
    ["bad signature", hubPath, { Authorization: `Bearer ${token("admin", { secret: "another-secret-of-enough-length-0123" })}` }, 401],
    ["expired", hubPath, { Authorization: `Bearer ${token("admin", { ttl: -120 })}` }, 401],
    ["garbage", hubPath, { Authorization: "Bearer not.a.jwt" }, 401],
    ["missing scope", hubPath, { Authorization: `Bearer ${token("admin", { scope: ["user_api.read"] })}` }, 403],
    ["no role in site", `/v1/hub/entries?site_id=site-unknown`, { Authorization: `Bearer ${good}` }, 403],
    ["role that grants nothing", hubPath, { Authorization: `Bearer ${token("guest")}` }, 403],
    ["missing site_id", "/v1/hub/entries", { Authorization: `Bearer ${good}` }, 400],
    ["negotiate", "/v1/hub/entries/negotiate?site_id=x", { Authorization: `Bearer ${good}` }, 404],
    ["other path", "/v2/hub/entries?site_id=x", { Authorization: `Bearer ${good}` }, 404],
    ["token in the query, as browsers send it", `${hubPath}&access_token=${encodeURIComponent(good)}`, {}, 101],
  ];
  for (const [name, p, headers, expected] of cases) {
    const r = await upgradeStatus(p, headers);
    assert.equal(r.status, expected, `${name}: ${r.body}`);
    if (r.status === 401) assert.ok(!r.body.includes("eyJ"), "a 401 body must not echo the token");
  }
  // A plain GET (no upgrade) is a bad request.
  const plain = await new Promise((resolve) => http.get(`${baseUrl}${hubPath}`, (res) => { res.resume(); resolve(res.statusCode); }));
  assert.equal(plain, 400);
});

test("an idle connection outlives the client's server timeout thanks to server pings", async () => {
  const idle = connect(`/v1/hub/entries?site_id=${SITE_QUIET}`, token("admin"), { serverTimeoutMs: 2500 });
  let closed = null;
  idle.connection.onclose((e) => (closed = e || "closed"));
  await idle.connection.start();
  await new Promise((r) => setTimeout(r, 4000)); // longer than the client's timeout: only pings keep it alive
  assert.equal(closed, null);
  assert.equal(idle.connection.state, signalR.HubConnectionState.Connected);
  await idle.connection.stop();
});

test("a server shutdown starts the official client's automatic reconnect", async () => {
  const c = connect(`/v1/hub/entries?site_id=${SITE_A}`, token("admin"), { reconnect: true });
  let reconnecting = null;
  c.connection.onreconnecting((e) => (reconnecting = String(e)));
  await c.connection.start();
  hub.kill("SIGTERM");
  await waitFor(() => reconnecting !== null, 10000, "onreconnecting");
  const code = await new Promise((resolve) => (hub.exitCode !== null ? resolve(hub.exitCode) : hub.on("exit", resolve)));
  assert.equal(code, 0, hub.log());
  await c.connection.stop();
});
