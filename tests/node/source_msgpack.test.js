// The `signalr` source with `protocol: "messagepack"` in a real hubflow process (signalr -> file), against
//  - the real signalr_hub in another hubflow process, beside a JSON source on the same hub;
//  - a reference hub written with `ws` and the official MessagePackHubProtocol writer: the handshake answer
//    in a binary frame with messages after it, batching, a message split across WebSocket messages, pings,
//    unknown types, non-string arguments, Close with and without allowReconnect, and bad input.
"use strict";
const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const signalR = require("@microsoft/signalr");
const msgpack = require("@msgpack/msgpack");
const { waitFor, mintToken } = require("./support");
const { RS, msgpackProtocol, freePort, hubflowRunner, stop, lines, referenceHub } = require("./reference_hub");

const HUBFLOW = process.env.HUBFLOW_BIN;
const SECRET = "hubflow-test-secret-0123456789abcdef";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-source-msgpack-"));
const hubflow = hubflowRunner(HUBFLOW, dir);

after(() => {
  hubflow.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

// Official-writer messages, as Buffers.
const write = (message) => Buffer.from(msgpackProtocol.writeMessage(message));
const invocation = (arg, target = "ReceiveMessage") =>
  write({ type: signalR.MessageType.Invocation, target, arguments: [arg] });
const event = (id, extra = {}) => invocation(JSON.stringify({ id, user_id: `u-${id}`, ...extra }));
const ping = () => write({ type: signalR.MessageType.Ping });
// Any array, size-prefixed: for what the official writer does not write (Close with an error, new types).
function framed(array) {
  const body = msgpack.encode(array);
  const prefix = [];
  for (let n = body.length; ; ) {
    const b = n & 0x7f;
    n >>>= 7;
    if (n) prefix.push(b | 0x80);
    else { prefix.push(b); break; }
  }
  return Buffer.concat([Buffer.from(prefix), body]);
}
const handshakeOk = Buffer.from("{}" + RS);

test("from a real hub: MessagePack and JSON sources of one hub write the same events", async () => {
  const site = "site-a";
  const roles = path.join(dir, "roles.json");
  fs.writeFileSync(roles, JSON.stringify({ [site]: { admin: "site_admin" } }));
  const port = await freePort();
  const hub = hubflow.run("hub", {
    data_dir: path.join(dir, "hub-state"),
    sources: { g: { type: "generator", sites: [site], seed: 3, incident_ratio: 0, rate: 1000 } },
    sinks: { hub: { type: "signalr_hub", inputs: ["g"], listen: `127.0.0.1:${port}`, auth: { hs256_secret: SECRET },
                    roles: { file: roles } } },
  });
  await waitFor(() => /on ws:/.test(hub.text), 10000, "the hub to listen");
  const token = mintToken(HUBFLOW, SECRET, "admin");
  const url = `ws://127.0.0.1:${port}/v1/hub/entries?site_id=${site}`;
  const mp = hubflow.consumer("mp-from-hub", { url, auth: { token }, protocol: "messagepack" });
  const json = hubflow.consumer("json-from-hub", { url, auth: { token } });
  try {
    await waitFor(() => lines(mp.out).length >= 1000 && lines(json.out).length >= 1000, 20000, "1000 events each");
  } finally {
    assert.equal(await stop(mp), 0);
    assert.equal(await stop(json), 0);
    await stop(hub);
  }
  const a = lines(mp.out), b = lines(json.out);
  const first = a.find((l) => b.includes(l));
  assert.ok(first, "no event in common");
  const ta = a.slice(a.indexOf(first)), tb = b.slice(b.indexOf(first));
  const n = Math.min(ta.length, tb.length);
  assert.ok(n >= 500, `only ${n} events in common`);
  assert.deepEqual(ta.slice(0, n), tb.slice(0, n));
  assert.match(mp.text, /connected to ws:/);
  assert.match(mp.text, /protocol_errors=0/);
});

test("reference hub: binary handshake answer, batching, split messages, Close, and bad input", async () => {
  const unicode = { id: "a5", text: "é € 😀 \"quoted\" \\ \n\t\u0001" };
  const hub = referenceHub({
    hubProtocol: "messagepack",
    scenarios: [
      // The handshake answer and the first message in one binary frame, as ASP.NET Core may send them; three
      // invocations batched; a ping; an unknown type; a payload with escapes and non-ASCII text; a non-string
      // argument; another method; a message split across three WebSocket messages; then Close with an error
      // and allowReconnect.
      (ws) => {
        ws.send(Buffer.concat([handshakeOk, event("a1")]));
        ws.send(Buffer.concat([event("a2"), event("a3"), event("a4")]));
        ws.send(ping());
        ws.send(framed([99, { whatever: [1, 2] }, "later"]));
        ws.send(invocation(JSON.stringify(unicode)));
        ws.send(framed([1, {}, null, "ReceiveMessage", [{ id: "a6", nested: [true, null, 1.5] }]]));
        ws.send(invocation("ignored", "SomethingElse"));
        const split = event("a7");
        ws.send(split.subarray(0, 1));
        ws.send(split.subarray(1, 10));
        ws.send(Buffer.concat([split.subarray(10), event("a8")]));
        ws.send(framed([7, "server restarting", true]));
      },
      // The handshake answer alone, in a text frame; the JavaScript client's Close (no allowReconnect).
      (ws) => { ws.send("{}" + RS); ws.send(event("b1")); ws.send(write({ type: signalR.MessageType.Close })); },
      // Bytes that are not MessagePack after a good event.
      (ws) => { ws.send(Buffer.concat([handshakeOk, event("c1")])); ws.send(Buffer.from([0x02, 0x91, 0xc1])); },
      // A well-formed message of the wrong shape: an invocation without arguments.
      (ws) => { ws.send(Buffer.concat([handshakeOk, event("d1")])); ws.send(framed([1, {}, null, "ReceiveMessage"])); },
      // A size prefix over the source's max_message_bytes (64 KiB here), in a short WebSocket message: the
      // size is judged before the rest arrives.
      (ws) => {
        ws.send(Buffer.concat([handshakeOk, event("e1")]));
        ws.send(invocation("x".repeat(70000)).subarray(0, 200));
      },
      // Text after the handshake.
      (ws) => { ws.send(Buffer.concat([handshakeOk, event("f1")])); ws.send("{}" + RS); },
      // Finally a well-behaved hub.
      (ws) => { ws.send(Buffer.concat([handshakeOk, event("h1")])); ws.send(event("h2")); },
    ],
  });
  await hub.listen();
  const c = hubflow.consumer("reference-mp", { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id=s1`,
                                               auth: { token: "t" }, protocol: "messagepack",
                                               max_message_bytes: 65536, ping_interval_s: 1, server_timeout_s: 10 });
  const want = ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "b1", "c1", "d1", "e1", "f1", "h1", "h2"];
  try {
    await waitFor(() => lines(c.out).length >= want.length, 20000, `${want.length} events`);
    const got = lines(c.out);
    assert.deepEqual(got.map((l) => JSON.parse(l).id), want);
    assert.equal(got[4], JSON.stringify(unicode), "a string argument is the event, exactly");
    assert.equal(got[5], JSON.stringify({ id: "a6", nested: [true, null, 1.5] }),
      "a non-string argument is kept as its JSON text");
    for (const cause of [/Close with error "server restarting" \(allowReconnect\)/, /the hub sent Close;/,
      /invalid message from the hub: The message is not valid MessagePack/,
      /invalid message from the hub: Invalid payload for Invocation message\./,
      /invalid message from the hub: The message is 700\d\d bytes long, over the limit of 65536 bytes\./,
      /text frame, which the MessagePack hub protocol never uses/])
      assert.match(c.text, cause);
    // The source's own messages, read with the official MessagePackHubProtocol: pings after the handshake.
    await waitFor(() => hub.connections.at(-1).received.some((m) => m.type === signalR.MessageType.Ping), 5000,
      "a ping from the source");
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
  }
  // On shutdown the source says goodbye with a MessagePack Close.
  assert.ok(hub.connections.at(-1).received.some((m) => m.type === signalR.MessageType.Close), "a Close on shutdown");
  assert.match(c.text, /protocol_errors=[1-9]/);
});

test("a refused MessagePack handshake is reported with the hub's text", async () => {
  const hub = referenceHub({
    hubProtocol: "messagepack",
    scenarios: [(ws) => ws.send(JSON.stringify({ error: "The protocol 'messagepack' is not supported." }) + RS)],
  });
  await hub.listen();
  const c = hubflow.consumer("refused-mp", { url: `ws://127.0.0.1:${hub.port}/v1/hub/entries?site_id=s1`,
                                             auth: { token: "t" }, protocol: "messagepack" });
  try {
    await waitFor(() => /refused the SignalR handshake: The protocol 'messagepack' is not supported\./.test(c.text),
      10000, "the refusal in the log");
  } finally {
    assert.equal(await stop(c), 0);
    await hub.close();
  }
});
