// wss:// with the official client: the hub serving TLS from PEM files (a self-signed certificate made here).
"use strict";
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const https = require("node:https");
const os = require("node:os");
const path = require("node:path");
const { waitFor, mintToken } = require("./support");

const HUBFLOW = process.env.HUBFLOW_BIN;
const SECRET = "hubflow-test-secret-0123456789abcdef";
let dir, hub, address, cert;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubflow-tls-"));
  const made = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem"), "-subj", "/CN=127.0.0.1",
    "-addext", "subjectAltName=IP:127.0.0.1"], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  cert = fs.readFileSync(path.join(dir, "cert.pem"));
  fs.writeFileSync(path.join(dir, "roles.json"), JSON.stringify({ "site-a": { admin: "site_admin" } }));
  fs.writeFileSync(path.join(dir, "p.json"), JSON.stringify({
    data_dir: path.join(dir, "state"),
    sources: { ks: { type: "generator", rate: 200, sites: ["site-a"], seed: 2, incident_ratio: 0 } },
    sinks: { hub: { type: "signalr_hub", inputs: ["ks"], listen: "127.0.0.1:0",
                    tls: { cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") },
                    auth: { hs256_secret: SECRET }, roles: { file: path.join(dir, "roles.json") } } },
  }));
  hub = spawn(HUBFLOW, ["run", path.join(dir, "p.json")], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  hub.stderr.on("data", (d) => (log += d));
  await waitFor(() => /on wss:\/\/([0-9.]+:\d+)/.test(log), 10000, `the hub to listen on wss:\n${log}`);
  address = /on wss:\/\/([0-9.]+:\d+)/.exec(log)[1];
});

after(async () => {
  hub.kill("SIGTERM");
  await new Promise((r) => (hub.exitCode !== null ? r() : hub.on("exit", r)));
  fs.rmSync(dir, { recursive: true, force: true });
});

test("the official client receives events over wss://", async () => {
  // The client has no option for a private CA; trust is the process's, so accept this test's certificate.
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
  const signalR = require("@microsoft/signalr");
  const token = mintToken(HUBFLOW, SECRET, "admin");
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(`https://${address}/v1/hub/entries?site_id=site-a`,
      { accessTokenFactory: () => token, skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets })
    .configureLogging(signalR.LogLevel.None).build();
  const messages = [];
  connection.on("ReceiveMessage", (m) => messages.push(JSON.parse(m)));
  await connection.start();
  await waitFor(() => messages.length >= 10, 10000, "events over TLS");
  await connection.stop();
  assert.ok(messages.every((m) => "event_category" in m));
});

test("refusals over TLS keep their status, verified against the certificate", async () => {
  const status = await new Promise((resolve, reject) => {
    const req = https.request(`https://${address}/v1/hub/entries?site_id=site-a`, {
      ca: cert,
      headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" },
    });
    req.on("response", (res) => { res.resume(); resolve(res.statusCode); });
    req.on("upgrade", () => resolve(101));
    req.on("error", reject);
    req.end();
  });
  assert.equal(status, 401);
});
