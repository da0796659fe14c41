// The official @microsoft/signalr client with @microsoft/signalr-protocol-msgpack against hubflow's signalr_hub
// sink: the MessagePack hub protocol negotiated in the handshake, alone and beside JSON clients of the same hub,
// plus the wire itself read with `ws` (binary frames, Completion, Close on bad input).
//
// Run by ctest (see tests/CMakeLists.txt) with HUBFLOW_BIN pointing at the built program.
"use strict";
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const signalR = require("@microsoft/signalr");
const { MessagePackHubProtocol } = require("@microsoft/signalr-protocol-msgpack");
const msgpack = require("@msgpack/msgpack");
const WebSocket = require("ws");
const { waitFor, mintToken } = require("./support");

const HUBFLOW = process.env.HUBFLOW_BIN;
const SECRET = "hubflow-test-secret-0123456789abcdef";
const SITE_A = "site-a";
const SITE_B = "site-b";
const RS = "\x1e";

let dir, hub, baseUrl;

function connect(hubPath, { messagepack = true, reconnect = false } = {}) {
  const accessToken = mintToken(HUBFLOW, SECRET, "admin");
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(`${baseUrl}${hubPath}`, {
      accessTokenFactory: () => accessToken,
      skipNegotiation: true,
      transport: signalR.HttpTransportType.WebSockets,
    })
    .configureLogging(signalR.LogLevel.None);
  if (messagepack) builder.withHubProtocol(new MessagePackHubProtocol());
  if (reconnect) builder.withAutomaticReconnect();
  const connection = builder.build();
  const raw = [];
  connection.on("ReceiveMessage", (m) => raw.push(m));
  return { connection, raw, messages: () => raw.map((m) => JSON.parse(m)) };
}

