// The `signalr` source in a real hubflow process (signalr -> file) against the ws reference hub: keep-alive
// (client pings, the server timeout), shutdown, handshake variants, one connection per site from a URL
// template, and where the token goes (query parameter, a file re-read before every connect).
"use strict";
const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { waitFor } = require("./support");
const { RS, freePort, hubflowRunner, stop, lines, referenceHub, event, ping } = require("./reference_hub");

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-source-liveness-"));
const hubflow = hubflowRunner(process.env.HUBFLOW_BIN, dir);

after(() => {
  hubflow.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

const hubUrl = (hub, query = "site_id=s1") => `ws://127.0.0.1:${hub.port}/v1/hub/entries?${query}`;

test("the source pings the hub; a hub silent for server_timeout_s is replaced and the gap recorded", async () => {
  let pingsStoppedAt = 0;
  let secondConnectAt = 0;
  const hub = referenceHub({
    scenarios: [
      // Alive for 1.5 s (hub pings every 200 ms, longer than the 1 s timeout in total), then silent.
      (ws) => {
        ws.send("{}" + RS + event("k1"));
        const timer = setInterval(() => ws.readyState === 1 && ws.send(ping()), 200);
        setTimeout(() => { clearInterval(timer); pingsStoppedAt = Date.now(); }, 1500);
        ws.on("close", () => clearInterval(timer));
      },
      (ws) => {
        secondConnectAt = Date.now();
        ws.send("{}" + RS + event("k2"));
        const timer = setInterval(() => ws.readyState === 1 && ws.send(ping()), 200);
        ws.on("close", () => clearInterval(timer));
      },
    ],
  });
  await hub.listen();
  const c = hubflow.consumer("keepalive", { url: hubUrl(hub), auth: { token: "t" }, ping_interval_s: 0.2,
                                            server_timeout_s: 1 });
  try {
    await waitFor(() => lines(c.out).length === 2, 10000, "the event of the replacement connection");
    assert.deepEqual(lines(c.out).map((l) => JSON.parse(l).id), ["k1", "k2"]);
    const clientPings = hub.connections[0].received.filter((m) => m.type === 6).length;
    assert.ok(clientPings >= 4, `${clientPings} client pings in the first connection's 2.5 s`);
    // The hub's pings kept the connection; only the silence after them ended it.
    assert.ok(pingsStoppedAt > 0 && secondConnectAt - pingsStoppedAt >= 900,
              `replaced ${secondConnectAt - pingsStoppedAt} ms after the hub fell silent`);
    assert.match(c.text, /disconnected from .*: no message from the hub for 1\.000 s \(server timeout\)/);
    await waitFor(() => /reconnected to .*\(\d+\.\d+ s, cause: no message from the hub for 1\.000 s/.test(c.text), 5000,
                  "the gap in the log");
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
  }
});

test("a gap still open at shutdown is reported", async () => {
  const port = await freePort();
  const c = hubflow.consumer("gap-at-stop", { url: `ws://127.0.0.1:${port}/v1/hub/entries?site_id=s9`, auth: { token: "t" } });
  await waitFor(() => /cannot connect to/.test(c.text), 10000, "a failed attempt");
  assert.equal(await stop(c), 0);
  assert.match(c.text, /stopping while disconnected from ws:\/\/127\.0\.0\.1:\d+\/v1\/hub\/entries\?site_id=s9 since \S+Z \(\d+\.\d+ s, cause: connect: Connection refused\)/);
  assert.match(c.text, /disconnected_ms=\d+/);
});

test("shutdown sends the hub a Close message and a WebSocket close", async () => {
  const hub = referenceHub({ scenarios: [(ws) => ws.send("{}" + RS + event("s1"))] });
  await hub.listen();
  const c = hubflow.consumer("shutdown", { url: hubUrl(hub), auth: { token: "t" } });
  try {
    await waitFor(() => lines(c.out).length === 1, 10000, "the first event");
  } finally {
    assert.equal(await stop(c), 0);
  }
  const connection = hub.connections[0];
  await waitFor(() => connection.closeCode !== null, 5000, "the WebSocket to close");
  assert.equal(connection.closeCode, 1000);
  assert.ok(connection.received.some((m) => m.type === 7), JSON.stringify(connection.received));
  assert.equal(hub.connections.length, 1, "no reconnect while stopping");
  await hub.close();
});

test("handshake variants: own frame, fragments, unknown fields; refusals and silence are retried", async () => {
  const hub = referenceHub({
    scenarios: [
      // The handshake answer in a frame of its own, the event in the next.
      (ws) => { ws.send("{}" + RS); ws.send(event("h1")); ws.close(1000); },
      // The handshake answer split across two WebSocket fragments.
      (ws) => { ws.send("{", { fin: false }); ws.send("}" + RS, { fin: true }); ws.send(event("h2")); ws.close(1000); },
      // Fields a newer server may add.
      (ws) => { ws.send(JSON.stringify({ minorVersion: 1, extra: "x" }) + RS + event("h3")); ws.close(1000); },
      // The server refuses the protocol.
      (ws) => ws.send(JSON.stringify({ error: "Requested protocol 'json' is not available." }) + RS),
      // A message where the handshake answer belongs: not a handshake, so nothing of it is emitted.
      (ws) => ws.send(event("never")),
      // No answer at all: the handshake timeout ends the attempt.
      () => {},
      (ws) => ws.send("{}" + RS + event("h4")),
    ],
  });
  await hub.listen();
  const c = hubflow.consumer("handshakes", { url: hubUrl(hub), auth: { token: "t" }, handshake_timeout_s: 1 });
  try {
    await waitFor(() => lines(c.out).length >= 4, 15000, "four events");
    assert.deepEqual(lines(c.out).map((l) => JSON.parse(l).id), ["h1", "h2", "h3", "h4"]);
    assert.match(c.text, /refused the SignalR handshake: Requested protocol 'json' is not available\./);
    assert.match(c.text, /refused the SignalR handshake: Expected a handshake response from the server\./);
    assert.match(c.text, /no answer within the handshake timeout \(1\.000 s\)/);
    assert.equal(c.proc.exitCode, null, "the host keeps running");
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
  }
});

test("a URL template with sites: one connection per site; kind from the hub path; token as query parameter", async () => {
  const hub = referenceHub({
    scenarios: [(ws, socket, req) => {
      const site = new URL(req.url, "http://hub").searchParams.get("site_id");
      ws.send("{}" + RS + event(`${site}-1`));
    }],
  });
  await hub.listen();
  const token = "query-token-4711";
  const out = path.join(dir, "sites", "{kind}-{site_id}.jsonl");
  const c = hubflow.consumer("sites", {
    url: `ws://127.0.0.1:${hub.port}/v1/hub/incidents?site_id={site_id}`, sites: ["s-a", "s-b"],
    auth: { token }, token_in: "query",
  }, out);
  const file = (site) => path.join(dir, "sites", `incident-${site}.jsonl`);
  try {
    await waitFor(() => lines(file("s-a")).length === 1 && lines(file("s-b")).length === 1, 10000,
                  "one event per site");
    assert.equal(JSON.parse(lines(file("s-a"))[0]).id, "s-a-1");
    assert.equal(JSON.parse(lines(file("s-b"))[0]).id, "s-b-1");
    assert.equal(hub.upgrades.length, 2);
    for (const u of hub.upgrades) {
      assert.match(u.url, new RegExp(`^/v1/hub/incidents\\?site_id=s-[ab]&access_token=${token}$`));
      assert.equal(u.auth, "", "no Authorization header when the token goes in the query");
    }
    assert.doesNotMatch(c.text, new RegExp(token));
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
  }
});

test("token_file is read again before every connect", async () => {
  const tokenFile = path.join(dir, "token");
  fs.writeFileSync(tokenFile, "file-token-1\n");
  const hub = referenceHub({ scenarios: [(ws) => ws.send("{}" + RS + event(`f${hub.connections.length}`))] });
  await hub.listen();
  const c = hubflow.consumer("token-file", { url: hubUrl(hub), auth: { token_file: tokenFile } });
  try {
    await waitFor(() => lines(c.out).length === 1, 10000, "the first event");
    fs.writeFileSync(tokenFile, "file-token-2\n");
    for (const ws of hub.clients()) ws.close(1001, "restart");
    await waitFor(() => lines(c.out).length === 2, 10000, "the event after the reconnect");
    assert.deepEqual(hub.upgrades.map((u) => u.auth), ["Bearer file-token-1", "Bearer file-token-2"]);
    assert.doesNotMatch(c.text, /file-token-\d/);
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
  }
});

test("a token_file missing at the start is retried until it appears", async () => {
  const tokenFile = path.join(dir, "late-token");
  const hub = referenceHub({ scenarios: [(ws) => ws.send("{}" + RS + event("late"))] });
  await hub.listen();
  const c = hubflow.consumer("late-token", { url: hubUrl(hub), auth: { token_file: tokenFile } });
  try {
    await waitFor(() => /no token: cannot read token_file/.test(c.text), 10000, "the missing file reported");
    assert.equal(hub.upgrades.length, 0, "no upgrade without a token");
    fs.writeFileSync(tokenFile, "late-token-1\n");
    await waitFor(() => lines(c.out).length === 1, 10000, "the event once the file exists");
    assert.deepEqual(hub.upgrades.map((u) => u.auth), ["Bearer late-token-1"]);
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
  }
});

test("a hub name that does not resolve is retried while the other hubs stream", async () => {
  let sent = 0;
  const hub = referenceHub({
    scenarios: [(ws) => {
      ws.send("{}" + RS);
      const t = setInterval(() => ws.readyState === 1 && ws.send(event(`r${++sent}`)), 20);
      ws.on("close", () => clearInterval(t));
    }],
  });
  await hub.listen();
  // .invalid never resolves (RFC 2606).
  const c = hubflow.consumer("unresolvable", {
    urls: [hubUrl(hub), "ws://hubflow-test.invalid:1/v1/hub/entries?site_id=s2"], auth: { token: "t" },
  });
  try {
    await waitFor(() => (c.text.match(/cannot resolve hubflow-test\.invalid/g) || []).length >= 2, 20000,
                  "the name retried");
    await waitFor(() => lines(c.out).length >= 20, 5000, "events from the hub that resolves");
    assert.equal(hub.connections.length, 1, "the working hub was never dropped");
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
  }
});
