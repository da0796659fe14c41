// The `signalr` source in a real hubflow process (signalr -> file), against
//  - the real signalr_hub in another hubflow process, killed and restarted mid-stream;
//  - a reference hub written with `ws` and the official package's own JsonHubProtocol writer, which plays
//    the handshake variants, batching, fragmentation, Close messages and bad input, one per connection;
//  - a small OAuth2 token endpoint: renewal ahead of expiry, 401 -> new token, 403 -> long backoff.
"use strict";
const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const http = require("node:http");
const os = require("node:os");
const path = require("node:path");
const signalR = require("@microsoft/signalr");
const { waitFor, mintToken } = require("./support");
const { RS, protocol, freePort, hubflowRunner, stop, lines, referenceHub, invocation, event, closeMessage } =
  require("./reference_hub");

const HUBFLOW = process.env.HUBFLOW_BIN;
const SECRET = "hubflow-test-secret-0123456789abcdef";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-source-"));
const hubflow = hubflowRunner(HUBFLOW, dir);
const runHubflow = hubflow.run;
const consumer = hubflow.consumer;

after(() => {
  hubflow.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("from a real hub: complete and in order; a killed hub is reconnected and the gap recorded", async () => {
  const site = "site-a";
  const roles = path.join(dir, "roles.json");
  fs.writeFileSync(roles, JSON.stringify({ [site]: { admin: "site_admin" } }));
  const gen = { type: "generator", sites: [site], seed: 11, incident_ratio: 0 };
  // The ids the generator makes, in order: the same seed and site give the same sequence.
  const expectedFile = path.join(dir, "expected.jsonl");
  const expected = runHubflow("expected", {
    sources: { g: { ...gen, count: 20000, rate: 0 } },
    sinks: { f: { type: "file", inputs: ["g"], path: expectedFile } },
  });
  assert.equal(await expected.exited, 0);
  const ids = lines(expectedFile).map((l) => JSON.parse(l).id);
  const position = new Map(ids.map((id, i) => [id, i]));

  const port = await freePort();
  const hubPipeline = {
    data_dir: path.join(dir, "hub-state"),
    sources: { g: { ...gen, rate: 1000 } },
    sinks: { hub: { type: "signalr_hub", inputs: ["g"], listen: `127.0.0.1:${port}`, auth: { hs256_secret: SECRET },
                    roles: { file: roles } } },
  };
  let hub = runHubflow("hub1", hubPipeline);
  await waitFor(() => /on ws:/.test(hub.text), 10000, "the hub to listen");
  const token = mintToken(HUBFLOW, SECRET, "admin");
  const c = consumer("from-hub", { url: `ws://127.0.0.1:${port}/v1/hub/entries?site_id=${site}`, auth: { token } });
  await waitFor(() => lines(c.out).length >= 500, 15000, "500 events from the first hub");
  hub.proc.kill("SIGKILL"); // no Close message: the source must notice the dead socket on its own
  await hub.exited;
  await waitFor(() => /disconnected from/.test(c.text), 5000, "the source to see the hub gone");
  hub = runHubflow("hub2", hubPipeline);
  await waitFor(() => /reconnected to .* cause: /.test(c.text), 15000, "the source to reconnect by itself");
  const before = lines(c.out).length;
  await waitFor(() => lines(c.out).length >= before + 300, 15000, "events from the restarted hub");
  assert.equal(await stop(c), 0);
  await stop(hub);

  // Two runs of the generator's sequence, each contiguous: nothing lost or reordered within a connection.
  const got = lines(c.out).map((l) => position.get(JSON.parse(l).id));
  assert.ok(got.every((p) => p !== undefined), "every event is one the generator made");
  let segments = 1;
  for (let i = 1; i < got.length; i++) {
    if (got[i] === got[i - 1] + 1) continue;
    segments++;
    assert.ok(got[i] < got[i - 1], `a jump forward at line ${i + 1}: events lost (${got[i - 1]} -> ${got[i]})`);
  }
  assert.equal(segments, 2, "one run per hub process");
  assert.match(c.text, /disconnected from .* to .* \(\d+\.\d+ s, cause: .*\); events the hub sent in that interval/);
  assert.match(c.text, /disconnects=1 /);
  assert.doesNotMatch(c.text, new RegExp(token.slice(-20)), "the token never appears in the log");
});

// ---- the reference hub (reference_hub.js) ----------------------------------------------------------------

test("reference hub: handshake variants, batching, fragments, Close messages and bad input", async () => {
  const big = "x".repeat(80 * 1024);
  const hub = referenceHub({
    scenarios: [
      // Handshake answer and the first message in one frame; three invocations batched in one frame; a ping; an
      // unknown message type and unknown fields; a non-string argument; another method; a message in three
      // WebSocket fragments; then Close with allowReconnect.
      (ws) => {
        ws.send("{}" + RS + event("a1"));
        ws.send(event("a2") + event("a3") + event("a4"));
        ws.send(protocol.writeMessage({ type: signalR.MessageType.Ping }));
        ws.send(JSON.stringify({ type: 99, whatever: [1, 2] }) + RS);
        ws.send(JSON.stringify({ type: 1, target: "ReceiveMessage", arguments: [JSON.stringify({ id: "a5" })], extra: { x: 1 } }) + RS);
        ws.send(JSON.stringify({ type: 1, target: "ReceiveMessage", arguments: [{ id: "a6", nested: true }] }) + RS);
        ws.send(JSON.stringify({ type: 1, target: "SomethingElse", arguments: ["ignored"] }) + RS);
        const split = event("a7");
        ws.send(split.slice(0, 10), { fin: false });
        ws.send(split.slice(10, 20), { fin: false });
        ws.send(split.slice(20), { fin: true });
        ws.send(closeMessage({ error: "server restarting", allowReconnect: true }));
      },
      // Close without allowReconnect: a source reconnects all the same.
      (ws) => { ws.send("{}" + RS + event("b1")); ws.send(closeMessage()); },
      // Invalid JSON after a good event.
      (ws) => { ws.send("{}" + RS + event("c1")); ws.send("{not json" + RS); },
      // A message over the source's max_message_bytes (64 KiB here).
      (ws) => { ws.send("{}" + RS + event("d1")); ws.send(invocation(big)); },
      // Binary garbage.
      (ws) => { ws.send("{}" + RS + event("e1")); ws.send(Buffer.from([0xde, 0xad, 0xbe, 0xef])); },
      // An abrupt close in the middle of a frame: a header announcing 100 bytes, 3 of them, then a reset.
      (ws, socket) => {
        ws.send("{}" + RS + event("f1"), () => { socket.write(Buffer.from([0x81, 100, 0x41, 0x42, 0x43])); socket.destroy(); });
      },
      // A WebSocket close frame with a code.
      (ws) => { ws.send("{}" + RS + event("g1")); ws.close(1001, "going away"); },
      // Finally a well-behaved hub.
      (ws) => { ws.send("{}" + RS + event("h1")); ws.send(event("h2")); },
    ],
  });
  await hub.listen();
  const c = consumer("reference", { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id=s1`, auth: { token: "t" },
                                   max_message_bytes: 65536 });
  const want = ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "b1", "c1", "d1", "e1", "f1", "g1", "h1", "h2"];
  try {
    await waitFor(() => lines(c.out).length >= want.length, 20000, `${want.length} events`);
    const got = lines(c.out);
    assert.deepEqual(got.map((l) => JSON.parse(l).id), want);
    assert.equal(got[5], JSON.stringify({ id: "a6", nested: true }), "a non-string argument is kept as its JSON text");
    for (const cause of [/Close with error "server restarting" \(allowReconnect\)/, /the hub sent Close;/,
      /invalid message from the hub/, /WebSocket protocol error from the hub/, /binary frame/,
      /closed the connection without a Close message|connection error/, /closed the WebSocket \(code 1001, going away\)/])
      assert.match(c.text, cause);
    assert.equal(c.proc.exitCode, null, "the host keeps running");
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
  }
  assert.match(c.text, /protocol_errors=[1-9]/);
});

test("the first connect failing is retried until the hub appears", async () => {
  const port = await freePort();
  const c = consumer("late-hub", { url: `ws://127.0.0.1:${port}/v1/hub/incidents?site_id=s2`, auth: { token: "t" } });
  await waitFor(() => (c.text.match(/cannot connect to/g) || []).length >= 3, 10000, "three failed attempts");
  const hub = referenceHub({ scenarios: [(ws) => ws.send("{}" + RS + event("late"))], port });
  await hub.listen();
  try {
    await waitFor(() => lines(c.out).length === 1, 15000, "the event once the hub is up");
    assert.equal(JSON.parse(lines(c.out)[0]).id, "late");
    // The log line may reach stderr a moment after the event reaches the file.
    await waitFor(() => /reconnected to .*cause: connect: Connection refused/.test(c.text), 5000,
      "the reconnect line naming the cause");
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
  }
});

// ---- tokens from an OAuth2 endpoint ----------------------------------------------------------------------

// An IdentityServer-style /connect/token: client_credentials for client "hubflow" / secret "s3cret", tokens
// "tok-1", "tok-2", ... living `lifetime` seconds. `delayMs(n)` holds the answer to the n-th request (from 1).
function tokenEndpoint({ lifetime, delayMs = () => 0 }) {
  const ep = { issued: [], requests: [], answered: 0 };
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", async () => {
      const n = ep.requests.length + 1;
      ep.requests.push({});
      await new Promise((r) => setTimeout(r, delayMs(n)));
      ep.answered += 1;
      const form = new URLSearchParams(body);
      ep.requests[n - 1] = Object.fromEntries(form);
      if (req.url !== "/connect/token" || form.get("client_id") !== "hubflow" || form.get("client_secret") !== "s3cret") {
        res.writeHead(400, { "Content-Type": "application/json" });
        return res.end(JSON.stringify({ error: "invalid_client" }));
      }
      const token = `tok-${ep.issued.length + 1}`;
      ep.issued.push(token);
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ access_token: token, expires_in: lifetime, token_type: "Bearer",
                               scope: form.get("scope") }));
    });
  });
  ep.listen = () => new Promise((r) => server.listen(0, "127.0.0.1", () => { ep.port = server.address().port; r(); }));
  ep.close = () => new Promise((r) => server.close(r));
  return ep;
}

