// Helpers for the `signalr` source suites: hubflow processes (signalr -> file) and a SignalR reference hub
// written with `ws` and the official packages' own JsonHubProtocol and MessagePackHubProtocol writers.
"use strict";
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const path = require("node:path");
const WebSocket = require("ws");
const signalR = require("@microsoft/signalr");
const { MessagePackHubProtocol } = require("@microsoft/signalr-protocol-msgpack");

const protocol = new signalR.JsonHubProtocol();
const msgpackProtocol = new MessagePackHubProtocol();
const RS = "\x1e";

async function freePort() {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

// Runs hubflow processes in `dir`; `kill()` ends every one still running.
function hubflowRunner(hubflow, dir) {
  const processes = [];
  // `hubflow run` on a pipeline object; returns {proc, text (stderr so far), exited}.
  function run(name, pipeline, env = {}) {
    const file = path.join(dir, `${name}.json`);
    fs.writeFileSync(file, JSON.stringify(pipeline));
    const proc = spawn(hubflow, ["run", file], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
    processes.push(proc);
    const h = { proc, text: "" };
    proc.stderr.on("data", (d) => (h.text += d));
    h.exited = new Promise((r) => proc.on("exit", (code) => r(code)));
    return h;
  }
  // A consumer: signalr -> file with fast reconnects unless the source config says otherwise. `sinkPath`
  // defaults to one file; `h.out` is that file.
  function consumer(name, source, sinkPath) {
    const out = sinkPath || path.join(dir, `${name}.jsonl`);
    const h = run(name, {
      data_dir: path.join(dir, `${name}-state`),
      sources: { ks: { type: "signalr", reconnect: { initial_ms: 50, max_ms: 300 }, ...source } },
      sinks: { out: { type: "file", inputs: ["ks"], path: out } },
    });
    h.out = out;
    return h;
  }
  function kill() {
    for (const p of processes) if (p.exitCode === null) p.kill("SIGKILL");
  }
  return { run, consumer, kill };
}

async function stop(h) {
  if (h.proc.exitCode === null) h.proc.kill("SIGTERM");
  return h.exited;
}

function lines(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, "utf8").split("\n").filter((l) => l.length > 0);
}

// A SignalR hub on `ws`. Each connection runs the next scenario of the list (the last one repeats) once the
// client's handshake request has arrived: scenario(ws, socket, req, connection). `accept(req)` may answer an
// HTTP status instead of upgrading. Every message a client sends after its handshake is parsed into records
// and kept in connection.received; connection.closeCode is set when the WebSocket closes. With
// `hubProtocol: "messagepack"` the client must ask for MessagePack, and what it sends after the handshake is
// read with the official MessagePackHubProtocol.
function referenceHub({ scenarios, accept = () => 101, port = 0, hubProtocol = "json" }) {
  const hub = { upgrades: [], connections: [], scenarios };
  const server = http.createServer();
  const wss = new WebSocket.Server({ noServer: true, perMessageDeflate: false });
  hub.wss = wss;
  server.on("upgrade", (req, socket, head) => {
    hub.upgrades.push({ url: req.url, auth: req.headers.authorization || "" });
    const status = accept(req);
    if (status !== 101) {
      socket.end(`HTTP/1.1 ${status} Refused\r\nContent-Length: 7\r\nConnection: close\r\n\r\nrefused`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const scenario = scenarios[Math.min(hub.connections.length, scenarios.length - 1)];
      const connection = { received: [], closeCode: null, url: req.url };
      hub.connections.push(connection);
      ws.on("close", (code) => (connection.closeCode = code));
      ws.once("message", (data) => {
        const text = data.toString();
        assert.ok(text.startsWith(`{"protocol":"${hubProtocol}","version":1}`), text);
        ws.on("message", (more) => {
          if (hubProtocol === "messagepack") {
            const bytes = more.buffer.slice(more.byteOffset, more.byteOffset + more.byteLength);
            connection.received.push(...msgpackProtocol.parseMessages(bytes, null));
            return;
          }
          for (const record of more.toString().split(RS).filter((r) => r.length > 0))
            connection.received.push(JSON.parse(record));
        });
        scenario(ws, socket, req, connection);
      });
    });
  });
  hub.listen = () => new Promise((r) => server.listen(port, "127.0.0.1", () => { hub.port = server.address().port; r(); }));
  hub.close = () => { for (const c of wss.clients) c.terminate(); return new Promise((r) => server.close(r)); };
  hub.clients = () => [...wss.clients];
  return hub;
}

const invocation = (arg, target = "ReceiveMessage") =>
  protocol.writeMessage({ type: signalR.MessageType.Invocation, target, arguments: [arg] });
const event = (id, extra = {}) => invocation(JSON.stringify({ id, user_id: `u-${id}`, ...extra }));
const ping = () => protocol.writeMessage({ type: signalR.MessageType.Ping });
const closeMessage = (extra = {}) => JSON.stringify({ type: 7, ...extra }) + RS;

module.exports = { RS, protocol, msgpackProtocol, freePort, hubflowRunner, stop, lines, referenceHub, invocation,
                   event, ping, closeMessage };