function startHub() {
  return new Promise((resolve, reject) => {
    const roles = path.join(dir, "roles.json");
    fs.writeFileSync(roles, JSON.stringify({ [SITE_A]: { admin: "site_admin" }, [SITE_B]: { admin: "site_admin" } }));
    const pipeline = {
      data_dir: path.join(dir, "state"),
      sources: {
        // Payloads with escapes and non-ASCII text, so both protocols carry more than plain ASCII.
        ks: { type: "generator", rate: 400, sites: [SITE_A, SITE_B], users_per_site: 3, incident_ratio: 0.3, seed: 5 },
      },
      sinks: {
        hub: { type: "signalr_hub", inputs: ["ks"], listen: "127.0.0.1:0", auth: { hs256_secret: SECRET },
               roles: { file: roles }, ping_interval_s: 1 },
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

// A raw WebSocket speaking MessagePack: every frame kept as {binary, data}. The handshake goes as text (the
// JavaScript client) or, with `first` (bytes to follow it), in one binary frame (the .NET client).
async function rawMessagePack(hubPath, first = null) {
  const ws = new WebSocket(`${baseUrl.replace("http", "ws")}${hubPath}`, {
    headers: { Authorization: `Bearer ${mintToken(HUBFLOW, SECRET, "admin")}` },
    perMessageDeflate: false,
  });
  const frames = [];
  // ws 7 hands text messages over as strings, binary ones as Buffers.
  ws.on("message", (data) => frames.push({ binary: typeof data !== "string", data: Buffer.from(data) }));
  ws.closed = new Promise((r) => ws.on("close", (code) => r(code)));
  await new Promise((resolve, reject) => { ws.on("open", resolve); ws.on("error", reject); });
  const handshake = '{"protocol":"messagepack","version":1}' + RS;
  if (first) ws.send(Buffer.concat([Buffer.from(handshake), first]));
  else ws.send(handshake);
  return { ws, frames };
}

// The size-prefixed messages of binary frames, decoded with @msgpack/msgpack (what the official client uses).
function decodeAll(frames) {
  const out = [];
  for (const f of frames) {
    let at = 0;
    while (at < f.data.length) {
      let length = 0, shift = 0, byte;
      do {
        byte = f.data[at++];
        length |= (byte & 0x7f) << shift;
        shift += 7;
      } while (byte & 0x80);
      out.push(msgpack.decode(f.data.subarray(at, at + length)));
      at += length;
    }
  }
  return out;
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-msgpack-"));
  hub = await startHub();
});

after(() => {
  if (hub && hub.exitCode === null) hub.kill("SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

test("MessagePack clients get the entries and incidents of their site, and only those", async () => {
  const a = connect(`/v1/hub/entries?site_id=${SITE_A}`);
  const b = connect(`/v1/hub/entries?site_id=${SITE_B}`);
  const inc = connect(`/v1/hub/incidents?site_id=${SITE_A}`);
  await Promise.all([a.connection.start(), b.connection.start(), inc.connection.start()]);
  await waitFor(() => a.raw.length >= 30 && b.raw.length >= 30 && inc.raw.length >= 10, 15000, "events on every hub");
  await Promise.all([a.connection.stop(), b.connection.stop(), inc.connection.stop()]);
  for (const e of [...a.messages(), ...b.messages()]) assert.ok("event_category" in e && !("type" in e), "an entry");
  for (const e of inc.messages()) assert.ok("type" in e && !("event_category" in e), "an incident");
  const idsA = new Set(a.messages().map((e) => e.id));
  for (const e of b.messages()) assert.ok(!idsA.has(e.id), "an event of site A reached a site B subscriber");
});

test("JSON and MessagePack clients of one hub receive the same events, byte for byte", async () => {
  const json = connect(`/v1/hub/entries?site_id=${SITE_A}`, { messagepack: false });
  const mp = connect(`/v1/hub/entries?site_id=${SITE_A}`);
  const mp2 = connect(`/v1/hub/entries?site_id=${SITE_A}`);
  await Promise.all([json.connection.start(), mp.connection.start(), mp2.connection.start()]);
  await waitFor(() => json.raw.length >= 200 && mp.raw.length >= 200 && mp2.raw.length >= 200, 20000,
    "200 events on each connection");
  await Promise.all([json.connection.stop(), mp.connection.stop(), mp2.connection.stop()]);
  // The clients joined a few events apart: compare from the first event all of them saw.
  const start = [json.raw, mp.raw, mp2.raw].map((r) => JSON.parse(r[0]).id);
  const firstCommon = json.raw.find((m) => [mp.raw, mp2.raw].every((r) => r.includes(m)));
  assert.ok(firstCommon, `no event in common (first ids ${start})`);
  const tail = (r) => r.slice(r.indexOf(firstCommon));
  const n = Math.min(...[json.raw, mp.raw, mp2.raw].map((r) => tail(r).length));
  assert.ok(n >= 100, `only ${n} events in common`);
  assert.deepEqual(tail(mp.raw).slice(0, n), tail(json.raw).slice(0, n));
  assert.deepEqual(tail(mp2.raw).slice(0, n), tail(json.raw).slice(0, n));
});

test("an invocation with an id gets the Completion error in MessagePack; the connection stays", async () => {
  const c = connect(`/v1/hub/entries?site_id=${SITE_A}`);
  await c.connection.start();
  await assert.rejects(c.connection.invoke("NoSuchMethod", 1), /Method does not exist\./);
  const before = c.raw.length;
  await waitFor(() => c.raw.length > before + 5, 10000, "events after the Completion");
  assert.equal(c.connection.state, signalR.HubConnectionState.Connected);
  await c.connection.stop();
});

test("on the wire: binary frames, the reference layout, pings, and a Close for a malformed message", async () => {
  const { ws, frames } = await rawMessagePack(`/v1/hub/entries?site_id=${SITE_B}`);
  await waitFor(() => frames.length >= 5, 10000, "the handshake answer and events");
  // ASP.NET Core switches to binary before it answers the handshake; so does hubflow.
  assert.equal(frames[0].binary, true);
  assert.equal(frames[0].data.subarray(0, 3).toString(), "{}" + RS);
  const rest = [{ binary: true, data: frames[0].data.subarray(3) }, ...frames.slice(1)];
  assert.ok(frames.every((f) => f.binary), "every frame is binary");
  const messages = decodeAll(rest);
  const invocation = messages.find((m) => m[0] === 1);
  // [1, headers, invocationId, target, arguments, streamIds], as ASP.NET Core writes it.
  assert.deepEqual(invocation.slice(0, 4), [1, {}, null, "ReceiveMessage"]);
  assert.equal(invocation.length, 6);
  assert.deepEqual(invocation[5], []);
  assert.equal(typeof invocation[4][0], "string");
  assert.equal(JSON.parse(invocation[4][0]).site_id ?? SITE_B, SITE_B);
  await waitFor(() => decodeAll(frames.slice(1)).some((m) => m.length === 1 && m[0] === 6), 5000, "a ping [6]");

  // An invocation with an id: [3, {}, id, 1 (error), text].
  const prefixOf = (n) => Buffer.from([n]);
  const call = msgpack.encode([1, {}, "42", "Anything", []]);
  ws.send(Buffer.concat([prefixOf(call.length), call]));
  await waitFor(() => decodeAll(frames.slice(1)).some((m) => m[0] === 3), 5000, "the Completion");
  assert.deepEqual(decodeAll(frames.slice(1)).find((m) => m[0] === 3), [3, {}, "42", 1, "Method does not exist."]);

  // A message that is not MessagePack: Close with error and allowReconnect, then the WebSocket closes.
  ws.send(Buffer.from([0x02, 0x91, 0xc1]));
  const code = await ws.closed;
  const close = decodeAll(frames.slice(1)).find((m) => m[0] === 7);
  assert.deepEqual(close, [7, "Connection closed with an error.", true]);
  assert.equal(code, 1000);
});

test("a binary handshake with a message after it, and a message split across WebSocket messages", async () => {
  const prefixed = (array) => {
    const body = msgpack.encode(array);
    return Buffer.concat([Buffer.from([body.length]), body]);
  };
  const { ws, frames } = await rawMessagePack(`/v1/hub/entries?site_id=${SITE_B}`, prefixed([1, {}, "a", "X", []]));
  const completions = () => decodeAll([{ data: frames[0].data.subarray(3) }, ...frames.slice(1)]).filter((m) => m[0] === 3);
  await waitFor(() => frames.length >= 1 && completions().length === 1, 5000, "the Completion for the first call");
  // ASP.NET Core reads the protocol as a byte stream; so does hubflow.
  const split = prefixed([1, {}, "b", "Y", []]);
  ws.send(split.subarray(0, 1));
  ws.send(split.subarray(1, 7));
  ws.send(Buffer.concat([split.subarray(7), prefixed([6])]));
  await waitFor(() => completions().length === 2, 5000, "the Completion for the split call");
  assert.deepEqual(completions().map((m) => m[2]), ["a", "b"]);
  ws.close();
  await ws.closed;
});

test("a MessagePack message over max_message_bytes closes the connection with a Close", async () => {
  const { ws, frames } = await rawMessagePack(`/v1/hub/entries?site_id=${SITE_B}`);
  await waitFor(() => frames.length >= 1, 5000, "the handshake answer");
  const big = msgpack.encode([1, {}, null, "X", ["y".repeat(40000)]]);
  const prefix = [];
  for (let n = big.length; ; ) { const b = n & 0x7f; n >>>= 7; if (n) prefix.push(b | 0x80); else { prefix.push(b); break; } }
  // Sent in two WebSocket messages: the size is judged before the rest arrives.
  ws.send(Buffer.concat([Buffer.from(prefix), big.subarray(0, 100)]));
  await ws.closed;
  const close = decodeAll([{ data: frames[0].data.subarray(3) }, ...frames.slice(1)]).find((m) => m[0] === 7);
  assert.deepEqual(close, [7, "Connection closed with an error.", true]);
});

test("a hub shutdown sends MessagePack clients a Close with allowReconnect, starting their reconnect", async () => {
  const c = connect(`/v1/hub/entries?site_id=${SITE_A}`, { reconnect: true });
  let reconnecting = null;
  c.connection.onreconnecting((e) => (reconnecting = String(e)));
  await c.connection.start();
  const raw = await rawMessagePack(`/v1/hub/entries?site_id=${SITE_A}`);
  await waitFor(() => raw.frames.length >= 2, 5000, "events on the raw connection");
  hub.kill("SIGTERM");
  await waitFor(() => reconnecting !== null, 10000, "onreconnecting");
  await raw.ws.closed;
  const closes = decodeAll([{ data: raw.frames[0].data.subarray(3) }, ...raw.frames.slice(1)]).filter((m) => m[0] === 7);
  assert.deepEqual(closes, [[7, null, true]]);
  const code = await new Promise((resolve) => (hub.exitCode !== null ? resolve(hub.exitCode) : hub.on("exit", resolve)));
  assert.equal(code, 0, hub.log());
  await c.connection.stop();
});