const oauth2 = (ep, extra = {}) => ({
  oauth2: { token_url: `http://127.0.0.1:${ep.port}/connect/token`, client_id: "hubflow", client_secret: "s3cret", ...extra },
});

test("OAuth2: renewed ahead of expiry while connected; a 401 on reconnect fetches a new token", async () => {
  const ep = tokenEndpoint({ lifetime: 2 });
  await ep.listen();
  let revoked = new Set();
  const hub = referenceHub({
    accept: (req) => (revoked.has((req.headers.authorization || "").replace("Bearer ", "")) ? 401 : 101),
    scenarios: [
      (ws) => { ws.send("{}" + RS + event("o1")); const t = setInterval(() => ws.readyState === 1 && ws.send(protocol.writeMessage({ type: 6 })), 200); ws.on("close", () => clearInterval(t)); },
      (ws) => ws.send("{}" + RS + event("o2")),
    ],
  });
  await hub.listen();
  const c = consumer("oauth", { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id=s3`,
                                auth: oauth2(ep, { refresh_at: 0.5 }) });
  try {
    await waitFor(() => lines(c.out).length === 1, 10000, "the first event");
    assert.equal(ep.requests[0].grant_type, "client_credentials");
    assert.equal(ep.requests[0].scope, "user_api.full_access");
    assert.equal(hub.upgrades[0].auth, "Bearer tok-1");
    // Lifetime 2 s, renewed at half of it: at least two more tokens while the one connection stays up.
    await waitFor(() => ep.issued.length >= 3, 6000, "tokens renewed ahead of expiry");
    assert.equal(hub.connections.length, 1, "renewal needs no reconnect");
    // Every token issued so far is refused from now on: the next upgrade gets a 401, the source fetches a
    // new token and the attempt after that succeeds.
    revoked = new Set(ep.issued);
    const issuedBefore = ep.issued.length;
    for (const client of hub.clients()) client.close(1001, "restart");
    await waitFor(() => lines(c.out).length === 2, 10000, "the event after the reconnect");
    assert.match(c.text, /refused the token: HTTP 401/);
    assert.ok(ep.issued.length > issuedBefore, "a new token was fetched after the 401");
    assert.equal(hub.upgrades.at(-1).auth, `Bearer ${ep.issued.at(-1)}`);
    assert.doesNotMatch(c.text, /tok-\d|s3cret/, "neither tokens nor secrets are logged");
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
    await ep.close();
  }
});

test("OAuth2: a slow token endpoint does not hold up the events of an open hub", async () => {
  // The renewal request (the second) is answered after 3 s; the hub sends an event every 20 ms meanwhile.
  const ep = tokenEndpoint({ lifetime: 2, delayMs: (n) => (n === 2 ? 3000 : 0) });
  await ep.listen();
  let sent = 0;
  const hub = referenceHub({
    scenarios: [(ws) => {
      ws.send("{}" + RS);
      const t = setInterval(() => ws.readyState === 1 && ws.send(event(`s${++sent}`)), 20);
      ws.on("close", () => clearInterval(t));
    }],
  });
  await hub.listen();
  const c = consumer("slow-token", { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id=s4`,
                                     auth: oauth2(ep, { refresh_at: 0.5 }) });
  try {
    await waitFor(() => lines(c.out).length >= 5, 10000, "the first events");
    await waitFor(() => ep.requests.length === 2, 5000, "the renewal request");
    const before = lines(c.out).length;
    await waitFor(() => lines(c.out).length >= before + 25, 2500, "events while the renewal is pending");
    assert.equal(ep.answered, 1, "the renewal was still pending while those events arrived");
    await waitFor(() => ep.answered >= 2, 5000, "the renewal answered");
    assert.equal(hub.connections.length, 1, "renewal needs no reconnect");
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
    await ep.close();
  }
});

