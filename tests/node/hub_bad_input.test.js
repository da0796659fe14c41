// Bad input against hubflow's signalr_hub sink, each case while an official client keeps receiving events:
// the bad connection is closed the way the reference server closes it, and nobody else notices.
"use strict";
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const signalR = require("@microsoft/signalr");
const { waitFor, mintToken } = require("./support");

const HUBFLOW = process.env.HUBFLOW_BIN;
const SECRET = "hubflow-test-secret-0123456789abcdef";
const SITE = "site-a";
let dir, hub, host, port, token, watcher;
let hubLog = "";


// A masked client frame (RFC 6455 5.2).
function frame(opcode, payload, { fin = true, mask = true } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  let header;
  if (data.length < 126) header = Buffer.from([(fin ? 0x80 : 0) | opcode, (mask ? 0x80 : 0) | data.length]);
  else if (data.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = (fin ? 0x80 : 0) | opcode;
    header[1] = (mask ? 0x80 : 0) | 126;
    header.writeUInt16BE(data.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = (fin ? 0x80 : 0) | opcode;
    header[1] = (mask ? 0x80 : 0) | 127;
    header.writeBigUInt64BE(BigInt(data.length), 2);
  }
  if (!mask) return Buffer.concat([header, data]);
  const key = crypto.randomBytes(4);
  const masked = Buffer.from(data);
  for (let i = 0; i < masked.length; i++) masked[i] ^= key[i % 4];
  return Buffer.concat([header, key, masked]);
}

// Opens a raw WebSocket to the entries hub (upgrade done); collects everything the server sends.
function rawSocket({ upgrade = true } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host);
    const state = { socket, received: Buffer.alloc(0), closed: false };
    socket.on("data", (d) => (state.received = Buffer.concat([state.received, d])));
    socket.on("close", () => (state.closed = true));
    socket.on("error", () => {});
    socket.on("connect", async () => {
      if (!upgrade) return resolve(state);
      socket.write(`GET /v1/hub/entries?site_id=${SITE} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\n` +
        `Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
        `Authorization: Bearer ${token}\r\n\r\n`);
      try {
        await waitFor(() => state.received.includes("\r\n\r\n"), 5000, "the 101");
      } catch (e) {
        return reject(e);
      }
      assert.match(state.received.toString(), /^HTTP\/1.1 101/);
      state.received = state.received.subarray(state.received.indexOf("\r\n\r\n") + 4);
      resolve(state);
    });
  });
}

const handshake = frame(1, '{"protocol":"json","version":1}\x1e');

// Decodes the unmasked server frames received so far: [{opcode, text}].
function serverFrames(buf) {
  const out = [];
  let i = 0;
  while (i + 2 <= buf.length) {
    const opcode = buf[i] & 0x0f;
    let len = buf[i + 1] & 0x7f;
    let at = i + 2;
    if (len === 126) { len = buf.readUInt16BE(at); at += 2; } else if (len === 127) { len = Number(buf.readBigUInt64BE(at)); at += 8; }
    if (at + len > buf.length) break;
    const payload = buf.subarray(at, at + len);
    out.push({ opcode, text: opcode === 8 ? `${payload.length >= 2 ? payload.readUInt16BE(0) : ""}` : payload.toString() });
    i = at + len;
  }
  return out;
}

async function stillFlowing() {
  const before = watcher.messages.length;
  await waitFor(() => watcher.messages.length > before + 5, 10000, "events to keep reaching the official client");
  assert.equal(watcher.connection.state, signalR.HubConnectionState.Connected);
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-bad-"));
  fs.writeFileSync(path.join(dir, "roles.json"), JSON.stringify({ [SITE]: { admin: "site_admin" } }));
  const pipeline = {
    data_dir: path.join(dir, "state"),
    sources: { ks: { type: "generator", rate: 2000, sites: [SITE], seed: 3, incident_ratio: 0 } },
    sinks: { hub: { type: "signalr_hub", inputs: ["ks"], listen: "127.0.0.1:0", auth: { hs256_secret: SECRET },
                    roles: { file: path.join(dir, "roles.json") }, handshake_timeout_s: 1, max_message_bytes: 4096,
                    client_timeout_s: 2 } },
  };
  fs.writeFileSync(path.join(dir, "p.json"), JSON.stringify(pipeline));
  hub = spawn(HUBFLOW, ["run", path.join(dir, "p.json")], { stdio: ["ignore", "ignore", "pipe"] });
  hub.stderr.on("data", (d) => (hubLog += d));
  await waitFor(() => /on ws:\/\/([0-9.]+):(\d+)/.test(hubLog), 10000, "the hub to listen");
  [, host, port] = /on ws:\/\/([0-9.]+):(\d+)/.exec(hubLog);
  port = Number(port);
  token = mintToken(HUBFLOW, SECRET, "admin");
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(`http://${host}:${port}/v1/hub/entries?site_id=${SITE}`,
      { accessTokenFactory: () => token, skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets })
    .withKeepAliveInterval(300) // well inside the hub's 2 s client timeout
    .configureLogging(signalR.LogLevel.None).build();
  watcher = { connection, messages: [] };
  connection.on("ReceiveMessage", (m) => watcher.messages.push(m));
  await connection.start();
});

after(async () => {
  if (watcher) await watcher.connection.stop();
  hub.kill("SIGTERM");
  await new Promise((r) => (hub.exitCode !== null ? r() : hub.on("exit", r)));
  assert.equal(hub.exitCode, 0);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("garbage instead of an HTTP request is refused", async () => {
  const s = await rawSocket({ upgrade: false });
  s.socket.write("\x16\x03\x01 this is not HTTP at all\r\n\r\n");
  await waitFor(() => s.closed, 5000, "the server to close");
  assert.match(s.received.toString(), /^HTTP\/1.1 400/);
  await stillFlowing();
});

test("no SignalR handshake: cancelled after the handshake timeout", async () => {
  const s = await rawSocket();
  await waitFor(() => s.closed, 5000, "the handshake timeout");
  const frames = serverFrames(s.received);
  assert.ok(frames.some((f) => f.text === '{"error":"Handshake was canceled."}\x1e'), JSON.stringify(frames));
  await stillFlowing();
});

test("a client that sends nothing after the handshake is closed after the client timeout", async () => {
  const s = await rawSocket();
  s.socket.write(handshake);
  const started = Date.now();
  await waitFor(() => s.closed, 8000, "the client timeout");
  const frames = serverFrames(s.received);
  const close = frames.find((f) => f.text.startsWith('{"type":7'));
  assert.ok(close, JSON.stringify(frames));
  assert.deepEqual(JSON.parse(close.text.slice(0, -1)),
    { type: 7, error: "Server timeout elapsed without receiving a message from the client.", allowReconnect: true });
  assert.ok(Date.now() - started >= 1500, "not closed before the 2 s timeout");
  await stillFlowing();
});

test("an unknown protocol or version in the handshake gets the reference error", async () => {
  for (const [request, error] of [
    ['{"protocol":"blazorpack","version":1}', "The protocol 'blazorpack' is not supported."],
    ['{"protocol":"messagepack","version":3}', "The server does not support version 3 of the 'messagepack' protocol."],
  ]) {
    const s = await rawSocket();
    s.socket.write(frame(1, request + "\x1e"));
    await waitFor(() => s.closed, 5000, "the close");
    const frames = serverFrames(s.received);
    assert.equal(frames[0].text, JSON.stringify({ error }) + "\x1e");
  }
  await stillFlowing();
});

test("invalid JSON after the handshake closes with the reference error", async () => {
  const s = await rawSocket();
  s.socket.write(handshake);
  s.socket.write(frame(1, '{"type":1,"target":\x1e'));
  await waitFor(() => s.closed, 5000, "the close");
  const frames = serverFrames(s.received);
  assert.ok(frames.some((f) => f.text === '{"type":7,"error":"Connection closed with an error.","allowReconnect":true}\x1e'),
    JSON.stringify(frames));
  await stillFlowing();
});

test("an oversized message closes the connection", async () => {
  const s = await rawSocket();
  s.socket.write(handshake);
  s.socket.write(frame(1, `{"type":6,"pad":"${"x".repeat(10000)}"}\x1e`));
  await waitFor(() => s.closed, 5000, "the close");
  const frames = serverFrames(s.received);
  assert.ok(frames.some((f) => f.text.startsWith('{"type":7,"error":"Connection closed with an error."')), JSON.stringify(frames));
  await stillFlowing();
});

test("a binary frame on the JSON protocol closes the connection", async () => {
  const s = await rawSocket();
  s.socket.write(handshake);
  s.socket.write(frame(2, Buffer.from([1, 2, 3, 0xff])));
  await waitFor(() => s.closed, 5000, "the close");
  await stillFlowing();
});

test("an unmasked client frame is a protocol error", async () => {
  const s = await rawSocket();
  s.socket.write(frame(1, '{"protocol":"json","version":1}\x1e', { mask: false }));
  await waitFor(() => s.closed, 5000, "the close");
  const close = serverFrames(s.received).find((f) => f.opcode === 8);
  assert.equal(close && close.text, "1002");
  await stillFlowing();
});

test("an invocation with an id gets a Completion error and the connection stays", async () => {
  const s = await rawSocket();
  s.socket.write(handshake);
  s.socket.write(frame(1, '{"type":1,"invocationId":"7","target":"Subscribe","arguments":[]}\x1e'));
  await waitFor(() => s.received.includes('"invocationId":"7"'), 5000, "the completion");
  const completion = serverFrames(s.received).find((f) => f.text.includes('"invocationId":"7"'));
  assert.equal(JSON.parse(completion.text.slice(0, -1)).error, "Method does not exist.");
  await waitFor(() => s.received.includes("ReceiveMessage"), 5000, "events on the same connection");
  assert.equal(s.closed, false);
  s.socket.destroy();
});

test("an abrupt disconnect in the middle of a frame", async () => {
  const s = await rawSocket();
  s.socket.write(handshake);
  s.socket.write(frame(1, '{"type":6}\x1e').subarray(0, 5));
  s.socket.destroy();
  await stillFlowing();
});

test("thousands of connect/disconnect cycles leave the server serving", async () => {
  for (let round = 0; round < 20; round++) {
    await Promise.all(Array.from({ length: 100 }, async (_, i) => {
      const s = await rawSocket();
      if (i % 2) s.socket.write(handshake);
      s.socket.destroy();
    }));
  }
  await stillFlowing();
});

test("a client that stops reading is closed with a reason once its buffer is full; the others go on", async () => {
  const s = await rawSocket();
  s.socket.write(handshake);
  s.socket.pause(); // stop reading: the kernel buffers fill, then the server's 4 MiB queue (the default)
  // It still pings, so the hub's 2 s client timeout is not what closes it.
  const pinger = setInterval(() => s.socket.write(frame(1, '{"type":6}\x1e')), 300);
  try {
    // At 2,000 events/s of ~750 bytes the kernel's buffers and then the hub's queue fill within seconds.
    await waitFor(() => /did not read fast enough/.test(hubLog), 60000, "the hub to give up on the slow client");
  } finally {
    clearInterval(pinger);
  }
  s.socket.resume();
  await waitFor(() => s.closed, 10000, "the slow client to be closed");
  const text = s.received.toString("latin1");
  assert.ok(text.includes("The client did not read fast enough"), "the Close names the reason");
  await stillFlowing();
});
