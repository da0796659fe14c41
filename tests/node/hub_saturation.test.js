// The hub offered more than it can push: the generator runs as fast as it can (rate 0). Clients that keep
// reading must not be closed as "too slow"; the hub holds the pipeline back instead, and every client gets the
// same unbroken sequence of events.
"use strict";
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const signalR = require("@microsoft/signalr");
const { waitFor, mintToken } = require("./support");

const HUBFLOW = process.env.HUBFLOW_BIN;
const SECRET = "hubflow-test-secret-0123456789abcdef";
const SITE = "site-a";
const CLIENTS = 3;
const WANTED = 30000; // events each client must receive
let dir, hub, url, token;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-saturation-"));
  fs.writeFileSync(path.join(dir, "roles.json"), JSON.stringify({ [SITE]: { admin: "site_admin" } }));
  const pipeline = {
    data_dir: path.join(dir, "state"),
    sources: { ks: { type: "generator", rate: 0, sites: [SITE], seed: 5, incident_ratio: 0 } },
    // A small outbound cap, so that any client more than a few batches behind would be closed.
    sinks: { hub: { type: "signalr_hub", inputs: ["ks"], listen: "127.0.0.1:0", auth: { hs256_secret: SECRET },
                    roles: { file: path.join(dir, "roles.json") }, max_buffered_bytes: 1048576 } },
  };
  fs.writeFileSync(path.join(dir, "p.json"), JSON.stringify(pipeline));
  hub = spawn(HUBFLOW, ["run", path.join(dir, "p.json")], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  hub.stderr.on("data", (d) => (log += d));
  await waitFor(() => /on ws:\/\/([0-9.]+:\d+)/.test(log), 10000, "the hub to listen");
  url = `http://${/on ws:\/\/([0-9.]+:\d+)/.exec(log)[1]}/v1/hub/entries?site_id=${SITE}`;
  token = mintToken(HUBFLOW, SECRET, "admin");
});

after(async () => {
  hub.kill("SIGTERM");
  await new Promise((r) => (hub.exitCode !== null ? r() : hub.on("exit", r)));
  assert.equal(hub.exitCode, 0);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("clients that keep reading are never closed as too slow, and all get the same events", async () => {
  const clients = [];
  for (let i = 0; i < CLIENTS; i++) {
    const connection = new signalR.HubConnectionBuilder()
      .withUrl(url, { accessTokenFactory: () => token, skipNegotiation: true,
        transport: signalR.HttpTransportType.WebSockets })
      .configureLogging(signalR.LogLevel.None).build();
    const client = { connection, ids: [], closed: null };
    connection.on("ReceiveMessage", (m) => client.ids.push(JSON.parse(m).id));
    connection.onclose((e) => (client.closed = e ? e.message : "closed"));
    await connection.start();
    clients.push(client);
  }
  try {
    await waitFor(() => clients.every((c) => c.ids.length >= WANTED || c.closed), 60000,
      `${WANTED} events on every client`);
    for (const c of clients) assert.equal(c.closed, null, "a client was closed: " + c.closed);
    // The last client connected last: from its first event on, everyone must have the very same sequence.
    const last = clients[CLIENTS - 1].ids;
    const first = last[0];
    for (const c of clients) {
      const at = c.ids.indexOf(first);
      assert.ok(at >= 0, "every client saw the last client's first event");
      const n = Math.min(c.ids.length - at, last.length, WANTED / 2);
      assert.deepEqual(c.ids.slice(at, at + n), last.slice(0, n));
    }
  } finally {
    await Promise.all(clients.map((c) => c.connection.stop()));
  }
});