test("a 403 is a configuration error: logged as such and retried on the long backoff, not in a loop", async () => {
  const hub = referenceHub({ accept: () => 403, scenarios: [() => {}] });
  await hub.listen();
  const c = consumer("forbidden", {
    url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id=s4&access_token=secret-in-url`, auth: { token: "t" },
    reconnect: { initial_ms: 10, max_ms: 50, config_error_ms: 1500 },
  });
  try {
    await waitFor(() => hub.upgrades.length >= 2, 5000, "the second attempt");
    const t0 = Date.now();
    await waitFor(() => Date.now() - t0 > 2000, 3000, "two seconds");
    // With 10-50 ms backoff a hot loop would make dozens of attempts; the 1.5 s wait allows two or three.
    assert.ok(hub.upgrades.length <= 4, `${hub.upgrades.length} attempts in about 3.5 s`);
    assert.match(c.text, /error \[ks\] cannot connect to .*access_token=\*\*\*.*configuration error: the hub answered HTTP 403/);
    assert.doesNotMatch(c.text, /secret-in-url/);
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
  }
});


test("wss://: the hub's certificate is checked against the CAs and the URL's host; insecure skips it, loudly", async () => {
  const tls = fs.mkdtempSync(path.join(dir, "tls-"));
  const made = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    "-keyout", path.join(tls, "key.pem"), "-out", path.join(tls, "cert.pem"), "-subj", "/CN=127.0.0.1",
    "-addext", "subjectAltName=IP:127.0.0.1"], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  const roles = path.join(tls, "roles.json");
  fs.writeFileSync(roles, JSON.stringify({ "site-t": { admin: "site_admin" } }));
  const hub = runHubflow("tls-hub", {
    data_dir: path.join(tls, "state"),
    sources: { g: { type: "generator", rate: 200, sites: ["site-t"], incident_ratio: 0 } },
    sinks: { hub: { type: "signalr_hub", inputs: ["g"], listen: "127.0.0.1:0", auth: { hs256_secret: SECRET },
                    tls: { cert: path.join(tls, "cert.pem"), key: path.join(tls, "key.pem") }, roles: { file: roles } } },
  });
  await waitFor(() => /on wss:\/\/127\.0\.0\.1:(\d+)/.test(hub.text), 10000, "the TLS hub to listen");
  const port = /on wss:\/\/127\.0\.0\.1:(\d+)/.exec(hub.text)[1];
  const token = mintToken(HUBFLOW, SECRET, "admin");
  const at = (host) => `wss://${host}:${port}/v1/hub/entries?site_id=site-t`;
  const trusted = consumer("tls-trusted", { url: at("127.0.0.1"), auth: { token }, tls: { ca_file: path.join(tls, "cert.pem"), insecure: false } });
  const unknownCa = consumer("tls-unknown-ca", { url: at("127.0.0.1"), auth: { token } });
  const wrongName = consumer("tls-wrong-name", { url: at("localhost"), auth: { token }, tls: { ca_file: path.join(tls, "cert.pem"), insecure: false } });
  const insecure = consumer("tls-insecure", { url: at("localhost"), auth: { token }, tls: { ca_file: "", insecure: true } });
  try {
    await waitFor(() => lines(trusted.out).length >= 5 && lines(insecure.out).length >= 5, 15000, "events over wss://");
    await waitFor(() => /TLS handshake with 127\.0\.0\.1 failed: self[- ]signed certificate/.test(unknownCa.text), 10000,
      "the unknown CA to be refused");
    await waitFor(() => /TLS handshake with localhost failed: .*(mismatch|hostname)/i.test(wrongName.text), 10000,
      "the host name mismatch to be refused");
    assert.equal(lines(unknownCa.out).length, 0);
    assert.equal(lines(wrongName.out).length, 0);
    assert.match(insecure.text, /tls\.insecure is on: hub certificates and host names are NOT checked/);
  } finally {
    for (const c of [trusted, unknownCa, wrongName, insecure]) assert.equal(await stop(c), 0);
    await stop(hub);
  }
});
